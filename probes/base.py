"""The probe API: what a probe is given, and what it returns.

A probe only probes. The runner that calls it owns the deadline, the timing
and the error handling, so `check()` may simply raise or block: an exception
becomes a `fail` with `ExcType: message`, a run past its timeout becomes a
`fail` "timed out after …".
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import msgspec

from probes.types import decode_custom

__all__ = ["OUTPUT_LIMIT", "Probe", "Reason", "Resources", "Result", "Status"]

T = TypeVar("T")

#: Bytes of a result's output that reach an answer, notes included: the runner
#: cuts a longer one (adapter.runner.sanitize), and probes that cut their own
#: (exec) cut to the same size.
OUTPUT_LIMIT = 4096


class Status(enum.StrEnum):
    """A check's status, ordered pass < warn < fail."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for pass, 1 for warn, 2 for fail: the order `worst` picks by."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: Any) -> Status:
        """The most severe of `statuses`; pass when there are none."""
        return max(statuses, key=_SEVERITY.__getitem__, default=cls.PASS)


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


class Reason(enum.StrEnum):
    """Why a check did not pass: a short, fixed vocabulary for alerts and dashboards."""

    TIMEOUT = "timeout"
    STUCK = "stuck"  # the previous run's thread is still blocked
    QUEUED = "queued"  # the run never started: no probe thread was free in time
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_ERROR = "connection_error"
    DNS = "dns"
    TLS = "tls"
    STATUS = "status"
    REDIRECT = "redirect"
    BODY_MISMATCH = "body_mismatch"
    HEADER_MISMATCH = "header_mismatch"
    NOT_TLS = "not_tls"  # require_tls: the final answer came over plain http
    CERT_EXPIRY = "cert_expiry"  # the peer's certificate expires within a configured limit
    FILE_MISSING = "file_missing"
    FILE_PRESENT = "file_present"
    FILE_STALE = "file_stale"
    CLOCK_SKEW = "clock_skew"  # a time read is in the future: its age cannot be known
    FILE_INVALID = "file_invalid"  # a directory, FIFO or device where a file is expected
    PERMISSION_DENIED = "permission_denied"
    PROCESS_MISSING = "process_missing"
    PROCESS_COUNT = "process_count"
    ACCESS_DENIED = "access_denied"
    UNKNOWN = "unknown"
    NO_RESULT = "no_result"
    STALE = "stale"
    FAILED = "failed"  # the probe reported a failure and named no more specific reason
    ERROR = "error"  # the probe raised or returned something that is not a Result


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One observation of a check.

    `status` is "pass", "warn" or "fail" (or a `Status`); `observed_value` is a
    finite number, reported with its `observed_unit` ("ms", "s", "items"…);
    `reason` is one of `Reason` and defaults to "failed" for failures.
    `cert_not_after` is the Unix time (seconds) at which the earliest
    certificate of the chain a TLS peer presented expires, for probes that
    speak TLS (probes.certificates); None otherwise.
    """

    status: Status
    output: str = ""
    observed_value: int | float | None = None
    observed_unit: str | None = None
    reason: Reason | None = None
    cert_not_after: float | None = None

    def __post_init__(self) -> None:
        try:
            status = Status(self.status)
        except ValueError:
            raise ValueError(
                f"Result status must be 'pass', 'warn' or 'fail', not {self.status!r}"
            ) from None
        object.__setattr__(self, "status", status)
        if not isinstance(self.output, str):
            raise TypeError(f"Result output must be a str, not {type(self.output).__name__}")
        value = self.observed_value
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"Result observed_value must be a number, not {type(value).__name__}"
                )
            if not math.isfinite(value):
                raise ValueError(f"Result observed_value must be finite, not {value!r}")
        expiry = self.cert_not_after
        if expiry is not None and (
            isinstance(expiry, bool)
            or not isinstance(expiry, int | float)
            or not math.isfinite(expiry)
        ):
            raise ValueError(f"Result cert_not_after must be a finite number, not {expiry!r}")
        if self.observed_unit is not None and not isinstance(self.observed_unit, str):
            raise TypeError("Result observed_unit must be a str")
        reason = self.reason
        if reason is None and status is Status.FAIL:
            reason = Reason.FAILED
        elif reason is not None:
            try:
                reason = Reason(reason)
            except ValueError:
                raise ValueError(
                    f"Result reason {reason!r} is not one of: {', '.join(Reason)}"
                ) from None
        object.__setattr__(self, "reason", reason)


class Resources:
    """Objects shared by every probe of one adapter: a process-table snapshot,
    connection pools, anything a plugin wants to create once.

    `get(factory)` returns the one instance made by calling `factory()`;
    instances with an `aclose()` or `close()` method are closed at shutdown.
    """

    def __init__(self) -> None:
        self._items: dict[Any, Any] = {}

    def get(self, factory: Callable[[], T], key: Any = None) -> T:
        """The one instance for `key` (by default `factory` itself), made by
        calling `factory()` the first time it is asked for."""
        key = factory if key is None else key
        try:
            return self._items[key]  # type: ignore[no-any-return]
        except KeyError:
            item = self._items[key] = factory()
            return item

    async def aclose(self) -> None:
        """Close every instance made, newest first, with its `aclose()` or `close()`."""
        items, self._items = list(self._items.values()), {}
        for item in reversed(items):
            closer = getattr(item, "aclose", None) or getattr(item, "close", None)
            if closer is None:
                continue
            outcome = closer()
            if inspect.isawaitable(outcome):
                await outcome


class Probe:
    """Base class of every probe.

    Subclasses implement `check()`, either `async def` (runs on the event loop
    and must not block it) or plain `def` (runs in a worker thread). They may
    declare `Options`, a msgspec Struct or a dataclass describing the probe
    block; the validated instance is `self.config`, and the block's raw keys
    stay available read-only as `self.options`.
    """

    Options: ClassVar[type | None] = None
    #: Whether later runs of this probe are spread with random jitter. Probes
    #: that only read local state shared by all checks (the process table) set
    #: it to False so that their checks run together and share one snapshot.
    jitter: ClassVar[bool] = True

    name: str
    options: Mapping[str, Any]
    config: Any
    resources: Resources

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        resources: Resources | None = None,
        *,
        config: Any = None,
    ) -> None:
        self.name = name
        self.options = MappingProxyType(dict(options or {}))
        self.config = self.parse_options(self.options) if config is None else config
        self.resources = resources if resources is not None else Resources()

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> Any:
        """Validate a probe block against `Options`.

        Raises `msgspec.ValidationError` whose message ends with the key path
        (`- at $.key`), which the config loader turns into a located error.
        """
        if cls.Options is None:
            return MappingProxyType(dict(options))
        if dataclasses.is_dataclass(cls.Options):
            known = {field.name for field in dataclasses.fields(cls.Options)}
            for key in options:
                if key not in known:
                    raise msgspec.ValidationError(f"Object contains unknown field `{key}`")
        return msgspec.convert(dict(options), cls.Options, strict=False, dec_hook=decode_custom)

    @classmethod
    def missing_requirement(cls) -> str | None:
        """What must be installed before this probe can run; None when nothing is missing.

        A probe built on an optional library returns how to install it; the
        config loader refuses a check that uses the probe with that text, and
        `health-adapter probes` shows it.
        """
        return None

    @classmethod
    def is_blocking(cls) -> bool:
        """True when `check` is a plain function that must run in a thread."""
        return not inspect.iscoroutinefunction(cls.check)

    def check(self) -> Result | Awaitable[Result]:  # pragma: no cover - the contract
        """Observe the target once and return a Result: `async def` or plain `def`.

        The contract, kept by the adapter's runner (adapter.runner), not by the probe:

        - Runs of one check never overlap; a plain `def` runs in a pool thread
          and must block only itself, an `async def` must never block the loop.
        - Raising is a failure: the run reports `fail`, output
          "ExcType: message", reason `error`; so is returning anything that is
          not a Result. A probe need not catch what it cannot explain better.
        - Overrunning the check's `timeout` (seconds, counted from the moment
          the probe starts) is a failure: `fail` "timed out after 2s", reason
          `timeout`. An `async def` probe is cancelled at the deadline and gets
          a second to act on it (an exec probe kills its process group); a
          plain `def` cannot be stopped, and until its thread returns each run
          of the check reports `fail` "previous run still running", reason
          `stuck`, instead of starting another. A probe that swallows its
          cancellation is treated the same way.
        - The output is capped at 4096 bytes (UTF-8) and made valid text.
          Retries and flapping are the check's thresholds (`failure_threshold`,
          `success_threshold`), not the probe's: one call, one observation.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement check()")

    async def close(self) -> None:
        """Release what the probe holds (sessions, sockets). Called at shutdown."""
