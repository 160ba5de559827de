"""Renderers: a Verdict in, bytes or text out. They only render; they never judge.

One module per consumer: `health_json` (the IETF health+json draft), `text`
(kube-apiserver style), `nagios` (monitoring-plugins output), `html` (the
status page) and `prometheus` (text exposition and OpenMetrics). What they
share, each in one place: `printable` (the escaping of text from a target),
`units` (the conversion of observed units), `order` (failing checks first)
and `wording` (counted nouns). `outputs` is the table the server looks a
format up in: its content type and its two renderers (full, and the
verdict alone for anonymous callers).
"""

from adapter.formats.health_json import (
    HEALTH_JSON,
    health_document,
    health_json,
    rfc3339,
)
from adapter.formats.html import status_page
from adapter.formats.nagios import exit_code, nagios_text
from adapter.formats.text import verbose_text

__all__ = [
    "HEALTH_JSON",
    "exit_code",
    "health_document",
    "health_json",
    "nagios_text",
    "rfc3339",
    "status_page",
    "verbose_text",
]
