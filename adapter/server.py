"""The HTTP face: `make_app(config)` returns the aiohttp application.

Handlers only read: the scheduler (started in `cleanup_ctx`) runs the probes
in the background and the handlers judge the latest results, so a thousand
pollers put no extra load on the watched application. Every handler selects
checks, asks adapter.health for the verdict and hands it to `respond`, which
picks the renderer the request asks for (adapter.negotiation).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from adapter import __version__, formats
from adapter.access import CHALLENGE, may_see_details
from adapter.answers import Answer, AnswerCache
from adapter.config import CheckConfig, Config, StatusCodes
from adapter.drain import drain_reason
from adapter.formats import prometheus, verdict_only
from adapter.health import (
    Judge,
    Verdict,
    in_group,
    judge,
    judge_alone,
    judge_check,
    judge_startup,
    shutting_down,
    stale_at,
)
from adapter.listener import CLIENT_MAX_SIZE, start_listening
from adapter.logs import event
from adapter.negotiation import Choice, Format, UnknownFormat, choose, default_choice
from adapter.notify import Notifier, notify_lifecycle
from adapter.reaper import OrphanReaper
from adapter.reload import LiveConfig, Reloader
from adapter.scheduler import Scheduler
from adapter.services import service_verdict
from adapter.side_listeners import start_side_listeners
from adapter.state import CheckState, StateStore
from probes import Resources, Status
from probes.types import format_duration

log = logging.getLogger("health_adapter.checks")

#: The config in force (a reload swaps it): read it with `current_config(app)`.
LIVE = web.AppKey("live", LiveConfig)
STORE = web.AppKey("store", StateStore)
SCHEDULER = web.AppKey("scheduler", Scheduler)
METRICS = web.AppKey("metrics", prometheus.AdapterMetrics)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")


@dataclasses.dataclass
class Lifecycle:
    #: Set when the adapter is shutting down: /readyz answers 503 from then on.
    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_STORE = {"Cache-Control": "no-store"}
#: Formats whose answers are kept between changes; the status page tells how
#: long ago things happened, and /metrics carries the adapter's own process figures.
_KEPT_FORMATS = frozenset({Format.JSON, Format.TEXT, Format.NAGIOS})
TEXT_UTF8 = "text/plain; charset=utf-8"
_KUBELET_CODES = StatusCodes()


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
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[LIVE] = LiveConfig(config)
    app[STORE] = store if store is not None else StateStore(c.name for c in config.checks)
    app[CLOCK] = clock
    app[LIFECYCLE] = Lifecycle()
    # Its own registry, read at scrape time: nothing global, nothing updated per run.
    app[METRICS] = prometheus.AdapterMetrics(
        lambda: _verdict(app, list(current_config(app).checks)),
        version=__version__,
        reloads=lambda: app[LIVE].reloads,
    )
    app[STORE].subscribe(_log_transition)
    app.on_response_prepare.append(_nosniff)
    if run_checks:
        app.cleanup_ctx.append(_scheduler_context)
    app.router.add_get("/", checks_view(_all_checks, default=Format.HTML))
    app.router.add_get("/health", checks_view(_all_checks))
    app.router.add_get("/health/{name}", one_check_view(_all_checks))
    for group in ("live", "ready"):
        select = _group(group)
        drains = group == "ready"
        app.router.add_get(f"/{group}z", checks_view(select, label=f"{group}z", drains=drains))
        app.router.add_get(f"/{group}z/{{name}}", one_check_view(select, label=f"{group}z"))
    app.router.add_get(
        "/startupz", checks_view(_all_checks, label="startupz", judge_one=judge_startup)
    )
    app.router.add_get(
        "/startupz/{name}", one_check_view(_all_checks, label="startupz", judge_one=judge_startup)
    )
    app.router.add_get("/metrics", metrics)
    return app


async def _nosniff(_request: web.Request, response: web.StreamResponse) -> None:
    # Every answer, errors included: a check's output is never sniffed into HTML or script.
    response.headers["X-Content-Type-Options"] = "nosniff"


def current_config(app: web.Application) -> Config:
    return app[LIVE].config


def reloader_for(app: web.Application, path: str | Path) -> Reloader:
    """A Reloader that swaps configs read from `path` into the running `app`."""
    return Reloader(path, app[LIVE], app[SCHEDULER], app[STORE])


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    scheduler = Scheduler(current_config(app).checks, app[STORE], resources=Resources())
    app[SCHEDULER] = scheduler
    await scheduler.start()
    yield
    await scheduler.stop()


def _log_transition(name: str, old: CheckState, new: CheckState) -> None:
    if old.status is new.status:
        return
    result = new.last.result if new.last else None
    event(
        log,
        "check_transition",
        logging.WARNING if new.status is Status.FAIL else logging.INFO,
        check=name,
        old=old.status.value if old.status else "none",
        new=new.status.value if new.status else "none",
        reason=result.reason.value if result and result.reason else None,
        output=result.output if result else None,
    )


def drain_of(app: web.Application) -> str | None:
    """Why readiness drains now (shutdown delay, `server.drain_file`), or None."""
    return drain_reason(app[LIFECYCLE].draining, current_config(app).server.drain_file)


def verdict_of(app: web.Application, service: str) -> Verdict | None:
    """The verdict gRPC health and the HAProxy agent read (adapter.services)."""
    return service_verdict(
        current_config(app), app[STORE].states(), app[CLOCK](), service, drain_of(app)
    )


Selection = Callable[[Config], list[CheckConfig]]


def _all_checks(config: Config) -> list[CheckConfig]:
    return list(config.checks)


def _group(group: str) -> Selection:
    return lambda config: in_group(config.checks, group)


def _verdict(app: web.Application, checks: list[CheckConfig]) -> Verdict:
    return judge(checks, app[STORE].states(), app[CLOCK]())


def checks_view(
    select: Selection,
    *,
    default: Format = Format.JSON,
    label: str = "health",
    judge_one: Judge = judge_check,
    drains: bool = False,
) -> Handler:
    """A handler for a set of checks: `?exclude=NAME` (repeatable) leaves some out.

    This is what monitors poll, so its answers are kept (adapter.answers) and
    judged and rendered again only when a result changes.
    """
    answers = AnswerCache()

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        exclude = tuple(request.query.getall("exclude", ())) if request.query_string else ()
        if exclude:
            _require_details(request)  # excluding by name would tell which check fails
        config, store, now = current_config(app), app[STORE], app[CLOCK]()
        choice = _choose(request, default)
        details = may_see_details(config, request.headers)
        drain = drain_of(app) if drains else None
        key = (choice, details, exclude, drain)
        cacheable = choice.format in _KEPT_FORMATS
        answer = answers.get(key, store.version, config, now) if cacheable else None
        if answer is None:
            checks = select(config)
            verdict = judge(checks, store.states(), now, exclude=exclude, judge_one=judge_one)
            if drain is not None:
                verdict = shutting_down(verdict, drain)
            answer = _answer(app, verdict, choice, details=details, label=label)
            if cacheable:
                answers.put(key, answer, store.version, config, stale_at(checks, store.states()))
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


def one_check_view(
    select: Selection, *, label: str = "health", judge_one: Judge = judge_check
) -> Handler:
    """A handler for one check of a set, by name: its own status, its recent runs.

    kubelet may poll `/livez/NAME` as often as `/livez`: answers are kept alike.
    """
    answers = AnswerCache()

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        _require_details(request)  # before the name is looked up: no probing for names
        name = request.match_info["name"]
        config, store, now = current_config(app), app[STORE], app[CLOCK]()
        choice = _choose(request, Format.JSON)
        key = (name, choice)
        cacheable = choice.format in _KEPT_FORMATS
        answer = answers.get(key, store.version, config, now) if cacheable else None
        if answer is None:
            check = next((c for c in select(config) if c.name == name), None)
            if check is None:
                where = "" if label == "health" else f" in {label}"
                raise web.HTTPNotFound(text=f"no check named {name!r}{where}\n", headers=NO_STORE)
            verdict = judge_alone(check, store.get(name), now, judge_one)
            answer = _answer(app, verdict, choice, details=True, label=label, detailed=True)
            if cacheable:
                answers.put(key, answer, store.version, config, stale_at([check], store.states()))
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition by default; always 200, since a scrape that fails loses it all."""
    app = request.app
    return respond(
        request,
        _verdict(app, list(current_config(app).checks)),
        default=Format.PROMETHEUS,
        registry=app[METRICS].registry,
        status=200,
    )


def respond(
    request: web.Request,
    verdict: Verdict,
    *,
    default: Format,
    label: str = "health",
    detailed: bool = False,
    registry: CollectorRegistry | None = None,
    status: int | None = None,
) -> web.Response:
    """Render `verdict` in the format the request asks for, with the verdict's status code."""
    app = request.app
    answer = _answer(
        app,
        verdict,
        _choose(request, default),
        details=may_see_details(current_config(app), request.headers),
        label=label,
        detailed=detailed,
        registry=registry,
        status=status,
    )
    return web.Response(body=answer.body, status=answer.status, headers=answer.headers)


def _choose(request: web.Request, default: Format) -> Choice:
    accept = request.headers.get("Accept")
    if not accept and not request.query_string:
        return default_choice(default)  # most monitors: nothing to negotiate
    try:
        return choose(request.query, accept, default)
    except UnknownFormat as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n", headers=NO_STORE) from None


def _answer(
    app: web.Application,
    verdict: Verdict,
    choice: Choice,
    *,
    details: bool,
    label: str,
    detailed: bool = False,
    registry: CollectorRegistry | None = None,
    status: int | None = None,
) -> Answer:
    if details:
        body, content_type = render(
            app, verdict, choice, label=label, detailed=detailed, registry=registry
        )
    else:
        body, content_type = render_verdict_only(verdict.status, choice, label)
    vary = "Accept" if current_config(app).server.details == "public" else "Accept, Authorization"
    return Answer(
        status=status if status is not None else _status_code(app, verdict.status, label),
        body=body,
        headers={**NO_STORE, "Vary": vary, "Content-Type": content_type},
    )


def _require_details(request: web.Request) -> None:
    if not may_see_details(current_config(request.app), request.headers):
        raise web.HTTPUnauthorized(
            text="this needs the bearer token (server.details: token)\n",
            headers={**NO_STORE, **CHALLENGE},
        )


def render_verdict_only(status: Status, choice: Choice, label: str) -> tuple[bytes, str]:
    """What an anonymous caller gets when details need the token: the verdict alone."""
    match choice.format:
        case Format.JSON:
            return verdict_only.json_body(status), choice.media_type
        case Format.TEXT:
            return verdict_only.text_body(status, label).encode(), TEXT_UTF8
        case Format.NAGIOS:
            return verdict_only.nagios_body(status).encode(), TEXT_UTF8
        case Format.HTML:
            return verdict_only.html_body(status).encode(), "text/html; charset=utf-8"
        case Format.PROMETHEUS | Format.OPENMETRICS:
            openmetrics = choice.format is Format.OPENMETRICS
            body = verdict_only.metrics_body(status, openmetrics_format=openmetrics)
            content_type = (
                prometheus.OPENMETRICS_TEXT if openmetrics else prometheus.PROMETHEUS_TEXT
            )
            return body, content_type


def render(
    app: web.Application,
    verdict: Verdict,
    choice: Choice,
    *,
    label: str,
    detailed: bool,
    registry: CollectorRegistry | None,
) -> tuple[bytes, str]:
    """The body and its content type; renderers only render the verdict they are given."""
    service = current_config(app).service
    match choice.format:
        case Format.JSON:
            return formats.health_json(verdict, service, detailed=detailed), choice.media_type
        case Format.TEXT:
            return formats.verbose_text(verdict, label).encode(), TEXT_UTF8
        case Format.NAGIOS:
            return formats.nagios_text(verdict, service).encode(), TEXT_UTF8
        case Format.HTML:
            page = formats.status_page(
                verdict, service=service, now=time.time(), version=__version__, detailed=detailed
            )
            return page.encode(), "text/html; charset=utf-8"
        case Format.PROMETHEUS | Format.OPENMETRICS:
            if registry is None:
                registry = app[METRICS].registry_for(lambda: verdict)
            openmetrics = choice.format is Format.OPENMETRICS
            body = prometheus.exposition_bytes(registry, openmetrics_format=openmetrics)
            content_type = (
                prometheus.OPENMETRICS_TEXT if openmetrics else prometheus.PROMETHEUS_TEXT
            )
            return body, content_type


def _status_code(app: web.Application, status: Status, label: str) -> int:
    """The verdict's status code: `server.status_codes` for /health and the page; the
    kubelet endpoints keep kubelet's meaning (200 pass or warn, 503 fail) whatever it
    maps, so a 429 meant for Consul never fails a pod's probe."""
    codes = current_config(app).server.status_codes if label == "health" else _KUBELET_CODES
    return codes.for_status(status)


async def serve(
    config: Config,
    listen: str,
    *,
    config_path: str | Path | None = None,
    shutdown_timeout: float = 3.0,
    shutdown_delay: float = 0.0,
    ready: Callable[[web.AppRunner], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and stop well inside Kubernetes' 30 s.

    SIGHUP re-reads `config_path` (and so does a change of the file, with
    `server.watch_config`). On SIGTERM /readyz turns 503 at once; for
    `shutdown_delay` seconds the adapter keeps serving and checking, so that load
    balancers and monitors polling it see it go unready before its port closes
    (a second signal ends the delay). Then the running probes are cancelled, the
    listening socket closes, and requests in flight get `shutdown_timeout`
    seconds to finish.
    """
    # First, so that the leftovers of the very first commands come back here too.
    reaper = OrphanReaper() if OrphanReaper.needed() else None
    if reaper is not None:
        reaper.start()
    try:
        app = make_app(config)
        runner = await start_listening(app, config, listen, shutdown_timeout=shutdown_timeout)
    except BaseException:
        if reaper is not None:
            await reaper.stop()
        raise
    try:
        side = await start_side_listeners(
            config.server,
            lambda service: verdict_of(app, service),
            app[STORE],
            details=lambda: current_config(app).server.details == "public",
        )
    except BaseException:
        await runner.cleanup()
        if reaper is not None:
            await reaper.stop()
        raise
    logger = logging.getLogger("health_adapter")
    notifier = Notifier.from_environ()
    reloader = reloader_for(app, config_path) if config_path is not None else None
    stop = asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []
    background: set[asyncio.Task[object]] = set()

    def on_stop(signum: signal.Signals) -> None:
        if received:
            event(logger, "already_stopping", signal=signum.name)
            hurry.set()  # a second signal ends the shutdown delay
            return
        received.append(signum.name)
        app[LIFECYCLE].draining = True  # /readyz answers 503 from this moment
        notifier.send("STOPPING=1")
        stop.set()

    def on_reload() -> None:
        if reloader is None or received:
            return
        task = asyncio.create_task(reloader.reload("signal"), name="config reload")
        background.add(task)
        task.add_done_callback(background.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    if reloader is not None and config.server.watch_config:
        background.add(asyncio.create_task(reloader.watch(), name="config watch"))
    # Everything made so far (modules, config, probes) lives as long as the
    # process: keep it out of the collector's scans, which otherwise grow with it.
    gc.freeze()
    event(
        logger,
        "started",
        listen=listen,
        checks=len(config.checks),
        config=config.source,
        pid=os.getpid(),
    )
    if ready is not None:
        ready(runner)
    background.add(
        asyncio.create_task(
            notify_lifecycle(
                notifier, app[STORE], app[SCHEDULER].alive, status=f"listening on {listen}"
            ),
            name="systemd notify",
        )
    )
    try:
        await stop.wait()
        event(
            logger,
            "stopping",
            signal=received[0] if received else "",
            shutdown_delay=format_duration(shutdown_delay),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), shutdown_delay)
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await side.stop(shutdown_timeout)
        # Stop scheduling and cancel the runs in flight (exec probes kill their
        # children) while the last requests are answered from the store.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app[SCHEDULER].stop(), shutdown_timeout + 2)
        await runner.cleanup()
        if reaper is not None:
            await reaper.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    event(logger, "stopped")
