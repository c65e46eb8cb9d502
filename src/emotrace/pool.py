"""A local process pool whose tasks stop when the run does.

`ProcessPoolExecutor` alone waits for its running tasks when the code using it stops (Ctrl-C,
SIGTERM, an error), and a worker whose parent was killed goes on with the tasks already queued,
then waits for ever. Here, when the consumer of `run_in_pool` stops for any reason, the workers
get SIGTERM: a worker in a task raises `Interrupted` there (its `finally`s run: an atomic
writer removes its temporary file) and exits; an idle one exits at once. On Linux each worker
also gets SIGTERM when the parent process dies, even by SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from tqdm.auto import tqdm

from emotrace.errors import Interrupted

T = TypeVar("T")


def run_in_pool(task: Callable[[T], Any], items: list[T], workers: int
                ) -> Iterator[tuple[T, Future]]:
    """`task(item)` for every item in `workers` processes: (item, its done future) as each
    finishes. `task` must be importable (a module-level function), as the workers spawn."""
    # spawn, not fork: a forked child would inherit the parent's threads (progress bar,
    # ONNX Runtime pools) in whatever state they were
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_run_task, task, item): item for item in items}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                yield futures.pop(future), future
    except BaseException:
        # interrupted, or the consumer stopped (an error, or it closed this generator): end
        # the running tasks now instead of waiting for them
        for process in list(pool._processes.values()):  # no public way before Python 3.14
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_IN_TASK = False  # in a worker: whether a task is running (see _on_signal)


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # tqdm's default lock is a multiprocessing one, a named semaphore that a worker ended by
    # os._exit leaves to the resource tracker, which then warns on stderr; workers show no bars
    tqdm.set_lock(threading.RLock())
    with contextlib.suppress(OSError, AttributeError):  # not Linux: orphans finish their tasks
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that
        os._exit(128 + signal.SIGTERM)


def _on_signal(signum: int, frame: object) -> None:
    if not _IN_TASK:
        os._exit(128 + signum)  # idle: nothing to clean up
    for each in (signal.SIGTERM, signal.SIGINT):  # the pool may send more: one clean-up
        signal.signal(each, signal.SIG_IGN)
    raise Interrupted(signum)  # the task's `finally`s run, then _run_task exits


def _run_task(task: Callable[[T], Any], item: T) -> Any:
    """`task(item)` in a worker, which ends at once when it is told to stop."""
    global _IN_TASK
    _IN_TASK = True
    try:
        return task(item)
    except KeyboardInterrupt as exc:
        os._exit(128 + getattr(exc, "signum", signal.SIGINT))
    finally:
        _IN_TASK = False
