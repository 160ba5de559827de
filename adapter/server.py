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
import difflib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from adapter import __version__, formats, stopping
from adapter.access import CHALLENGE, may_see_details
from adapter.answers import Answer, AnswerCache
from adapter.config import ENDPOINT_GROUPS, CheckConfig, Config, StatusCodes
from adapter.formats import prometheus, verdict_only
from adapter.health import (
    PerCheck,
    Verdict,
    check_verdict,
    in_group,
    judge,
    one_check_verdict,
    shutting_down,
    stale_at,
    startup_verdict,
)
from adapter.listener import CLIENT_MAX_SIZE, start_listening
from adapter.logs import event
from adapter.negotiation import Choice, Format, UnknownFormat, choose, default_choice
from adapter.reaper import OrphanReaper
from adapter.reload import LiveConfig, Reloader
from adapter.scheduler import Scheduler
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
    #: Whether the scheduler starts with the application, or later (`serve`).
    start_checks: bool = True


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
    start_checks: bool = True,
    store: StateStore | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The adapter as an aiohttp application.

    With `run_checks` the scheduler is made with the application and stops
    with it; it starts with it too unless `start_checks` is False (`serve`
    starts it only once the port is bound, so that an address in use fails
    before any check runs). Tests that only want to render given states pass
    `run_checks=False` and their own `store`.
    """
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[LIVE] = LiveConfig(config)
    app[STORE] = store if store is not None else StateStore(c.name for c in config.checks)
    app[CLOCK] = clock
    app[LIFECYCLE] = Lifecycle(start_checks=start_checks)
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
    routes: list[tuple[str, Handler]] = [
        ("/health", checks_view(_all_checks)),
        ("/health/{name}", one_check_view(_all_checks)),
    ]
    for group in ENDPOINT_GROUPS:
        select = _group(group)
        drains = group == "ready"
        routes.append(
            (f"/{group}z", checks_view(select, label=f"{group}z", drains=drains, group=group))
        )
        routes.append((f"/{group}z/{{name}}", one_check_view(select, label=f"{group}z")))
    routes += [
        ("/startupz", checks_view(_all_checks, label="startupz", per_check=startup_verdict)),
        (
            "/startupz/{name}",
            one_check_view(_all_checks, label="startupz", per_check=startup_verdict),
        ),
        ("/metrics", metrics),
    ]
    app.router.add_get("/", checks_view(_all_checks, default=Format.HTML))
    for path, handler in routes:
        # Load balancers and people write a trailing slash: the same answer, not a
        # redirect, which not every monitor follows (HAProxy's httpchk does not).
        app.router.add_get(path, handler)  # and HEAD
        app.router.add_get(path + "/", handler)
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
    if app[LIFECYCLE].start_checks:
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
    per_check: PerCheck = check_verdict,
    drains: bool = False,
    group: str | None = None,
) -> Handler:
    """A handler for a set of checks: `?exclude=NAME` (repeatable) leaves some out.

    This is what monitors poll, so its answers are kept (adapter.answers) and
    judged and rendered again only when a result changes. The endpoint of a
    `group` with no check in it passes, and says why in a note.
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
        draining = drains and app[LIFECYCLE].draining
        key = (choice, details, exclude, draining)
        cacheable = choice.format in _KEPT_FORMATS
        answer = answers.get(key, store.version, config, now) if cacheable else None
        if answer is None:
            checks = select(config)
            verdict = judge(checks, store.states(), now, exclude=exclude, per_check=per_check)
            notes = [*_exclude_notes(verdict.unmatched, checks)]
            if group is not None and not checks:
                notes.append(empty_group_note(group))
            if notes:
                verdict = dataclasses.replace(verdict, notes=tuple(notes))
            if draining:
                verdict = shutting_down(verdict)
            answer = _answer(app, verdict, choice, details=details, label=label)
            if cacheable:
                answers.put(key, answer, store.version, config, stale_at(checks, store.states()))
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


def empty_group_note(group: str) -> str:
    return (
        f"no check is in group {group!r}, so /{group}z passes with nothing to check; "
        f"add {group!r} to a check's groups if this is not meant"
    )


def _exclude_notes(unmatched: Sequence[str], checks: Sequence[CheckConfig]) -> Iterator[str]:
    """A did-you-mean for each `?exclude=` name that matches no check, since a
    mistyped name leaves in the very check it meant to leave out."""
    for name in unmatched:
        meant = similar_name(name, [check.name for check in checks])
        if meant is not None:
            yield f"exclude={name} matches no check; did you mean {meant!r}?"


def similar_name(name: str, names: Sequence[str]) -> str | None:
    """The one of `names` that `name` differs from only by case, or else by a small edit."""
    folded = [candidate for candidate in names if candidate.casefold() == name.casefold()]
    if folded:
        return folded[0]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    return close[0] if close else None


def one_check_view(
    select: Selection, *, label: str = "health", per_check: PerCheck = check_verdict
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
                meant = similar_name(name, [c.name for c in select(config)])
                hint = f"; did you mean {meant!r}?" if meant else ""
                raise web.HTTPNotFound(
                    text=f"no check named {name!r}{where}{hint}\n", headers=NO_STORE
                )
            verdict = one_check_verdict(check, store.get(name), now, per_check)
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
            return formats.health_json(verdict, service, with_runs=detailed), choice.media_type
        case Format.TEXT:
            return formats.verbose_text(verdict, label).encode(), TEXT_UTF8
        case Format.NAGIOS:
            return formats.nagios_text(verdict, service).encode(), TEXT_UTF8
        case Format.HTML:
            page = formats.status_page(
                verdict, service=service, now=time.time(), version=__version__, with_runs=detailed
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

    The port is bound before the first check runs: an address in use raises
    ListenError with no check run. A stop signal at any moment, including one
    remembered by adapter.stopping before this began, ends in the same logged
    `stopping` and `stopped`; one that comes before the adapter has started
    skips the shutdown delay, since no one has seen it ready.
    """
    logger = logging.getLogger("health_adapter")
    stop = asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []
    background: set[asyncio.Task[object]] = set()
    app: web.Application | None = None
    reloader: Reloader | None = None

    def on_stop(signum: signal.Signals) -> None:
        if received:
            event(logger, "already_stopping", signal=signum.name)
            hurry.set()  # a second signal ends the shutdown delay
            return
        received.append(signum.name)
        if app is not None:
            app[LIFECYCLE].draining = True  # /readyz answers 503 from this moment
        stop.set()

    def on_reload() -> None:
        if reloader is None or received:
            return
        task = asyncio.create_task(reloader.reload("signal"), name="config reload")
        background.add(task)
        task.add_done_callback(background.discard)

    # First of all, so that no moment of start-up is left to the default (exit 143).
    previous = {signum: signal.getsignal(signum) for signum in stopping.STOP_SIGNALS}
    for signum in stopping.STOP_SIGNALS:
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    early = stopping.received()
    if early is not None:
        on_stop(signal.Signals[early])
    runner: web.AppRunner | None = None
    reaper: OrphanReaper | None = None
    started = False
    try:
        if not stop.is_set():
            # First, so that the leftovers of the very first commands come back here too.
            reaper = OrphanReaper() if OrphanReaper.needed() else None
            if reaper is not None:
                reaper.start()
            app = make_app(config, start_checks=False)
            runner = await start_listening(app, config, listen, shutdown_timeout=shutdown_timeout)
        if app is not None and runner is not None and not stop.is_set():
            await app[SCHEDULER].start()
            reloader = reloader_for(app, config_path) if config_path is not None else None
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
                loop=loop_name(loop),
            )
            log_empty_groups(config)
            started = True
            if ready is not None:
                ready(runner)
        await stop.wait()
        delay = shutdown_delay if started else 0.0
        event(
            logger,
            "stopping",
            signal=received[0] if received else "",
            shutdown_delay=format_duration(delay),
            during=None if started else "start-up",
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), delay)
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if app is not None and runner is not None:
            # Stop scheduling and cancel the runs in flight (exec probes kill their
            # children) while the last requests are answered from the store.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app[SCHEDULER].stop(), shutdown_timeout + 2)
            await runner.cleanup()
    finally:
        if reaper is not None:  # also when the port cannot be bound
            await reaper.stop()
        for signum in (*stopping.STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        # Back to what was there: in the command, adapter.stopping's, so that a
        # signal from here to the exit is remembered, not the default exit 143.
        for signum, handler in previous.items():
            if handler is not None:  # None: not set from Python, nothing to put back
                signal.signal(signum, handler)
    event(logger, "stopped")


def log_empty_groups(config: Config) -> None:
    """One line at start for /livez or /readyz with no check in its group: it passes
    with nothing to check, which is right for a /livez nobody asked for, and a
    mistake worth seeing for a /readyz whose checks are all elsewhere."""
    logger = logging.getLogger("health_adapter")
    for group in ENDPOINT_GROUPS:
        if in_group(config.checks, group):
            continue
        event(
            logger,
            "empty_group",
            logging.WARNING if group == "ready" else logging.INFO,
            endpoint=f"/{group}z",
            group=group,
            note=empty_group_note(group),
        )


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: which event loop runs, for the `started` line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
