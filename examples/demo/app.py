"""A tiny application to watch: an HTTP endpoint, a heartbeat file and a worker process.

Break it on purpose, from another terminal:
    touch $DEMO_DIR/break-http       # /status answers 500
    touch $DEMO_DIR/stop-heartbeat   # the heartbeat file stops being touched
    pkill -f demo-worker             # the worker process goes away
Remove the files (or restart the app) to make it healthy again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEMO_DIR = Path(os.environ.get("DEMO_DIR", "/tmp/health-adapter-demo"))
PORT = int(os.environ.get("DEMO_PORT", "8080"))
HEARTBEAT_EVERY = 1.0


class StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/status":
            self.send_error(404)
            return
        broken = (DEMO_DIR / "break-http").exists()
        body = b"broken\n" if broken else b"ok\n"
        self.send_response(500 if broken else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the terminal for the adapter's logs


def beat(stop: threading.Event) -> None:
    heartbeat = DEMO_DIR / "heartbeat"
    while not stop.wait(HEARTBEAT_EVERY):
        if not (DEMO_DIR / "stop-heartbeat").exists():
            heartbeat.touch()


def start_worker() -> subprocess.Popen[bytes]:
    # The trailing argument is what the adapter's process check looks for.
    return subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "demo-worker"]
    )


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for flag in ("break-http", "stop-heartbeat"):
        (DEMO_DIR / flag).unlink(missing_ok=True)
    (DEMO_DIR / "heartbeat").touch()
    worker = start_worker()
    stop = threading.Event()
    threading.Thread(target=beat, args=(stop,), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", PORT), StatusHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(
        f"demo app: http://127.0.0.1:{PORT}/status, heartbeat in {DEMO_DIR}, "
        f"worker pid {worker.pid}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        worker.terminate()
        worker.wait(timeout=5)


if __name__ == "__main__":
    main()
