"""The adapter configs the harness measures, written as YAML files."""

from __future__ import annotations

from pathlib import Path

#: How the extra processes of the process figure are started; check i matches
#: exactly the i-th of them.
SLEEP_SECONDS = 900


def sleep_argv(index: int) -> list[str]:
    return ["sleep", f"{SLEEP_SECONDS}.{index:04d}"]


def http_checks(
    count: int,
    app_url: str,
    *,
    interval: str = "1s",
    timeout: str = "2s",
    hang_url: str | None = None,
    keep_alive: bool = False,
) -> str:
    """`count` HTTP checks of the app, each its own path; with `hang_url`, the
    last one asks a target that never answers instead (and is not critical)."""
    extra = ", keep_alive: true" if keep_alive else ""
    lines = [
        "service: bench",
        f"defaults: {{interval: {interval}, timeout: {timeout}}}",
        "checks:",
    ]
    for index in range(count):
        if hang_url is not None and index == count - 1:
            lines.append(f"  - {{name: hang, critical: false, http: {{url: '{hang_url}'}}}}")
        else:
            lines.append(
                f"  - {{name: c{index:04d}, http: {{url: '{app_url}/c{index:04d}'{extra}}}}}"
            )
    return "\n".join(lines) + "\n"


def process_checks(count: int, *, interval: str = "1s") -> str:
    """`count` process checks, check i selecting the i-th extra `sleep` by its command line."""
    lines = [
        "service: bench",
        f"defaults: {{interval: {interval}, timeout: 5s}}",
        "checks:",
    ]
    for index in range(count):
        pattern = "^" + " ".join(sleep_argv(index)).replace(".", "\\\\.") + "$"
        lines.append(f'  - {{name: p{index:04d}, process: {{cmdline: "{pattern}"}}}}')
    return "\n".join(lines) + "\n"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path
