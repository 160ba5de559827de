"""A certificate about to expire, seen the same way in every format a running adapter serves."""

from __future__ import annotations

import datetime
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import nagios_grammar
from tests.certificates import DAY, make_chain
from tests.e2e.conftest import RunningAdapter, http_get, wait_for

pytestmark = pytest.mark.slow


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[int, str, int]]:
    """An https server whose certificate expires in 10 days: (port, ca_file, not_after)."""
    not_after = int(time.time() + 10 * DAY)
    chain = make_chain(not_after)
    context = chain.server_context(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], chain.ca_file(tmp_path), not_after
    finally:
        server.shutdown()
        server.server_close()


def test_every_format_shows_the_same_expiry(
    start_adapter: Callable[[str], RunningAdapter], https_app: tuple[int, str, int]
) -> None:
    port, ca_file, not_after = https_app
    adapter = start_adapter(
        f"""
defaults: {{interval: 200ms, timeout: 2s}}
checks:
  - name: site
    http: {{url: "https://localhost:{port}/", ca_file: "{ca_file}", cert_expiry_warn: 14d}}
  - name: port
    tcp: {{port: {port}, tls: true, ca_file: "{ca_file}", server_name: localhost}}
"""
    )
    document = wait_for(
        "both checks have run",
        lambda: (
            (answer := json.loads(http_get(f"{adapter.url}/health")[1]))["checks"].get(
                "port:certNotAfter"
            )
            and answer["checks"]["site"][0]["status"] != "fail"
            and answer
        ),
    )
    date = f"{datetime.datetime.fromtimestamp(not_after, datetime.UTC):%Y-%m-%d %H:%M} UTC"

    site = document["checks"]["site"][0]
    assert (site["status"], site["reason"]) == ("warn", "cert_expiry")
    assert f"certificate 'localhost' expires {date} (in 9 days)" in site["output"]
    for name in ("site", "port"):
        assert document["checks"][f"{name}:certNotAfter"][0]["observedValue"] == not_after

    _, nagios = http_get(f"{adapter.url}/health?format=nagios")
    parsed = nagios_grammar.parse(nagios)
    assert parsed.perfdata["site:certNotAfter"] == (not_after, "")
    assert parsed.perfdata["port:certNotAfter"] == (not_after, "")
    assert any(date in line for line in parsed.long_output if line.startswith("[WARN] site"))

    _, metrics = http_get(f"{adapter.url}/metrics")
    gauges = {
        sample.labels["check"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "health_check_tls_cert_not_after_timestamp_seconds"
    }
    assert gauges == {"site": not_after, "port": not_after}

    _, text = http_get(f"{adapter.url}/readyz?verbose")
    assert f"[+]site warn: certificate 'localhost' expires {date}" in text
