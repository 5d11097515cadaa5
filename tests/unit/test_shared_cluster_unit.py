"""What a cluster test fails with when the test bed's binaries do not build
(tests/support/cluster.py), without a cluster."""

from pathlib import Path

from support.cluster import BUILD_LOG_TAIL, build_failure

from chaosregistry.cluster.build import BuildError


def test_a_failed_build_fails_the_cluster_test_with_the_tail_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    error = f"go build k8s failed (exit 1): line 99 — see {log}"
    first, *tail = build_failure(BuildError(error, log)).splitlines()
    assert first == f"the test bed's binaries did not build: {error}"
    assert tail == [f"line {i}" for i in range(100 - BUILD_LOG_TAIL, 100)]
    # A failure before any Go step wrote a log: the message alone.
    assert build_failure(BuildError("no Go toolchain: install Go or set CHAOSREGISTRY_GO")) == (
        "the test bed's binaries did not build: no Go toolchain: install Go or set CHAOSREGISTRY_GO"
    )
