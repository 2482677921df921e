#!/usr/bin/env python3
"""Memory-safety gate: the package's CPU paths under valgrind memcheck, once per oneDNN ISA.

    python scripts/memcheck.py                 # host ISA and AVX2 (two processes, side by side)
    python scripts/memcheck.py --isa AVX2      # one ISA only

One interpreter per ISA runs, in process, tiny searches that between them reach the native kernels
the methods use: ``dcpnas`` with the GGN (Parent and 1-bit Child supernets, forward-mode J·v, the
decoupled step, checkpoints, the derived network's profile) and PC-DARTS's partial channels (one
channel per op, where the strided 1×1 bug also struck); then a two-step 1-bit training, ``export``
(packed file and ONNX) and ``eval`` of the packed file. The other methods run the same ops on the
same shapes (cpnas: dcpnas without the curvature product; darts, bnas: one supernet; random,
cpnas-sample: single paths; the exact curvature adds double backward) and are added by
``--all-methods`` (several times the cost, so not in CI). ``ONEDNN_MAX_CPU_ISA=AVX2``
makes an AVX-512 host take the AVX2 kernels too (where oneDNN's strided 1×1 bug wrote past its
workspace). The gate fails on any invalid read, write or free that ``memcheck.supp`` does not
name; that file holds the dynamic loader's start-up reports only. Uninitialised-value tracking is
off: it doubles the time and reports on CPython and NumPy, not on memory safety. Cost and
findings: docs/RESULTS.md#memcheck.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPRESSIONS = HERE / "memcheck.supp"
#: memcheck error kinds that are memory-safety bugs (uninitialised values are not tracked here).
FATAL = {"InvalidRead", "InvalidWrite", "InvalidFree", "MismatchedFree", "InvalidJump", "Overlap",
         "InvalidMemPool", "FishyValue"}

SEARCH_TINY = ["supernet.C=2", "supernet.layers=3", "schedule.rounds=1", "schedule.steps_per_epoch=1",
               "data.limit=32", "data.batch_size=8", "data.eval_batches=1", "tensorboard=false",
               "threads=1"]
#: name → extra arguments of a tiny ``dcpnas search`` (GATE: the ones CI runs).
SEARCHES = {
    "dcpnas-ggn": ["--method", "dcpnas"],
    "dcpnas-exact": ["--method", "dcpnas", "--set", "objective.curvature=exact"],
    "cpnas": ["--method", "cpnas"],
    "cpnas-sample": ["--method", "cpnas-sample", "--set", "sample.steps=1", "sample.eval_batches=1"],
    "bnas": ["--method", "bnas"],
    "darts": ["--method", "darts"],
    "pc-darts": ["--method", "darts", "--set", "supernet.C=4", "supernet.partial_channels=4"],
    "random": ["--method", "random", "--set", "random.samples=2", "random.epochs=1", "random.eval_batches=1"],
}
GATE = ("dcpnas-ggn", "pc-darts")
TRAIN_TINY = ["model.C=4", "model.layers=3", "data.batch_size=8", "data.train_limit=16", "data.test_limit=16",
              "data.augment=false", "epochs=1", "step1_epochs=1", "bn_recalibration=1", "device=cpu",
              "threads=1"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def workload(out: Path, only: list[str] | None = None) -> int:
    """Every path of the gate (or the searches named in ``only``), in this process (run under
    valgrind by ``gate``)."""
    from dcpnas.cli.main import main

    def run(*argv: str) -> None:
        t = time.perf_counter()
        code = main(list(argv))
        print(f"memcheck workload: {' '.join(argv[:2])} ... exit {code} in {time.perf_counter() - t:.0f} s",
              flush=True)
        if code != 0:
            raise SystemExit(f"memcheck workload: {' '.join(argv)} exited {code}")

    for name, extra in SEARCHES.items():
        if name not in (only or GATE):
            continue
        run("search", "--preset", "quick", "--quiet", "--out", str(out / f"search-{name}"),
            *_sets(SEARCH_TINY), *extra)
    if only and "dcpnas-ggn" not in only:
        return 0
    train = out / "train"
    run("train", "--preset", "quick", "-g", str(out / "search-dcpnas-ggn" / "genotype.json"),
        "--out", str(train), *_sets(TRAIN_TINY))
    run("export", "-c", str(train / "model.pt"), "--out", str(out / "model.dcpnas"),
        "--onnx", str(out / "model.onnx"))
    # The test split's first 16 images: every eval path at a tenth of a 1000-image pass's cost.
    run("eval", "-c", str(out / "model.dcpnas"), "--dataset", f"npz:{_eval_subset(out / 'eval16.npz')}")
    return 0


def _eval_subset(path: Path, n: int = 16) -> Path:
    import numpy as np

    from dcpnas.data import load_embedded

    ds = load_embedded()
    np.savez(path, x_train=ds.x_train[:n, 0].numpy(), y_train=ds.y_train[:n].numpy(),
             x_test=ds.x_test[:n, 0].numpy(), y_test=ds.y_test[:n].numpy())
    return path


def _errors(xml_file: Path) -> list[tuple[str, str]]:
    """(kind, what and first frames) of every error memcheck reported (suppressed ones are not
    listed). Read block by block, not as one XML document: when the program corrupts the heap,
    valgrind itself may abort and leave the document unfinished."""
    import html
    import re

    found = []
    for block in re.findall(r"<error>(.*?)</error>", xml_file.read_text(errors="replace"), re.S):
        kind = re.search(r"<kind>(\w+)</kind>", block)
        what = re.search(r"<what>(.*?)</what>|<text>(.*?)</text>", block, re.S)
        frames = re.findall(r"<fn>(.*?)</fn>", block)[:4]
        where = f"{(what.group(1) or what.group(2)) if what else ''} at {' < '.join(frames)}"
        found.append((kind.group(1) if kind else "?", html.unescape(where)))
    return found


def gate(isas: list[str], keep: Path | None, only: list[str] | None = None) -> int:
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        print("memcheck: valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    work = keep or Path(tempfile.mkdtemp(prefix="dcpnas-memcheck-"))
    procs = {}
    for isa in isas:
        # One OpenMP thread: valgrind runs one thread at a time, and idle OpenMP workers spinning
        # for work starve the one that has it (the package's paths are the same at any count).
        env = dict(os.environ, PYTHONFAULTHANDLER="1", OMP_NUM_THREADS="1")
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if isa != "default":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        d = work / isa
        d.mkdir(parents=True, exist_ok=True)
        cmd = ["valgrind", "--tool=memcheck", "--undef-value-errors=no", "--leak-check=no",
               f"--suppressions={SUPPRESSIONS}", "--xml=yes", f"--xml-file={d / 'memcheck.xml'}",
               "--error-limit=no", sys.executable, str(Path(__file__).resolve()), "--workload", str(d / "runs"),
               *(["--only", *only] if only else [])]
        log = open(d / "workload.log", "w")
        procs[isa] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.time(), d)
    failed = False
    for isa, (proc, log, start, d) in procs.items():
        code = proc.wait()
        log.close()
        errors = _errors(d / "memcheck.xml") if (d / "memcheck.xml").exists() else []
        fatal = [e for e in errors if e[0] in FATAL]
        print(f"memcheck [{isa}]: workload exit {code}, {len(fatal)} invalid accesses/frees "
              f"({len(errors)} reports in all), {time.time() - start:.0f} s")
        for kind, where in fatal[:10]:
            print(f"  {kind}: {where}")
        if code != 0 or fatal:
            failed = True
            print(f"  log: {d / 'workload.log'}; report: {d / 'memcheck.xml'}")
            print("  " + "\n  ".join((d / "workload.log").read_text().splitlines()[-15:]))
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"memcheck: {used.ru_utime + used.ru_stime:.0f} CPU-s in all; {'FAILED' if failed else 'clean'}")
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isa", nargs="+", default=["default", "AVX2"],
                   help="oneDNN ISAs to run (default: the host's and AVX2)")
    p.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    p.add_argument("--only", nargs="+", choices=tuple(SEARCHES),
                   help="these searches instead of the gate's (training, export and eval follow "
                        "dcpnas-ggn only)")
    p.add_argument("--all-methods", action="store_true", help="a tiny search of every method")
    p.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.all_methods:
        a.only = list(SEARCHES)
    if a.workload:
        return workload(a.workload, a.only)
    return gate(a.isa, a.keep, a.only)


if __name__ == "__main__":
    sys.exit(main())
