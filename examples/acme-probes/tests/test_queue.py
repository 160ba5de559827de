"""queue_depth against a real queue server on loopback, run the way the adapter runs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from acme_probes.queue import QueueDepth

from adapter.testing import ConfigError, run_probe

DEPTHS = {"orders": 3, "emails": 250}


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _command, name = (await reader.readline()).decode().split()
    if name != "stuck":
        writer.write(f"{DEPTHS.get(name, 0)}\n".encode())
        await writer.drain()
    else:
        await reader.read()  # never answers, waits for the client to go
    writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("queue", "status", "output"),
    [
        ("orders", "pass", "3 messages wait in orders"),
        ("emails", "fail", "250 messages wait in emails, more than 100"),
    ],
)
async def test_depth_against_max_depth(port: int, queue: str, status: str, output: str) -> None:
    result = await run_probe(QueueDepth, {"port": port, "queue": queue, "max_depth": 100})

    assert (result.status, result.output) == (status, output)
    assert (result.observed_value, result.observed_unit) == (DEPTHS[queue], "messages")


async def test_warn_depth(port: int) -> None:
    result = await run_probe(
        QueueDepth, {"port": port, "queue": "orders", "max_depth": 10, "warn_depth": 2}
    )
    assert result.status == "warn"


async def test_used_by_its_entry_point_name(port: int) -> None:
    # Needs the package installed (pip install -e .): that is what registers the name.
    result = await run_probe("queue_depth", {"port": port, "queue": "orders", "max_depth": 5})
    assert result.status == "pass"


async def test_a_server_that_never_answers_times_out(port: int) -> None:
    result = await run_probe(
        QueueDepth, {"port": port, "queue": "stuck", "max_depth": 5}, timeout="200ms"
    )
    assert (result.status, result.output, result.reason) == (
        "fail",
        "timed out after 200ms",
        "timeout",
    )


async def test_a_closed_port_is_refused(port: int) -> None:
    result = await run_probe(QueueDepth, {"port": 1, "max_depth": 5})
    assert (result.status, result.reason) == ("fail", "connection_refused")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_depth": 5}, "checks[0] (test).queue_depth.port: required"),
        (
            {"port": 80, "max_depth": -1},
            "checks[0] (test).queue_depth.max_depth: expected an integer >= 0, got an integer -1",
        ),
        (
            {"port": 80, "max_depth": 5, "warn_depth": 9},
            "checks[0] (test).queue_depth.warn_depth: warn_depth must not exceed max_depth",
        ),
        (
            {"port": 80, "max_depht": 5},
            "checks[0] (test).queue_depth.max_depht: unknown key; did you mean 'max_depth'?",
        ),
    ],
)
def test_options_are_validated_like_the_adapter_does(options: dict, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        asyncio.run(run_probe(QueueDepth, options))
    assert caught.value.errors == [error]
