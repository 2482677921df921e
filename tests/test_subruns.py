"""utils.subruns: children run a few at a time, and an interrupt of the parent stops them instead of
waiting for them to finish (each child then checkpoints as it would alone)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from dcpnas.errors import DcpnasError
from dcpnas.utils import subruns

CHILD = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    out.write_text(signal.Signals(signum).name)
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
out.write_text("started")
time.sleep(120)
out.write_text("finished")
"""


def _cmd(marker):
    # run_logged names a child by its fourth word, as in ``python -m dcpnas search``.
    return [sys.executable, "-c", CHILD, str(marker)]


def test_an_interrupted_parent_stops_its_children_and_raises_again(tmp_path, monkeypatch):
    monkeypatch.setattr(subruns, "GRACE_S", 0.5)
    markers = [tmp_path / f"m{i}" for i in range(3)]
    outcomes = []

    def work(i):
        try:
            subruns.run_logged(_cmd(markers[i]), tmp_path / f"r{i}.log")
            outcomes.append((i, "done"))
        except subruns.Stopped:
            outcomes.append((i, "stopped"))

    def interrupt_when_both_run():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                m.exists() and m.read_text() == "started" for m in markers[:2]):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)      # as a terminal's Ctrl-C would, to the parent only

    threading.Thread(target=interrupt_when_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        subruns.run_all(work, range(3), jobs=2)
    assert [m.read_text() for m in markers[:2]] == ["SIGTERM", "SIGTERM"]
    assert not markers[2].exists()                 # queued, never started
    assert sorted(outcomes) == [(0, "stopped"), (1, "stopped")]
    assert not subruns._live


def test_a_failing_child_is_one_line_naming_its_log(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('bad input: x'); sys.exit(3)", "trial"]
    with pytest.raises(DcpnasError, match=r"trial in .* exited with status 3: bad input: x \(log: "):
        subruns.run_logged(cmd, tmp_path / "t" / "x.log")


def test_children_run_jobs_at_a_time(tmp_path):
    running, peak, lock = [0], [0], threading.Lock()

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        subruns.run_logged([sys.executable, "-c", "import time; time.sleep(0.3)", "x"], tmp_path / f"{i}.log")
        with lock:
            running[0] -= 1

    subruns.run_all(work, range(5), jobs=2)
    assert peak[0] == 2
    assert all((tmp_path / f"{i}.log").read_text().startswith("$ ") for i in range(5))


def test_a_failed_item_is_named_and_returned_while_the_others_go_on(tmp_path, capsys):
    def work(i):
        code = 3 if i == 1 else 0
        subruns.run_logged([sys.executable, "-c", f"import sys; sys.exit({code})", f"job{i}"],
                           tmp_path / f"{i}.log")

    failures = subruns.run_all(work, range(3), jobs=2, name=lambda i: f"job {i}")
    assert len(failures) == 1 and "job1 in" in failures[0] and "exited with status 3" in failures[0]
    assert capsys.readouterr().out.count("job 1 FAILED: job1 in") == 1
    assert all((tmp_path / f"{i}.log").exists() for i in range(3))
