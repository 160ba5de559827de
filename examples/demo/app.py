"""A tiny application to watch: an HTTP endpoint, a heartbeat file and a worker process.

Break it on purpose, from another terminal:
    touch $DEMO_DIR/break-http            # /status answers 500
    touch $DEMO_DIR/stop-heartbeat        # the heartbeat file stops being touched
    kill "$(cat $DEMO_DIR/worker.pid)"    # the worker process goes away
Remove the files to make it healthy again: the app reaps a worker that ends
and leaves $DEMO_DIR/worker-stopped; removing that file starts a new worker.
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


class Worker:
    """Runs the worker, reaps it when it ends (no zombie left behind), and starts a
    new one once `worker-stopped` is removed. Its pid is in `worker.pid`, so that
    it can be killed by pid rather than by a pattern that may match other processes."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.pidfile = DEMO_DIR / "worker.pid"
        self.stopped = DEMO_DIR / "worker-stopped"
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                if self.stop.is_set():
                    return
                self.process = process = start_worker()
            self.pidfile.write_text(f"{process.pid}\n")
            code = process.wait()  # reaps it
            self.pidfile.unlink(missing_ok=True)
            if self.stop.is_set():
                return
            self.stopped.write_text(
                f"worker {process.pid} ended with {code}; remove this file to start a new one\n"
            )
            print(
                f"demo app: worker {process.pid} ended; rm {self.stopped} to restart it", flush=True
            )
            while self.stopped.exists() and not self.stop.wait(0.2):
                pass

    def end(self) -> None:
        with self.lock:
            self.stop.set()
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                self.process.wait(timeout=5)
        self.pidfile.unlink(missing_ok=True)


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for flag in ("break-http", "stop-heartbeat", "worker-stopped"):
        (DEMO_DIR / flag).unlink(missing_ok=True)
    (DEMO_DIR / "heartbeat").touch()
    stop = threading.Event()
    worker = Worker(stop)
    threading.Thread(target=worker.run, daemon=True).start()
    threading.Thread(target=beat, args=(stop,), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", PORT), StatusHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(
        f"demo app: http://127.0.0.1:{PORT}/status, heartbeat in {DEMO_DIR}, "
        f"worker pid in {worker.pidfile}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        worker.end()


if __name__ == "__main__":
    main()
