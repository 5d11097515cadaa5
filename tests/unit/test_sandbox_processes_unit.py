"""What a sandbox piece's start clears first, without starting anything."""

from dataclasses import asdict
from pathlib import Path

from chaosregistry.sandbox.layout import Layout, Ports
from chaosregistry.sandbox.monitoring import prometheus_spec
from chaosregistry.sandbox.processes import ProcessSpec, prepare_start


def test_prometheus_starts_with_an_empty_store_so_an_earlier_run_s_series_are_gone(
    tmp_path: Path,
) -> None:
    layout = Layout.at(tmp_path)
    spec = prometheus_spec(layout, Ports(20000))
    # What processes.json keeps is what a later `start_process` reads back.
    spec = ProcessSpec.from_dict(asdict(spec))
    store = Path(spec.fresh_dir)
    assert f"--storage.tsdb.path={store}" in spec.argv
    (store / "wal").mkdir(parents=True)
    (store / "wal" / "00000001").write_text("an earlier game day's samples")

    prepare_start(spec)

    assert store.is_dir()
    assert list(store.iterdir()) == []


def test_a_start_clears_a_stale_ready_file_and_keeps_a_piece_without_fresh_dir_untouched(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    ready.write_text("from the last life")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "data").write_text("stays")
    spec = ProcessSpec(
        name="guardian",
        argv=["true"],
        cwd=str(kept),
        log=str(tmp_path / "log"),
        ready_url="",
        ports=[],
        ready_file=str(ready),
    )

    prepare_start(spec)

    assert not ready.exists()
    assert (kept / "data").read_text() == "stays"
