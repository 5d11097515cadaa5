"""One ggcr registry node: go-containerregistry's registry, re-seeded with the seed's manifests
on start.

``python -m chaosregistry.sandbox.ggcr_node --registry BIN --listen HOST:PORT --disk DIR
--ready HOST:PORT --manifests FILE``

``BIN`` is ``tools/ggcr-registry`` (``pkg/registry`` as ``crane registry serve`` runs it, with
the referrers API on), called ``BIN --address HOST:PORT --disk DIR``; "crane" below is it.
It keeps manifests in memory only (blobs go to ``--disk``), so a node that was killed would
come back empty. This process starts crane in its own process group (a node kill takes both),
waits until it answers, PUTs every manifest of ``--manifests`` (the seed's, in push order; the
blobs they name are still on the disk), and only then answers ``GET /ready`` on ``--ready``: the
sandbox's readiness check. Content pushed after the seed is not restored. It exits with crane's
exit code, and passes SIGTERM/SIGINT on to crane.
"""

import argparse
import base64
import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

import httpx

from chaosregistry.osutil.tls import system_trust

START_TIMEOUT = 20.0
PUT_TIMEOUT = 30.0


class _ReadyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the readiness poll every 50 ms would flood the node's log


def _wait_serving(base: str, crane: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0, trust_env=False, verify=system_trust()) as client:
        while crane.poll() is None:
            try:
                client.get(base + "/v2/")
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"crane did not answer on {base} within {START_TIMEOUT:.0f}s"
                    ) from None
                time.sleep(0.05)
    raise SystemExit(f"crane exited with code {crane.returncode} while starting")


def reseed(base: str, manifests_file: Path) -> int:
    """PUT every recorded manifest; returns how many. No file yet (first start): none."""
    if not manifests_file.is_file():
        return 0
    manifests = json.loads(manifests_file.read_text(encoding="utf-8"))
    with httpx.Client(
        base_url=base, timeout=PUT_TIMEOUT, trust_env=False, verify=system_trust()
    ) as client:
        for item in manifests:
            answer = client.put(
                f"/v2/{item['repository']}/manifests/{item['reference']}",
                content=base64.b64decode(item["data"]),
                headers={"Content-Type": item["media_type"]},
            )
            if answer.status_code != 201:
                raise SystemExit(
                    f"re-seeding {item['repository']}:{item['reference']} answered "
                    f"{answer.status_code}: {answer.text[:200]}"
                )
    return len(manifests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="the ggcr-registry binary")
    parser.add_argument("--listen", required=True, help="HOST:PORT crane serves the registry on")
    parser.add_argument("--disk", required=True, help="crane's blob directory")
    parser.add_argument("--ready", required=True, help="HOST:PORT answering GET /ready")
    parser.add_argument("--manifests", required=True, type=Path)
    args = parser.parse_args(argv)

    Path(args.disk).mkdir(parents=True, exist_ok=True)
    crane = subprocess.Popen(
        [args.registry, "--address", args.listen, "--disk", args.disk],
        stdin=subprocess.DEVNULL,
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        crane.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    base = f"http://{args.listen}"
    try:
        _wait_serving(base, crane)
        count = reseed(base, args.manifests)
    except BaseException:
        crane.kill()  # a node that cannot serve its seed must not half-serve
        crane.wait()
        raise
    print(f"ggcr node: {count} seeded manifest(s) restored on {base}", flush=True)

    host, _, port = args.ready.rpartition(":")
    ready = ThreadingHTTPServer((host, int(port)), _ReadyHandler)
    threading.Thread(target=ready.serve_forever, daemon=True).start()
    code = crane.wait()
    ready.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
