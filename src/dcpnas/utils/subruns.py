"""Runs of the command line as child processes, a few at a time: the trials of a study and the
replicas of a search. A crash or a kill stays inside one child, and each child resumes from its own
checkpoint, so the parent only decides what to start, continue or skip.

An interrupt of the parent (SIGINT, SIGTERM) stops the children too: a terminal's Ctrl-C reaches
them directly (they share the parent's process group), and a child still running after a grace
period, as when only the parent was signalled, gets SIGTERM. Each saves what it has as it would alone
and exits; the parent then raises the interrupt again. Without that, the parent would wait for the
children to finish, which can be hours.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, TypeVar

from ..errors import DcpnasError
from .logging import console

__all__ = ["cli_prefix", "prepare_run", "run_logged", "run_all", "Stopped"]

T = TypeVar("T")
#: Seconds an interrupted parent gives its children to stop by themselves before it signals them.
GRACE_S = 10.0

_live: set[subprocess.Popen] = set()
_lock = threading.Lock()
_stopping = threading.Event()


class Stopped(DcpnasError):
    """A child that was stopped because the parent was interrupted (not a failure of its own)."""


def cli_prefix() -> list[str]:
    return [sys.executable, "-m", "dcpnas"]


def prepare_run(run_dir: Path, resume_file: str) -> Optional[bool]:
    """None: done; True: resume; False: start fresh (a run without a checkpoint is removed)."""
    if (run_dir / "summary.json").exists():
        return None
    if (run_dir / resume_file).exists():
        return True
    if run_dir.exists():
        shutil.rmtree(run_dir)  # no finished epoch: nothing to keep
    return False


def run_logged(cmd: Sequence[str], log: Path) -> None:
    """Run ``cmd`` with one thread, its output appended to ``log``; a non-zero exit raises one line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        with _lock:
            if _stopping.is_set():
                raise Stopped(f"{cmd[3]} in {log.parent} not started: interrupted")
            proc = subprocess.Popen(list(cmd), stdout=f, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL)
            _live.add(proc)
        try:
            rc = proc.wait()
        finally:
            with _lock:
                _live.discard(proc)
    if rc != 0:
        if _stopping.is_set():
            raise Stopped(f"{cmd[3]} in {log.parent} stopped: interrupted")
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise DcpnasError(f"{cmd[3]} in {log.parent} exited with status {rc}: "
                          f"{tail[0] if tail else 'no output'} (log: {log})")


def run_all(work: Callable[[T], None], items: Iterable[T], jobs: int,
            name: Callable[[T], str] = str) -> list[str]:
    """``work(item)`` for every item, ``jobs`` at a time. A ``DcpnasError`` of one item is printed as
    "NAME FAILED: ..." and returned with the others' (the rest go on); an interrupt stops the running
    children (see the module's docstring) and is raised again once they have exited."""
    failures: list[str] = []

    def guarded(item: T) -> None:
        try:
            work(item)
        except Stopped:
            pass
        except DcpnasError as exc:
            failures.append(str(exc))
            console(f"{name(item)} FAILED: {exc}")

    received: list[int] = []
    _stopping.clear()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        with _signals_recorded(received):
            try:
                pending = {pool.submit(guarded, item) for item in items}
                while pending and not received:
                    # A timeout, so that the main thread looks at ``received`` (and runs Python, to
                    # take a signal the kernel delivered to a worker thread) at least 5 times a second.
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
            except BaseException:
                _stop(pool)
                raise
            if received:
                _stop(pool)
        if received:  # the caller's own handler, now restored: KeyboardInterrupt, Terminated, ...
            signal.raise_signal(received[0])
            raise KeyboardInterrupt        # a handler that returned: stop all the same
    finally:
        _stopping.clear()
    pool.shutdown(wait=True)
    return failures


@contextlib.contextmanager
def _signals_recorded(received: list[int]):
    """While children run, SIGINT and SIGTERM are only recorded, and the main loop stops on them.
    Raised where the main thread happens to be, a second one cut the stop sequence short and left
    the children running (it can also land inside ``concurrent.futures``' lock handling).
    Signals the caller ignores stay ignored; off the main thread nothing is installed."""
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except ValueError:                       # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(pool: ThreadPoolExecutor) -> None:
    _stopping.set()
    pool.shutdown(wait=False, cancel_futures=True)
    _stop_children()
    pool.shutdown(wait=True)


def _stop_children() -> None:
    """Children the interrupt reached exit by themselves; after ``GRACE_S`` the others get SIGTERM,
    once (a second signal could cut short the checkpointing the first one started)."""
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        with _lock:
            if not _live:
                return
        time.sleep(0.1)
    with _lock:
        for proc in _live:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:       # exited meanwhile
                pass
