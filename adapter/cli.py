"""The command line: serve, check, validate, probes, schema.

Exit codes: `validate` 0 valid, 2 invalid; `serve` 2 on an invalid config
(before any port is bound), 1 when it cannot listen; `check` is a Nagios
plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a bad config or bad
arguments, a --group that no check belongs to, or with --url an adapter that
cannot be reached or does not answer like one).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import os
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Sequence

import aiohttp

from adapter import __version__, formats, logs, loop, stopping
from adapter.config import (
    MAX_TOKEN_BYTES,
    CheckConfig,
    Config,
    ConfigError,
    config_path_from,
    load_config,
)
from adapter.formats import nagios
from adapter.formats.printable import one_line
from adapter.health import Verdict, in_group, judge
from adapter.reaper import OrphanReaper
from adapter.registry import PLUGIN_KEY, ProbeType, Registry, RegistryError
from adapter.runner import describe_exception
from adapter.scheduler import Scheduler
from adapter.schema import config_schema, option_docs, render_schema
from adapter.state import StateStore
from adapter.stopping import StopRequested
from probes import Probe
from probes.types import format_duration, parse_duration

EXIT_INVALID_CONFIG = 2
EXIT_NAGIOS_UNKNOWN = 3
#: On SIGTERM, /readyz fails this long before the port closes: long enough for a
#: poller to see the adapter go unready, short against Kubernetes' 30 s grace period.
DEFAULT_SHUTDOWN_DELAY = 2.0


def build_parser() -> argparse.ArgumentParser:
    """The `health-adapter` command line: serve, validate, check, probes, schema."""
    parser = argparse.ArgumentParser(
        prog="health-adapter",
        description="Run health probes against an application and serve one uniform "
        "/health endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"health-adapter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="the YAML config file (default: $HEALTH_ADAPTER_CONFIG)",
        )
        return sub

    serve = with_config(commands.add_parser("serve", help="run the checks and serve /health"))
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on, or unix:/path.sock (overrides the config's listen)",
    )
    serve.add_argument(
        "--shutdown-delay",
        metavar="DURATION",
        type=_duration,
        default=DEFAULT_SHUTDOWN_DELAY,
        help="on SIGTERM, how long /readyz fails before the port closes "
        f"(default: {format_duration(DEFAULT_SHUTDOWN_DELAY)})",
    )
    serve.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default="text",
        help="text (logfmt) or json lines (default: text)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    check = with_config(
        commands.add_parser(
            "check",
            help="run every check once and exit like a Nagios plugin",
            description="Run every check once, or ask a running adapter with --url, and answer "
            "like a Nagios plugin: one summary line with performance data, one line per check, "
            "exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        )
    )
    check.add_argument("--group", metavar="NAME", help="only the checks in this group")
    check.add_argument(
        "--url",
        metavar="URL",
        help="ask the adapter serving this URL instead of running the checks "
        "here, e.g. http://HOST:9180/readyz",
    )
    check.add_argument(
        "--timeout",
        metavar="DURATION",
        default="10s",
        help="with --url: how long to wait for the answer (default: 10s)",
    )
    check.add_argument(
        "--token-file",
        metavar="FILE",
        help="with --url: send the bearer token in FILE, for an adapter whose "
        "details need it (server.details: token)",
    )

    with_config(
        commands.add_parser("validate", help="check the config file and print ok or every error")
    )

    probes = commands.add_parser("probes", help="list the probe types available")
    probes.add_argument("name", nargs="?", help="show one probe type's options")

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the config file, for editors"
    )
    schema.add_argument(
        "--builtin",
        action="store_true",
        help="only the built-in probe types (the schema shipped in the repo)",
    )
    return parser


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; `argv` defaults to `sys.argv[1:]`. Returns the exit status:
    0, 2 for an invalid config, 3 (Nagios UNKNOWN) when `check` cannot tell.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(arguments)
    except SystemExit as exc:
        # A monitor reads exit 2 as CRITICAL; a mistake in the command line is UNKNOWN.
        if exc.code == 2 and arguments[:1] == ["check"]:
            print("HEALTH UNKNOWN - invalid arguments (see health-adapter check --help)")
            return EXIT_NAGIOS_UNKNOWN
        raise
    handler = {
        "serve": cmd_serve,
        "check": cmd_check,
        "validate": cmd_validate,
        "probes": cmd_probes,
        "schema": cmd_schema,
    }[args.command]
    code: int | None = None
    try:
        code = handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    return EXIT_READER_GONE if code is None else code


#: The exit status when stdout's reader went away before the command was done
#: (128 + SIGPIPE, as the shell reports a writer that SIGPIPE ended).
EXIT_READER_GONE = 141


def _reader_gone() -> None:
    """Stdout's reader went away (`| head -1`): what it read stands; write nothing more,
    and no traceback or "Exception ignored" when Python flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _answer(text: str, code: int) -> int:
    """Write a Nagios answer and return its exit status, even when the reader stops early:
    `check | head -1` still exits with the state it printed."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    return code


def _load(args: argparse.Namespace) -> Config:
    path = config_path_from(args.config)
    if path is None:
        raise ConfigError(
            ["no config file: pass --config FILE or set HEALTH_ADAPTER_CONFIG"], "health-adapter"
        )
    try:
        registry = Registry.discover()
    except RegistryError as exc:
        raise ConfigError([f"installed probe plugins clash: {exc}"], str(path)) from None
    return load_config(path, registry)


def cmd_validate(args: argparse.Namespace) -> int:
    """`validate`: 0 and a one-line summary, or 2 and every error with where it is."""
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    count = len(config.checks)
    print(f"ok: {config.source}: {count} check{'s' if count != 1 else ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`serve`: run the adapter (adapter.lifecycle) until a stop signal; 0 after a
    clean stop, 2 for an invalid config, 1 when the address cannot be bound.
    """
    from adapter.lifecycle import serve
    from adapter.listener import ListenError

    logs.configure(args.log_format, args.log_level)
    try:
        # Loading imports the plugins, which may take long: a stop signal cuts it short.
        with stopping.interruptible():
            config = _load(args)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except StopRequested as stop:
        logger = logging.getLogger("health_adapter")
        logs.event(logger, "stopping", signal=stop.signal_name, during="start-up")
        logs.event(logger, "stopped")
        return 0
    try:
        loop.run(
            serve(
                config,
                args.listen or config.listen,
                config_path=config.source,
                shutdown_delay=args.shutdown_delay,
            )
        )
    except ListenError as exc:
        print(f"health-adapter: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """`check`: run the checks once (or read a running adapter with `--url`) and
    answer as a Nagios plugin: one line, perfdata, exit 0/1/2/3.
    """
    if args.url is not None:
        return check_url(args)
    try:
        config = _load(args)
    except ConfigError as exc:
        first = exc.errors[0] if exc.errors else "invalid config"
        # Plugin output: a "|" in a quoted bad value would start performance data.
        print(nagios.plain(f"HEALTH UNKNOWN - invalid config: {first}"))
        print(nagios.plain(exc.report()))
        return EXIT_NAGIOS_UNKNOWN
    checks = list(config.checks)
    if args.group:
        checks = in_group(checks, args.group)
        if not checks:
            close = difflib.get_close_matches(args.group, sorted(config.groups), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            print(
                f"HEALTH UNKNOWN - no check belongs to group {args.group!r}{hint} "
                f"(groups: {', '.join(sorted(config.groups))})"
            )
            return EXIT_NAGIOS_UNKNOWN
    try:
        verdict = loop.run(_run_once(checks))
    except StopRequested as stop:
        # A monitor's own timeout (NRPE, `timeout -s TERM`) ended the run: every
        # command it started has been killed and reaped, and the answer is UNKNOWN.
        print(f"HEALTH UNKNOWN - stopped by {stop.signal_name} before every check had run")
        return EXIT_NAGIOS_UNKNOWN
    return _answer(formats.nagios_text(verdict, config.service), formats.exit_code(verdict.status))


#: Read at most this much of a remote answer; the adapter's is within 8 KiB.
MAX_ANSWER_BYTES = 65536


def check_url(args: argparse.Namespace) -> int:
    """Ask a running adapter for its Nagios answer (`?format=nagios`) and pass it on."""
    if args.config is not None or args.group is not None:
        print(
            "HEALTH UNKNOWN - --url asks a running adapter; --config and --group apply "
            "only to running the checks here"
        )
        return EXIT_NAGIOS_UNKNOWN
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        print(f"HEALTH UNKNOWN - --timeout: {exc}")
        return EXIT_NAGIOS_UNKNOWN
    headers = {"Accept": "text/plain"}
    if args.token_file is not None:
        try:
            with open(args.token_file, "rb") as stream:
                token = stream.read(MAX_TOKEN_BYTES + 1).decode("utf-8", "replace").strip()
        except OSError as exc:
            print(
                f"HEALTH UNKNOWN - --token-file: cannot read {args.token_file}: "
                f"{exc.strerror or exc}"
            )
            return EXIT_NAGIOS_UNKNOWN
        headers["Authorization"] = f"Bearer {token}"
    url = args.url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        print(f"HEALTH UNKNOWN - invalid --url {url!r}: {exc}")
        return EXIT_NAGIOS_UNKNOWN
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"HEALTH UNKNOWN - invalid --url {url!r}: use http://HOST:PORT/PATH")
        return EXIT_NAGIOS_UNKNOWN
    # Keep the query (?exclude=…) and ask for the plugin answer.
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k != "format"
    ]
    asked = parts._replace(query=urllib.parse.urlencode([*query, ("format", "nagios")]))
    try:
        status, content_type, body = asyncio.run(_ask(asked.geturl(), timeout, headers))
    except TimeoutError:
        print(f"HEALTH UNKNOWN - {url} gave no answer within {format_duration(timeout)}")
        return EXIT_NAGIOS_UNKNOWN
    except aiohttp.ClientConnectorError as exc:
        print(
            f"HEALTH UNKNOWN - cannot connect to {parts.hostname}:{port}: "
            f"{connect_error(exc.os_error)}"
        )
        return EXIT_NAGIOS_UNKNOWN
    except aiohttp.ClientError as exc:
        print(nagios.plain(f"HEALTH UNKNOWN - {url}: {describe_exception(exc)}"))
        return EXIT_NAGIOS_UNKNOWN
    text = body.decode("utf-8", "replace")
    relayed = nagios.relay(text)
    if relayed is None:
        seen = one_line(text[:120]) if text.strip() else "an empty body"
        print(
            nagios.plain(
                f"HEALTH UNKNOWN - {url} did not answer like health-adapter "
                f"(HTTP {status}, {content_type or 'no content type'}): {seen}"
            )
        )
        return EXIT_NAGIOS_UNKNOWN
    answer, state = relayed
    return _answer(answer, nagios.EXIT_CODES[state])


async def _ask(url: str, timeout: float, headers: dict[str, str]) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as session,
        session.get(url, allow_redirects=False, headers=headers) as response,
    ):
        body = await response.content.read(MAX_ANSWER_BYTES)
        return response.status, response.content_type, body


def connect_error(error: OSError) -> str:
    """ "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 9)"."""
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if error.errno:
        return os.strerror(error.errno)
    return describe_exception(error)


async def _run_once(checks: list[CheckConfig]) -> Verdict:
    store = StateStore(check.name for check in checks)
    scheduler = Scheduler(checks, store)
    # The leftovers of its commands come back to `check` too, not to a PID 1 that may not reap.
    reaper = OrphanReaper() if OrphanReaper.needed() else None
    if reaper is not None:
        reaper.start()
    running = asyncio.current_task()
    event_loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_stop(signum: signal.Signals) -> None:
        if not received and running is not None:
            received.append(signum.name)
            running.cancel()

    for signum in stopping.STOP_SIGNALS:
        event_loop.add_signal_handler(signum, on_stop, signum)
    try:
        await scheduler.run_once()
    except asyncio.CancelledError:
        if not received:
            raise
        raise StopRequested(received[0]) from None
    finally:
        for signum in stopping.STOP_SIGNALS:
            event_loop.remove_signal_handler(signum)
        # Cancels what still runs: each command's process group is killed and reaped.
        await scheduler.stop()
        if reaper is not None:
            await reaper.stop()
    return judge(checks, store.states(), time.monotonic())


def cmd_probes(args: argparse.Namespace) -> int:
    """`probes [NAME]`: the installed probe types, or one type's options and an example."""
    try:
        registry = Registry.discover()
    except RegistryError as exc:
        print(f"health-adapter: {exc}", file=sys.stderr)
        return 1
    if args.name == PLUGIN_KEY:
        print(PLUGIN_HELP, end="")
        return 0
    if args.name and args.name not in registry:
        names = [*registry.names(), PLUGIN_KEY]
        close = difflib.get_close_matches(args.name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(
            f"health-adapter: unknown probe type {args.name!r}{hint} (probe types: {', '.join(names)})",
            file=sys.stderr,
        )
        return 1
    if args.name:
        try:
            info = registry.info(args.name)
            probe_class = registry.load(args.name)
        except RegistryError as exc:
            print(f"health-adapter: {exc}", file=sys.stderr)
            return 1
        print(describe_probe(info, probe_class), end="")
        return 0
    rows = [(info.name, info.source, _summary(registry, info.name)) for info in registry]
    rows.append((PLUGIN_KEY, "built-in", "any Probe subclass, as plugin: {class: module:Class}"))
    width = max(len(name) for name, _, _ in rows) + 2
    source_width = max(len(source) for _, source, _ in rows) + 2
    for name, source, summary in rows:
        print(f"{name:<{width}}{source:<{source_width}}{summary}".rstrip())
    return 0


PLUGIN_HELP = """plugin  (built-in)
  Any probes.Probe subclass the adapter can import, without packaging it.

options:
  class: text, required
      the class, as package.module:ClassName
  every other key
      an option of the plugin, validated by its Options class if it declares one
"""


def describe_probe(info: ProbeType, probe_class: type[Probe]) -> str:
    """`health-adapter probes NAME`: where the type comes from, what it does, its options."""
    lines = [f"{info.name}  ({info.source}, {info.target})"]
    doc = _first_line(probe_class.__doc__)
    if doc:
        lines.append(f"  {doc}")
    missing = probe_class.missing_requirement()
    if missing:
        lines.append(f"  not usable here: {missing}")
    docs = option_docs(probe_class)
    lines.append("")
    if docs is None:
        lines.append("options: not declared (the probe reads its block's keys itself)")
    else:
        lines.append("options:" if docs else "options: none")
    for option in docs or ():
        if option.required:
            facts = "required"
        elif option.default is not None:
            facts = f"default {option.default}"
        else:
            facts = "optional"
        lines.append(f"  {option.name}: {option.type}, {facts}")
        if option.description:
            lines.append(f"      {option.description}")
    return "\n".join(lines) + "\n"


def _summary(registry: Registry, name: str) -> str:
    try:
        probe_class = registry.load(name)
    except RegistryError as exc:
        return f"(cannot be loaded: {exc})"
    missing = probe_class.missing_requirement()
    summary = _first_line(probe_class.__doc__)
    return f"{summary} (not usable here: {missing})" if missing else summary


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


def cmd_schema(args: argparse.Namespace) -> int:
    """`schema`: the JSON schema of the config file, for the probe types installed (or built-in only)."""
    try:
        registry = Registry.discover([] if args.builtin else None)
    except RegistryError as exc:
        print(f"health-adapter: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_schema(config_schema(registry)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
