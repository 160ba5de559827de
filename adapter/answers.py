"""Rendered answers kept until the results they show change.

A thousand monitors polling `/health` between two runs all get the same
bytes, so each answer is judged and rendered once per change of the store
(its `version`), not once per request. An answer is kept only while no check
it shows can turn stale, because a stale check's output tells its age.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping

from adapter.config import Config

#: Distinct answers kept per endpoint (formats × tiers × `?exclude` sets); the
#: whole lot is dropped when a caller varies more than that.
MAX_ANSWERS = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """One rendered answer: HTTP status, body bytes, and the headers sent with it."""

    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    answer: Answer
    version: int  # of the store when it was rendered
    config: Config  # in force when it was rendered (a reload swaps it)
    valid_until: float  # monotonic: when the first check it shows turns stale


class AnswerCache:
    """The answers of one endpoint, by key, each kept while it is still the truth.

    The key is whatever tells two answers apart (format, access tier,
    `?exclude=` names, draining). An answer is valid while the store's
    `version` and the config in force are those it was rendered from, and the
    monotonic `now` is before its `valid_until`. Past `max_answers` distinct
    keys the whole lot is dropped: a caller that varies more gets no memory.
    """

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self._kept: dict[Hashable, _Kept] = {}
        self._max = max_answers

    def get(self, key: Hashable, version: int, config: Config, now: float) -> Answer | None:
        """The answer kept for `key`, or None if it is missing or no longer valid."""
        kept = self._kept.get(key)
        if kept is None or kept.version != version or kept.config is not config:
            return None
        if now >= kept.valid_until:
            return None
        return kept.answer

    def put(
        self, key: Hashable, answer: Answer, version: int, config: Config, valid_until: float
    ) -> None:
        """Keep `answer` for `key` until the store passes `version`, the config is
        swapped, or the monotonic clock reaches `valid_until` (`health.stale_at`).
        """
        if len(self._kept) >= self._max and key not in self._kept:
            self._kept.clear()
        self._kept[key] = _Kept(answer, version, config, valid_until)
