"""The command line: serve, check, validate, probes.

Exit codes: `validate` 0 valid, 2 invalid; `serve` 2 on an invalid config
(before any port is bound), 1 when it cannot listen; `check` is a Nagios
plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a bad config, or a --group
that no check belongs to).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from adapter import formats, logs
from adapter.config import (
    CheckConfig,
    Config,
    ConfigError,
    config_path_from,
    load_config,
)
from adapter.health import Verdict, in_group, judge
from adapter.registry import Registry, RegistryError
from adapter.scheduler import Scheduler
from adapter.state import StateStore

EXIT_INVALID_CONFIG = 2
EXIT_NAGIOS_UNKNOWN = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="health-adapter",
        description="Run health probes against an application and serve one uniform "
        "/health endpoint.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "-c", "--config", metavar="FILE",
            help="the YAML config file (default: $HEALTH_ADAPTER_CONFIG)",
        )
        return sub

    serve = with_config(commands.add_parser("serve", help="run the checks and serve /health"))
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="address to listen on (overrides the config's listen)")
    serve.add_argument("--log-format", choices=logs.FORMATS, default="text",
                       help="text (logfmt) or json lines (default: text)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])

    check = with_config(commands.add_parser(
        "check", help="run every check once and exit like a Nagios plugin"))
    check.add_argument("--group", metavar="NAME", help="only the checks in this group")

    with_config(commands.add_parser("validate", help="check the config file and print ok or "
                                    "every error"))

    probes = commands.add_parser("probes", help="list the probe types available")
    probes.add_argument("name", nargs="?", help="show one probe type's options")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"serve": cmd_serve, "check": cmd_check, "validate": cmd_validate,
               "probes": cmd_probes}[args.command]
    return handler(args)


def _load(args: argparse.Namespace) -> Config:
    path = config_path_from(args.config)
    if path is None:
        raise ConfigError(["no config file: pass --config FILE or set HEALTH_ADAPTER_CONFIG"],
                          "health-adapter")
    try:
        registry = Registry.discover()
    except RegistryError as exc:
        raise ConfigError([f"installed probe plugins clash: {exc}"], str(path)) from None
    return load_config(path, registry)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    count = len(config.checks)
    print(f"ok: {config.source}: {count} check{'s' if count != 1 else ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from adapter.server import ListenError, serve

    logs.configure(args.log_format, args.log_level)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        asyncio.run(serve(config, args.listen or config.listen))
    except ListenError as exc:
        print(f"health-adapter: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        first = exc.errors[0] if exc.errors else "invalid config"
        print(f"HEALTH UNKNOWN - invalid config: {first}")
        print(exc.report())
        return EXIT_NAGIOS_UNKNOWN
    checks = list(config.checks)
    if args.group:
        checks = in_group(checks, args.group)
        if not checks:
            print(f"HEALTH UNKNOWN - no check belongs to group {args.group!r} "
                  f"(groups: {', '.join(sorted(config.groups))})")
            return EXIT_NAGIOS_UNKNOWN
    verdict = asyncio.run(_run_once(checks))
    print(formats.nagios_text(verdict, config.service), end="")
    return formats.NAGIOS_EXIT[verdict.status]


async def _run_once(checks: list[CheckConfig]) -> Verdict:
    store = StateStore(check.name for check in checks)
    scheduler = Scheduler(checks, store)
    try:
        await scheduler.run_once()
    finally:
        await scheduler.stop()
    return judge(checks, store.states(), time.monotonic())


def cmd_probes(args: argparse.Namespace) -> int:
    try:
        registry = Registry.discover()
    except RegistryError as exc:
        print(f"health-adapter: {exc}", file=sys.stderr)
        return 1
    if args.name:
        try:
            info = registry.info(args.name)
            probe_class = registry.load(args.name)
        except RegistryError as exc:
            print(f"health-adapter: {exc}", file=sys.stderr)
            return 1
        print(f"{info.name}  ({info.source}, {info.target})")
        doc = (probe_class.__doc__ or "").strip()
        if doc:
            print(f"  {doc.splitlines()[0]}")
        return 0
    for info in registry:
        print(f"{info.name:<12} {info.source:<24} {info.target}")
    print(f"{'plugin':<12} {'built-in':<24} any class, given as plugin: {{class: module:Class}}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
