"""HAProxy's agent check: on each connection, one line saying what readiness says, then close.

HAProxy (`agent-check agent-port P`) connects every `agent-inter`, reads one
line and acts on its words (HAProxy 2.6 manual, "agent-check"):

    pass                    up ready 100%
    warn                    up ready 50%   (`warn_weight`; less traffic, not none)
    a critical check fails  down #api: HTTP 503; db: connection refused
    draining                drain #shutting down

`ready` is in every healthy answer because HAProxy leaves DRAIN only when the
agent says `ready`; `up` because it leaves an agent's DOWN only on `up`. A
failing critical check says `down` even while draining: the agent never says
`up` or `drain` (which keeps sessions flowing) while readiness fails for a
reason of the application's own. With `server.details: token` the comment
names nothing (`down #not ready`), as anonymous HTTP callers are told nothing.

The listener holds to the HTTP listener's limits: the line is written as soon
as the connection is made, whatever the client sends is never read (HAProxy's
`agent-send`, or garbage), and a client that does not close after the answer
is cut off after `linger` seconds; beyond `max_connections` open connections
the oldest is closed to make room, so a flood never locks HAProxy out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from adapter.formats.printable import one_line
from adapter.health import CheckVerdict, Verdict
from probes import Status

#: The `#` comment at most, in bytes: HAProxy shows it on its stats page and in logs.
MAX_COMMENT = 200
#: One failing check's output at most within the comment.
MAX_OUTPUT = 80


def agent_line(verdict: Verdict, *, warn_weight: int, details: bool = True) -> bytes:
    """The agent's answer to a readiness `verdict`: one line, ASCII, ending in `\\n`.

    `warn_weight` is a percentage (1-100). Without `details`, comments name
    no check and no output.
    """
    failing = [check for check in verdict.checks if check.contributes is Status.FAIL]
    if failing:
        why = _failures(failing) if details else "not ready"
        return _line("down", why)
    if verdict.draining:
        return _line("drain", verdict.drain_reason if details else "draining")
    if verdict.status is Status.WARN:
        warning = [check.name for check in verdict.checks if check.contributes is Status.WARN]
        why = "degraded: " + ", ".join(warning) if details else ""
        return _line(f"up ready {warn_weight}%", why)
    return _line("up ready 100%", "")


def _failures(failing: list[CheckVerdict]) -> str:
    parts = []
    for check in failing:
        output = one_line(check.output)
        if len(output) > MAX_OUTPUT:
            output = output[: MAX_OUTPUT - 3] + "..."
        parts.append(f"{check.name}: {output}")
    return "; ".join(parts)


def _line(words: str, comment: str) -> bytes:
    if not comment:
        return f"{words}\n".encode("ascii")
    # One line of printable ASCII whatever the outputs held: a newline would
    # end the answer early, and HAProxy shows the comment as it is.
    text = one_line(comment).encode("ascii", "backslashreplace")
    if len(text) > MAX_COMMENT:
        text = text[: MAX_COMMENT - 3] + b"..."
    return words.encode("ascii") + b" #" + text + b"\n"


class HaproxyAgent:
    """The agent's TCP listener. `verdict()` gives the readiness verdict at the moment
    of each connection (drain included); nothing is judged in between."""

    def __init__(
        self,
        verdict: Callable[[], Verdict],
        *,
        warn_weight: int = 50,
        details: Callable[[], bool] = lambda: True,
        max_connections: int = 256,
        linger: float = 5.0,
    ) -> None:
        self.verdict = verdict
        self.warn_weight = warn_weight
        self.details = details
        self.max_connections = max_connections
        self.linger = linger
        #: Connections closed to make room for newer ones.
        self.evicted = 0
        self.answered = 0
        self._open: dict[_AgentConnection, None] = {}  # oldest first
        self._server: asyncio.Server | None = None

    def answer(self) -> bytes:
        return agent_line(self.verdict(), warn_weight=self.warn_weight, details=self.details())

    async def start(self, host: str, port: int) -> None:
        """Listen on `host:port` (port 0: any free one); OSError if it cannot bind."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _AgentConnection(self), host, port, reuse_address=True
        )

    @property
    def port(self) -> int | None:
        sockets = getattr(self._server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else None

    async def stop(self) -> None:
        """Stop listening and close every connection still open."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._open):
            connection.abort()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    def _opened(self, connection: _AgentConnection) -> None:
        self._open[connection] = None
        while len(self._open) > self.max_connections:
            oldest = next(iter(self._open))
            self._open.pop(oldest)
            self.evicted += 1
            oldest.abort()

    def _closed(self, connection: _AgentConnection) -> None:
        self._open.pop(connection, None)


class _AgentConnection(asyncio.Protocol):
    """One connection: the line at once, half-close, then wait for the client to close."""

    def __init__(self, agent: HaproxyAgent) -> None:
        self.agent = agent
        self.transport: asyncio.BaseTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport) or hasattr(transport, "write")
        self.transport = transport
        agent = self.agent
        agent._opened(self)
        try:
            line = agent.answer()
        except Exception:
            # A line HAProxy ignores rather than a guess; the cause is in the HTTP answers.
            line = b"#no verdict\n"
        write_transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
        write_transport.write(line)
        agent.answered += 1
        # FIN after the line, but not close(): closing with unread bytes from the
        # client (agent-send) would send a reset that may destroy the line in flight.
        if write_transport.can_write_eof():
            write_transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(agent.linger, self.abort)

    def data_received(self, data: bytes) -> None:
        pass  # never read: the answer does not depend on what the client says

    def eof_received(self) -> bool:
        return False  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.agent._closed(self)

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            abort = getattr(self.transport, "abort", None)
            if abort is not None:
                abort()
            else:
                self.transport.close()
