"""The HTTP face: `make_app(config)` returns the aiohttp application.

Handlers only read: the scheduler (started in `cleanup_ctx`) runs the probes
in the background and the handlers judge the latest results, so a thousand
pollers put no extra load on the watched application.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from adapter import formats
from adapter.config import CheckConfig, Config, parse_listen
from adapter.health import Verdict, in_group, judge, judge_check
from adapter.logs import event
from adapter.scheduler import Scheduler
from adapter.state import CheckState, StateStore
from probes import Resources, Status

log = logging.getLogger("health_adapter.checks")

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", StateStore)
SCHEDULER = web.AppKey("scheduler", Scheduler)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")


@dataclasses.dataclass
class Lifecycle:
    #: Set when the adapter is shutting down: /readyz answers 503 from then on.
    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_STORE = {"Cache-Control": "no-store"}


def make_app(
    config: Config,
    *,
    run_checks: bool = True,
    store: StateStore | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The adapter as an aiohttp application.

    With `run_checks` the scheduler starts with the application and stops with
    it; tests that only want to render given states pass `run_checks=False`
    and their own `store`.
    """
    app = web.Application(client_max_size=1024)
    app[CONFIG] = config
    app[STORE] = store if store is not None else StateStore(c.name for c in config.checks)
    app[CLOCK] = clock
    app[LIFECYCLE] = Lifecycle()
    app[STORE].subscribe(_log_transition)
    if run_checks:
        app.cleanup_ctx.append(_scheduler_context)
    app.router.add_get("/health", health)
    app.router.add_get("/health/{name}", health_of_check)
    app.router.add_get("/livez", group_handler("live"))
    app.router.add_get("/readyz", group_handler("ready"))
    return app


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    scheduler = Scheduler(app[CONFIG].checks, app[STORE], resources=Resources())
    app[SCHEDULER] = scheduler
    await scheduler.start()
    yield
    await scheduler.stop()


def _log_transition(name: str, old: CheckState, new: CheckState) -> None:
    if old.status is new.status:
        return
    result = new.last.result if new.last else None
    event(
        log, "check_transition",
        logging.WARNING if new.status is Status.FAIL else logging.INFO,
        check=name,
        old=old.status.value if old.status else "none",
        new=new.status.value if new.status else "none",
        reason=result.reason.value if result and result.reason else None,
        output=result.output if result else None,
    )


def _verdict(app: web.Application, checks: list[CheckConfig]) -> Verdict:
    return judge(checks, app[STORE].states(), app[CLOCK]())


def _status_code(app: web.Application, status: Status) -> int:
    return app[CONFIG].server.status_codes.for_status(status)


def _json_response(app: web.Application, body: bytes, status: Status) -> web.Response:
    return web.Response(
        body=body,
        status=_status_code(app, status),
        content_type=formats.HEALTH_JSON,
        headers=NO_STORE,
    )


async def health(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    verdict = _verdict(request.app, list(config.checks))
    return _json_response(
        request.app, formats.health_json(verdict, config.service), verdict.status
    )


async def health_of_check(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = request.match_info["name"]
    check = config.check(name)
    if check is None:
        raise web.HTTPNotFound(
            text=f"no check named {name!r}\n", headers=NO_STORE
        )
    verdict = judge_check(check, request.app[STORE].get(name), request.app[CLOCK]())
    return _json_response(
        request.app, formats.check_json(verdict, config.service), verdict.own_status
    )


def group_handler(group: str) -> Handler:
    label = f"{group}z"

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        verdict = _verdict(app, in_group(app[CONFIG].checks, group))
        if group == "ready" and app[LIFECYCLE].draining:
            verdict = Verdict(Status.FAIL, verdict.checks)
        if "verbose" in request.query:
            text = formats.verbose_text(verdict, label)
            if group == "ready" and app[LIFECYCLE].draining:
                text = "[-]shutdown in progress\n" + text
            return web.Response(
                text=text, status=_status_code(app, verdict.status), headers=NO_STORE
            )
        body = formats.health_json(verdict, app[CONFIG].service)
        return _json_response(app, body, verdict.status)

    handler.__name__ = f"{group}_handler"
    return handler


async def serve(
    config: Config,
    listen: str,
    *,
    shutdown_timeout: float = 5.0,
    ready: Callable[[web.AppRunner], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and stop well inside Kubernetes' 30 s."""
    host, port = parse_listen(listen)
    app = make_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    event(logging.getLogger("health_adapter"), "started", listen=listen,
          checks=len(config.checks), config=config.source)
    if ready is not None:
        ready(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    app[LIFECYCLE].draining = True
    event(logging.getLogger("health_adapter"), "stopping", signal=received[0] if received else "")
    await runner.cleanup()
    event(logging.getLogger("health_adapter"), "stopped")


class ListenError(Exception):
    """The listen address cannot be bound."""
