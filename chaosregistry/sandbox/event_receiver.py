"""The sandbox's receiver of Distribution notifications, run as a subprocess (second site).

    python -m chaosregistry.sandbox.event_receiver --listen 127.0.0.1:15041 \\
        --events-file run/state/events.jsonl

Routes (plain HTTP on loopback, like the other internal listeners):
- ``POST /events/<registry>``: a Distribution notification envelope (``{"events": [...]}``,
  media type ``application/vnd.docker.distribution.events.v1+json``). Each event but a pull
  is appended to the events file as one line (see ``records``); 200 once written, 400 for a
  body that is not an envelope.
- ``GET /healthz`` -> 200 (readiness).

Events carry no credentials (Distribution sends the actor's name and the request's address,
method and user agent; we keep none of those).
"""

import argparse
import datetime
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chaosregistry.osutil.files import append_line

EVENTS_PATH = "/events/"
# Not recorded: every pull of a load would be a line. The registries are told not to send them
# (``ignore.actions``), but Debian's Distribution 2.8.2 sends them anyway.
DROPPED_ACTIONS = frozenset({"pull"})


def _epoch(timestamp: Any) -> float | None:
    """Distribution's RFC 3339 timestamp (nanoseconds, zone offset) as epoch seconds."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def records(envelope: Any, registry: str, received_at: float) -> list[dict[str, Any]]:
    """One record per event of ``envelope``: ``received_at`` (epoch seconds, when we got it),
    ``registry`` (who sent it), ``id``, ``action`` (push, delete, mount...), ``repository``,
    ``tag`` ("" for a blob or a push by digest), ``digest``, ``media_type``, ``size``,
    ``timestamp`` (the registry's, as sent) and ``event_time`` (it, as epoch seconds; None when
    unreadable). Raises ValueError when ``envelope`` is not ``{"events": [objects]}``."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise ValueError('not a notification envelope: {"events": [...]} expected')
    found = []
    for event in envelope["events"]:
        if not isinstance(event, dict):
            raise ValueError("an event is not a JSON object")
        target: dict[str, Any] = event["target"] if isinstance(event.get("target"), dict) else {}
        found.append(
            {
                "received_at": received_at,
                "registry": registry,
                "id": str(event.get("id", "")),
                "action": str(event.get("action", "")),
                "repository": str(target.get("repository", "")),
                "tag": str(target.get("tag", "")),
                "digest": str(target.get("digest", "")),
                "media_type": str(target.get("mediaType", "")),
                "size": target.get("size") if isinstance(target.get("size"), int) else None,
                "timestamp": str(event.get("timestamp", "")),
                "event_time": _epoch(event.get("timestamp")),
            }
        )
    return found


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], events_file: Path) -> None:
        super().__init__(address, _Handler)
        self.events_file = events_file
        self.lock = threading.Lock()

    def record(self, body: bytes, registry: str) -> int:
        found = records(json.loads(body), registry, time.time())
        found = [item for item in found if item["action"] not in DROPPED_ACTIONS]
        with self.lock:
            for item in found:
                append_line(self.events_file, json.dumps(item, sort_keys=True))
        return len(found)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"event-receiver: {format % args}\n")

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok")
        else:
            self._answer(404, "not found")

    def do_POST(self) -> None:
        registry = self.path[len(EVENTS_PATH) :] if self.path.startswith(EVENTS_PATH) else ""
        if not registry or "/" in registry:
            self._answer(404, "POST /events/<registry>")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            count = self.server.record(body, registry)
        except ValueError as exc:  # json.JSONDecodeError included
            self._answer(400, f"bad notification: {exc}")
            return
        self._answer(200, f"recorded {count}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaosregistry.sandbox.event_receiver")
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--events-file", required=True, type=Path)
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    args.events_file.parent.mkdir(parents=True, exist_ok=True)
    server = Receiver((host, int(port)), args.events_file)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"event-receiver: listening on {args.listen}, events in {args.events_file}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
