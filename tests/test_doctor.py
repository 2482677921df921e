"""``dcpnas doctor``: the lines a bug report needs, each equal to what torch and the package say."""

from __future__ import annotations

import json
import re

import torch

from dcpnas import __version__
from dcpnas.cli.main import main
from dcpnas.utils.provenance import code_fingerprint


def test_doctor_reports_versions_isa_threads_and_fingerprint(capsys, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dcpnas"] == f"{__version__} (source {code_fingerprint()})"
    assert report["torch"] == torch.__version__
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)", torch.__config__.show())
    assert report["oneDNN"].startswith(onednn.group(1) if onednn else "not reported")
    assert report["cpu capability"] == torch.backends.cpu.get_cpu_capability()
    assert report["threads (torch)"].startswith(f"{torch.get_num_threads()} intra-op")
    assert report["cuda devices"] == ("none" if not torch.cuda.is_available() else report["cuda devices"])
    assert report["env ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert {"python", "cpu", "memory format", "fast kernels", "malloc tuning"} <= report.keys()


def test_doctor_prints_aligned_lines(capsys):
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dcpnas ") and any(line.startswith("cpu capability ") for line in lines)
    columns = {re.match(r"^(\S.*?\S)\s{2,}\S", line).end() for line in lines}
    assert len(columns) == 1, "values start in one column"
