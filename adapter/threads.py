"""A small pool of daemon threads for plain-`def` probes.

The standard ThreadPoolExecutor joins its threads at interpreter exit, so one
probe blocked forever (a stat on a dead NFS mount) would keep the adapter from
ever exiting on SIGTERM. Threads cannot be killed; daemon threads at least do
not hold the process hostage.

Calls wait in submission order. The pool can say how many calls are ahead of
a waiting one and can withdraw a call that has not started, so that a run that
never got a thread is reported as queued, not as a probe that took too long,
and leaves nothing behind in the queue.

A thread stuck in a call its caller gave up on (`set_aside`) does not count
against `max_workers`, so stuck probes never starve the others; there are
never more stuck threads than blocking checks, since a check whose thread is
stuck starts no other. Threads beyond the cap end once they are free again.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(concurrent.futures.Executor):
    """An executor of at most `max_workers` daemon threads, started on demand.

    Unlike ThreadPoolExecutor, its threads never hold the exit: a probe stuck
    in a call forever cannot keep the adapter from stopping. A thread stuck in
    a call its caller gave up on (`set_aside`) no longer counts against
    `max_workers`. ValueError for `max_workers` below 1.
    """

    def __init__(self, max_workers: int, name: str = "probe") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._name = name
        #: Calls not yet taken by a thread, oldest first.
        self._waiting: collections.OrderedDict[concurrent.futures.Future[Any], _Call] = (
            collections.OrderedDict()
        )
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()
        self._idle = 0  # threads waiting for a call
        self._running = 0  # calls being run
        self._aside = 0  # threads stuck in calls given up on
        self._named = 0
        self._shutdown = False

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Queue `fn(*args, **kwargs)`; RuntimeError once the pool is shut down."""
        with self._changed:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self._waiting[future] = (fn, args, kwargs)
            # Start a thread only when the idle ones cannot take every waiting call.
            if len(self._waiting) > self._idle and len(self._threads) < self._cap:
                self._start_thread()
            self._changed.notify()
            return future

    @property
    def _cap(self) -> int:
        return self.max_workers + self._aside

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{self._named}", daemon=True
        )
        self._named += 1
        self._threads.append(thread)
        thread.start()

    def set_aside(self, future: concurrent.futures.Future[Any]) -> None:
        """Stop counting the thread running `future` against the cap until it returns.

        For a call whose caller gave up on it (a probe past its deadline):
        another thread may start in its place, for the calls waiting.
        """
        with self._changed:
            self._aside += 1
            if len(self._waiting) > self._idle and len(self._threads) < self._cap:
                self._start_thread()

        def returned(_: concurrent.futures.Future[Any]) -> None:
            with self._changed:
                self._aside -= 1

        future.add_done_callback(returned)

    def withdraw(self, future: concurrent.futures.Future[Any]) -> bool:
        """Cancel `future` if no thread has taken it yet; False when one has."""
        with self._changed:
            if self._waiting.pop(future, None) is None:
                return False
        future.cancel()
        return True

    def ahead_of(self, future: concurrent.futures.Future[Any]) -> tuple[int, int]:
        """(calls running, calls waiting ahead of `future`) at this moment.

        For a call that no longer waits, the second number is 0.
        """
        with self._changed:
            if future not in self._waiting:
                return self._running, 0
            queued = 0
            for waiting in self._waiting:
                if waiting is future:
                    break
                queued += not waiting.cancelled()
            return self._running, queued

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._waiting and not self._shutdown:
                    self._idle += 1
                    self._changed.wait()
                    self._idle -= 1
                if not self._waiting:
                    return
                future, (fn, args, kwargs) = self._waiting.popitem(last=False)
                if not future.set_running_or_notify_cancel():
                    continue
                self._running += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._changed:
                    self._running -= 1
            del future, fn, args, kwargs
            with self._changed:
                if len(self._threads) > self._cap and not self._waiting:
                    self._threads.remove(threading.current_thread())
                    return

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; with `cancel_futures`, cancel those not yet started;
        with `wait`, join every thread (a stuck one too: the adapter never waits)."""
        with self._changed:
            self._shutdown = True
            threads = list(self._threads)
            dropped = list(self._waiting) if cancel_futures else []
            if cancel_futures:
                self._waiting.clear()
            self._changed.notify_all()
        for future in dropped:
            future.cancel()
        if wait:
            for thread in threads:
                thread.join()

    @property
    def waiting(self) -> int:
        """Calls waiting for a thread."""
        with self._changed:
            return len(self._waiting)

    @property
    def threads(self) -> int:
        """Threads alive or started (never more than max_workers plus those set aside)."""
        return len(self._threads)
