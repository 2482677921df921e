"""utils.subruns: children run a few at a time, and an interrupt of the parent stops them instead of
waiting for them to finish (each child then checkpoints as it would alone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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


PARENT = """
import json, pathlib, signal, sys
# As in a terminal: a job started with & by a script inherits SIGINT ignored, and Python keeps that.
signal.signal(signal.SIGINT, signal.default_int_handler)
from dcpnas.utils import subruns
subruns.GRACE_S = 0.5
markers = [pathlib.Path(p) for p in sys.argv[1:4]]
outcomes = []
def work(i):
    try:
        subruns.run_logged([sys.executable, "-c", sys.argv[4], str(markers[i])], markers[i].with_suffix(".log"))
        outcomes.append([i, "done"])
    except subruns.Stopped:
        outcomes.append([i, "stopped"])
try:
    subruns.run_all(work, range(3), jobs=2)
except KeyboardInterrupt:
    print(json.dumps({"raised": True, "outcomes": sorted(outcomes), "live": len(subruns._live)}))
    sys.exit(130)
print(json.dumps({"raised": False, "outcomes": sorted(outcomes)}))
"""


def test_an_interrupted_parent_stops_its_children_and_raises_again(tmp_path):
    # The parent is a process of its own, as ``dcpnas study`` is: a test worker's main thread
    # is not a reliable place to take a SIGINT.
    markers = [tmp_path / f"m{i}" for i in range(3)]
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *map(str, markers), CHILD],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 100                # the children sleep 120 s
    while time.monotonic() < deadline and not all(
            m.exists() and m.read_text() == "started" for m in markers[:2]):
        time.sleep(0.05)
    for _ in range(3):        # Ctrl-C pressed three times, to the parent only (as `kill -INT` sends it)
        os.kill(parent.pid, signal.SIGINT)
        time.sleep(0.02)
    try:
        out, err = parent.communicate(timeout=60)
    finally:
        parent.kill()
    assert parent.returncode == 130 and not err, (out, err)
    assert json.loads(out) == {"raised": True, "outcomes": [[0, "stopped"], [1, "stopped"]], "live": 0}
    assert [m.read_text() for m in markers[:2]] == ["SIGTERM", "SIGTERM"]
    assert not markers[2].exists()                 # queued, never started


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
