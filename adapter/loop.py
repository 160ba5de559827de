"""The event loop the commands run on, and how it ends.

`asyncio.run` cancels what is left at the end and then waits for it, without
limit: one plugin that swallows its cancellation would keep the adapter from
ever exiting after SIGTERM. `run` gives what is left one cancellation and a
short grace, then leaves it behind and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from adapter.logs import event

T = TypeVar("T")
log = logging.getLogger("health_adapter")

#: How long tasks still running at the end get to finish once cancelled.
LEFTOVER_GRACE = 1.0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the `fast` extra), else None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], grace: float = LEFTOVER_GRACE) -> T:
    """Run `main` to its end on a new loop; never wait more than `grace` for leftovers."""
    factory = event_loop_factory() or asyncio.new_event_loop
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _end_leftovers(loop, grace)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _end_leftovers(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.wait(leftovers, timeout=grace))
    stuck = [task for task in leftovers if not task.done()]
    for task in leftovers:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: an error at exit is not news
    if stuck:
        # A probe that ignores its cancellation: it is abandoned, not waited for.
        event(
            log,
            "abandoned_tasks",
            logging.WARNING,
            count=len(stuck),
            tasks=", ".join(sorted(task.get_name() for task in stuck)),
        )
        _abandoned.extend(stuck)


# Kept referenced until the process ends, so that no "Task was destroyed but it
# is pending" noise follows the line above.
_abandoned: list[asyncio.Task[Any]] = []
