"""The Locust user and the probes classify the same real failures the same way.

Both drive one pull protocol (``chaosregistry.oci.protocol``); here each failure is provoked for
real on the HTTPS sandbox (wrong password, an untrusted CA, a missing image, the rate-limited
twin, a truncating hop, a closed port) and the class one Locust process records is the class
the probes' client reports for the same pull.
"""

import itertools
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.locust_runs import locust_classes
from support.sandbox import SandboxInfo

from chaosregistry.loadgen.pacing import DEFAULT_BACKOFF
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.sandbox.toxiproxy import Toxiproxy
from chaosregistry.trust.pki import Pki, ensure_ca


def probe_class(url: str, image: str, *, password: str, ca_file: str) -> tuple[str | None, Any]:
    credentials = Credentials("chaos", password)
    with RegistryClient(url, credentials=credentials, verify=ca_file, timeout=5) as client:
        result = pull(client, ImageReference.parse(image))
    error = result.error
    return (None if error is None else str(error.error_class)), error


@contextmanager
def truncating_hop(sandbox: SandboxInfo) -> Iterator[None]:
    hop = sandbox.endpoints["hops"]["client-registry"]["proxy"]
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as toxiproxy:
        toxiproxy.add_toxic(
            hop, name="error-cases-limit", type="limit_data", stream="downstream",
            attributes={"bytes": 1 << 20},  # mid-body of a 64 MiB layer, past the manifests
        )  # fmt: skip
        try:
            yield
        finally:
            toxiproxy.remove_toxic(hop, "error-cases-limit")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-password", "auth"),
        ("untrusted-ca", "tls"),
        ("missing-image", "not-found"),
        ("closed-port", "refused"),
        ("truncating-hop", "truncated"),
    ],
)
def test_the_load_and_the_probes_agree_on_each_failure(
    sandbox: SandboxInfo, tmp_path: Path, case: str, expected: str
) -> None:
    url = sandbox.endpoints["registry"]
    image = "big/blob:latest" if case == "truncating-hop" else "tiny/hello:latest"
    password, ca_file = sandbox.password, sandbox.endpoints["ca_file"]
    if case == "wrong-password":
        password = "not-" + sandbox.password
    elif case == "untrusted-ca":
        other = Pki(tmp_path / "other-ca")
        ensure_ca(other, "not-the-sandbox-ca")
        ca_file = str(other.ca_cert)
    elif case == "missing-image":
        image = f"tiny/hello:missing-{uuid.uuid4().hex[:6]}"
    elif case == "closed-port":
        url = closed_port_url()

    def both() -> tuple[tuple[str | None, Any], dict[str | None, int], list[dict[str, Any]]]:
        probe = probe_class(url, image, password=password, ca_file=ca_file)
        load, pulls = locust_classes(tmp_path, url, image, password=password, ca_file=ca_file)
        return probe, load, pulls

    if case == "truncating-hop":
        with truncating_hop(sandbox):
            (probe, error), load, pulls = both()
    else:
        (probe, error), load, pulls = both()

    assert probe == expected, error
    assert pulls, "the Locust process recorded no pull"
    assert set(load) == {expected}, (load, {p["message"] for p in pulls})
    if expected == "tls":
        assert error.detail["reason"] == "unknown-ca"
        assert all("unknown-ca" in p["message"] for p in pulls)
    if case != "truncating-hop":  # these fail at once: the node backs off, doubling its wait
        ordered = sorted(pulls, key=lambda p: p["start"])
        waits = [b["start"] - a["end"] for a, b in itertools.pairwise(ordered)]
        for failures, wait in enumerate(waits, start=1):  # jittered, never under half its ceiling
            assert wait >= DEFAULT_BACKOFF.floor(failures) * 0.9, (failures, waits)
        # Without it, one node made hundreds of these pulls in the same 3 s.
        assert len(pulls) <= 12, waits


def test_the_rate_limited_twin_is_rate_limited_for_both(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    url = sandbox.endpoints["registry_ratelimited"]
    ca_file = sandbox.endpoints["ca_file"]
    load, _ = locust_classes(
        tmp_path, url, "tiny/hello:latest", password=sandbox.password, ca_file=ca_file, users=4
    )
    assert load.get("rate-limited", 0) > 0, load
    assert set(load) <= {None, "rate-limited"}, load
    seen = {probe_class(url, "tiny/hello:latest", password=sandbox.password, ca_file=ca_file)[0]
            for _ in range(12)}  # fmt: skip
    assert "rate-limited" in seen and seen <= {None, "rate-limited"}


def test_a_good_pull_succeeds_for_both_so_the_cases_above_can_fail(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    url, ca_file = sandbox.endpoints["registry"], sandbox.endpoints["ca_file"]
    assert (
        probe_class(url, "tiny/hello:latest", password=sandbox.password, ca_file=ca_file)[0] is None
    )
    load, pulls = locust_classes(
        tmp_path, url, "tiny/hello:latest", password=sandbox.password, ca_file=ca_file
    )
    assert set(load) == {None} and len(pulls) > 3
