"""The HTTP face: `make_app(config)` returns the aiohttp application.

Handlers only read: the scheduler (started in `cleanup_ctx`) runs the probes
in the background and the handlers judge the latest results, so a thousand
pollers put no extra load on the watched application. Each route is an
endpoint value (adapter.endpoints) that says which checks it includes, how it
judges one and which status codes it answers; the handler asks
adapter.health for the verdict and looks the renderer the request asks for
(adapter.negotiation) up in adapter.formats.outputs. Starting, draining,
reloading and stopping are adapter.lifecycle's.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from aiohttp import web

from adapter import __version__
from adapter.access import CHALLENGE, may_see_details
from adapter.answers import Answer, AnswerCache
from adapter.config import CheckConfig, Config
from adapter.drain import Drain, drain_file_reason
from adapter.endpoints import (
    ROUTES,
    CheckSet,
    Endpoint,
    Metrics,
    OneCheck,
    empty_group_note,
)
from adapter.formats.outputs import Page, output_for
from adapter.formats.prometheus import AdapterMetrics
from adapter.health import Verdict, judge, one_check_verdict, shutting_down, stale_at
from adapter.listener import CLIENT_MAX_SIZE
from adapter.logs import event
from adapter.negotiation import Choice, Format, UnknownFormat, choose, default_choice
from adapter.reload import LiveConfig, Reloader
from adapter.scheduler import Scheduler
from adapter.services import service_verdict
from adapter.state import CheckState, StateStore
from probes import Resources, Status

log = logging.getLogger("health_adapter.checks")


#: The config in force (a reload swaps it): read it with `current_config(app)`.
LIVE = web.AppKey("live", LiveConfig)
STORE = web.AppKey("store", StateStore)
#: Made by the application's cleanup context; absent with `run_checks=False`.
SCHEDULER = web.AppKey("scheduler", Scheduler)
METRICS = web.AppKey("metrics", AdapterMetrics)
#: The monotonic clock the runs are timed with (seconds).
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
DRAIN = web.AppKey("drain", Drain)
#: Whether the scheduler starts with the application, or later (adapter.lifecycle).
START_CHECKS = web.AppKey("start_checks", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: On every answer: never cached, never sniffed (a check's output is never taken for
#: HTML or script).
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def make_app(
    config: Config,
    *,
    run_checks: bool = True,
    start_checks: bool = True,
    store: StateStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    drain: Drain | None = None,
) -> web.Application:
    """The adapter as an aiohttp application.

    With `run_checks` the scheduler is made with the application and stops
    with it; it starts with it too unless `start_checks` is False (the
    lifecycle starts it only once the port is bound, so that an address in
    use fails before any check runs). Tests that only want to render given
    states pass `run_checks=False` and their own `store`; `clock` is the
    monotonic clock the runs are timed with. `drain` is where draining is
    read (the lifecycle's, adapter.drain); the drain file of the config in
    force is added to its sources.
    """
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[LIVE] = LiveConfig(config)
    app[STORE] = store if store is not None else StateStore(c.name for c in config.checks)
    app[CLOCK] = clock
    app[DRAIN] = drain if drain is not None else Drain()
    app[DRAIN].add_source(lambda: drain_file_reason(current_config(app).server.drain_file))
    app[START_CHECKS] = start_checks
    # Its own collectors, read at scrape time: nothing global, nothing updated per run.
    app[METRICS] = AdapterMetrics(version=__version__, reloads=app[LIVE].reloads)
    app[STORE].subscribe(_log_transition)
    if run_checks:
        app.cleanup_ctx.append(_scheduler_context)
    for path, endpoint in ROUTES:
        handler = view_for(endpoint)
        # The same answer with a trailing slash, not a redirect (adapter.endpoints.ROUTES).
        for spelling in dict.fromkeys((path, path.rstrip("/") + "/")):
            app.router.add_get(spelling, handler)  # and HEAD
            app.router.add_route("*", spelling, _method_not_allowed)
    # Our own 404 and 405, so that they carry NO_STORE's headers like every answer;
    # a hook on every response instead costs /health about 9 % of its throughput
    # (`python -m bench --only throughput`).
    app.router.add_route("*", "/{path:.*}", _not_found)
    return app


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMethodNotAllowed(
        request.method, ["GET", "HEAD"], text="405: Method Not Allowed\n", headers=NO_STORE
    )


async def _not_found(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound(text="404: Not Found\n", headers=NO_STORE)


def view_for(endpoint: Endpoint) -> Handler:
    """The handler that answers for `endpoint`."""
    if isinstance(endpoint, CheckSet):
        return checks_view(endpoint)
    if isinstance(endpoint, OneCheck):
        return one_check_view(endpoint)
    return metrics_view(endpoint)


def current_config(app: web.Application) -> Config:
    """The config in force; a reload may swap it between two requests."""
    return app[LIVE].config


def reloader_for(app: web.Application, path: str | Path) -> Reloader:
    """A Reloader that swaps configs read from `path` into the running `app`."""
    return Reloader(path, app[LIVE], app[SCHEDULER], app[STORE])


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    scheduler = Scheduler(current_config(app).checks, app[STORE], resources=Resources())
    app[SCHEDULER] = scheduler
    if app[START_CHECKS]:
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


def verdict_of(app: web.Application, service: str) -> Verdict | None:
    """The verdict the ways in beside HTTP (gRPC health, the HAProxy agent) read
    for `service` (adapter.services), drained as /readyz is; None for an unknown name."""
    return service_verdict(
        current_config(app), app[STORE].states(), app[CLOCK](), service, app[DRAIN].reason
    )


def checks_view(endpoint: CheckSet) -> Handler:
    """A handler for a set of checks: `?exclude=NAME` (repeatable) leaves some out.

    This is what monitors poll, so its answers are kept (adapter.answers) and
    judged and rendered again only when a result changes. The endpoint of a
    group with no check in it passes, and says why in a note.
    """
    answers = AnswerCache()

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        exclude = tuple(request.query.getall("exclude", ())) if request.query_string else ()
        if exclude:
            _require_details(request)  # excluding by name would tell which check fails
        config, store, now = current_config(app), app[STORE], app[CLOCK]()
        choice = _choose(request, endpoint.default_format)
        output = output_for(choice.format)
        authorized = may_see_details(config, request.headers)
        drain = app[DRAIN].reason if endpoint.drains else None
        key = (choice, authorized, exclude, drain)
        answer = answers.get(key, store.version, config, now) if output.kept else None
        if answer is None:
            checks = endpoint.select(config)
            verdict = judge(
                checks, store.states(), now, exclude=exclude, per_check=endpoint.per_check
            )
            notes = [*_exclude_notes(verdict.unmatched, checks)]
            if endpoint.group is not None and not checks:
                notes.append(empty_group_note(endpoint.group))
            if notes:
                verdict = dataclasses.replace(verdict, notes=tuple(notes))
            if drain is not None:
                verdict = shutting_down(verdict, drain)
            status = endpoint.status_code(config, verdict.status)
            answer = _answer(
                app, verdict, choice, status, authorized=authorized, endpoint=endpoint.name
            )
            if output.kept:
                answers.put(key, answer, store.version, config, stale_at(checks, store.states()))
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


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


def one_check_view(endpoint: OneCheck) -> Handler:
    """A handler for one check of a set, by name: its own status, its recent runs.

    kubelet may poll `/livez/NAME` as often as `/livez`: answers are kept alike.
    """
    answers = AnswerCache()
    checks = endpoint.of

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        _require_details(request)  # before the name is looked up: no probing for names
        name = request.match_info["name"]
        config, store, now = current_config(app), app[STORE], app[CLOCK]()
        choice = _choose(request, Format.JSON)
        output = output_for(choice.format)
        key = (name, choice)
        answer = answers.get(key, store.version, config, now) if output.kept else None
        if answer is None:
            check = next((c for c in checks.select(config) if c.name == name), None)
            if check is None:
                meant = similar_name(name, [c.name for c in checks.select(config)])
                hint = f"; did you mean {meant!r}?" if meant else ""
                raise web.HTTPNotFound(
                    text=f"no check named {name!r}{checks.scope}{hint}\n", headers=NO_STORE
                )
            verdict = one_check_verdict(check, store.get(name), now, checks.per_check)
            status = checks.status_code(config, verdict.status)
            answer = _answer(
                app, verdict, choice, status, authorized=True, endpoint=checks.name, with_runs=True
            )
            if output.kept:
                answers.put(key, answer, store.version, config, stale_at([check], store.states()))
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


def metrics_view(endpoint: Metrics) -> Handler:
    """The handler for /metrics: every check's verdict, handed to the collectors."""

    async def handler(request: web.Request) -> web.Response:
        app = request.app
        config = current_config(app)
        verdict = judge(config.checks, app[STORE].states(), app[CLOCK]())
        answer = _answer(
            app,
            verdict,
            _choose(request, endpoint.default_format),
            endpoint.status,
            authorized=may_see_details(config, request.headers),
            endpoint=endpoint.name,
        )
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return handler


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
    status: int,
    *,
    authorized: bool,
    endpoint: str,
    with_runs: bool = False,
) -> Answer:
    """`verdict` rendered in the chosen format: in full for an `authorized`
    caller, else the verdict alone; renderers only render what they are given."""
    config = current_config(app)
    output = output_for(choice.format)
    page = Page(
        service=config.service,
        endpoint=endpoint,
        version=__version__,
        now=time.time(),
        metrics=app[METRICS],
        with_runs=with_runs,
    )
    if authorized:
        body = output.render(verdict, page)
    else:
        body = output.render_verdict_only(verdict.status, page)
    vary = "Accept" if config.server.details == "public" else "Accept, Authorization"
    return Answer(
        status=status,
        body=body,
        headers={**NO_STORE, "Vary": vary, "Content-Type": output.media(choice.media_type)},
    )


def _require_details(request: web.Request) -> None:
    if not may_see_details(current_config(request.app), request.headers):
        raise web.HTTPUnauthorized(
            text="this needs the bearer token (server.details: token)\n",
            headers={**NO_STORE, **CHALLENGE},
        )
