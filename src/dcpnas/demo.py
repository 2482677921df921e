"""The whole pipeline on the embedded data: search → train the found 1-bit network and a
real-valued reference → evaluate → profile → export, ending with one summary table.

    from dcpnas.demo import run_demo
    summary = run_demo("runs/demo")

Each stage writes into its own folder of ``out`` (``search/``, ``train-1bit/``, ``train-real/``,
``export/``); ``summary.json`` collects the figures the table prints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from .utils.io import atomic_write_json
from .utils.logging import console


def run_demo(out, *, search_preset: str = "quick", train_preset: str = "quick", method: str = "dcpnas",
             search_overrides: Iterable[str] = (), train_overrides: Iterable[str] = (),
             device: str = "auto", quiet: bool = False) -> dict:
    """Run every stage into ``out`` and return the summary (also written to out/summary.json).
    ``out`` is a run directory of its own (kind ``demo``): another run's directory is refused."""
    from .utils.rundir import check_run_dir, claim_run_dir, mark_finished

    check_run_dir(out, "demo")
    with claim_run_dir(out, "demo") as run:
        summary = _run_demo(Path(out), search_preset, train_preset, method, search_overrides, train_overrides,
                            device, quiet)
        mark_finished(run)
    return summary


def _run_demo(out: Path, search_preset: str, train_preset: str, method: str, search_overrides: Iterable[str],
              train_overrides: Iterable[str], device: str, quiet: bool) -> dict:
    from .config import resolve_config
    from .metrics.profile import profile_model
    from .search import search
    from .train import TrainConfig, export_onnx, export_packed, train

    started = time.time()
    extra = [f"device={device}"]

    console(f"[demo 1/4] {method} search (preset {search_preset}) -> {out / 'search'}")
    found = search(preset=search_preset, method=method, out=out / "search",
                   overrides=list(search_overrides) + extra, quiet=quiet)
    search_s = time.time() - started
    genotype_file = out / "search" / "genotype.json"

    results = {}
    for step, (name, binary) in enumerate((("1-bit", True), ("real-valued", False)), start=2):
        folder = out / ("train-1bit" if binary else "train-real")
        console(f"[demo {step}/4] train the found network, {name} (preset {train_preset}) -> {folder}")
        cfg = resolve_config(TrainConfig, "train", preset=train_preset,
                             overrides=[f"model.genotype={genotype_file}", f"model.binary={str(binary).lower()}",
                                        *train_overrides, *extra])
        t0 = time.time()
        res = train(cfg, folder)
        spec = res.spec
        prof = profile_model(res.model, (spec.in_channels, spec.image_size, spec.image_size))
        results[name] = {"top1": res.metrics.get("top1"), "top5": res.metrics.get("top5"),
                         "mbits": prof.mbits, "ops": prof.ops, "train_s": time.time() - t0,
                         "model": str(folder / "model.pt"), "curves": _curves(folder)}

    console(f"[demo 4/4] export the 1-bit network -> {out / 'export'}")
    packed = export_packed(out / "train-1bit" / "model.pt", out / "export" / "model.dcpnas")
    onnx_path = None
    try:
        from .train.modelfile import load_model

        model, spec, _ = load_model(out / "train-1bit" / "model.pt")
        onnx_path = str(export_onnx(model, out / "export" / "model.onnx",
                                    (spec.in_channels, spec.image_size, spec.image_size)))
    except Exception as exc:  # ONNX is a convenience here; the packed file is the deliverable
        console(f"[demo] ONNX export skipped: {exc}")

    summary = {
        "genotype": found.genotype.to_dict(), "genotype_darts": found.genotype.to_darts(),
        "search": _search_figures(found), "search_s": search_s, "total_s": time.time() - started, "networks": results,
        "export": {**packed.to_dict(), "onnx": onnx_path},
        "plots": {"cells": [str(p) for p in sorted((out / "search").glob("cell*"))
                            + sorted((out / "search").glob("genotype*.svg"))
                            + sorted((out / "search").glob("genotype*.png"))],
                  "alpha": [str(p) for p in sorted((out / "search").glob("alpha*"))],
                  "curves": [r["curves"] for r in results.values() if r["curves"]]},
    }
    atomic_write_json(out / "summary.json", summary)
    console(format_summary(summary))
    return summary


def _search_figures(found) -> dict:
    """Whether the search searched: search-val accuracies, α's entropy against ln 8, and the
    diagnostics of docs/METHOD.md (ρ, G's share, the backtrack ratio)."""
    import math

    hist = [h for h in found.history if "alpha_entropy" in h]
    final = found.summary.get("final", {})
    diag = found.summary.get("diagnostics", {})
    return {"parent_acc": final.get("parent_acc"), "child_acc": final.get("child_acc"),
            "entropy_start": math.log(8), "entropy_end": hist[-1]["alpha_entropy"] if hist else None,
            "rho": diag.get("rho", {}).get("mean"), "G_share": diag.get("G_share", {}).get("mean"),
            "backtrack_ratio": diag.get("child_backtrack_ratio", {}).get("mean")}


def _curves(folder: Path):
    found = sorted(folder.glob("curves*"))
    return str(found[0]) if found else None


def format_summary(s: dict) -> str:
    """The demo's closing table."""
    nets = s["networks"]
    ex = s["export"]
    rows = [f"{'network':<13}{'top-1 %':>9}{'top-5 %':>9}{'MBits':>9}{'OPs (M)':>10}{'train s':>9}"]
    for name, r in nets.items():
        rows.append(f"{name:<13}{_f(r['top1']):>9}{_f(r['top5']):>9}{r['mbits']:>9.3f}"
                    f"{r['ops'] / 1e6:>10.2f}{r['train_s']:>9.0f}")
    sf = s.get("search", {})
    lines = ["", "DCP-NAS demo summary", "-" * 59, *rows, "-" * 59,
             f"search time      {s['search_s']:.0f} s   (whole demo {s['total_s']:.0f} s)",
             f"search-val acc   Parent {_g(sf.get('parent_acc'))}, Child {_g(sf.get('child_acc'))}"
             f" (chance 0.10); H(α) {_g(sf.get('entropy_end'))} of ln 8 = 2.079",
             f"search acts      ρ {_g(sf.get('rho'))} (D's share of the α̂-step), G's share of the "
             f"weight step {_g(sf.get('G_share'))}, backtrack/Adam {_g(sf.get('backtrack_ratio'))}",
             f"genotype         {s['genotype_darts']}",
             f"files            fp32 model {ex.get('reference_file_bytes') or ex['fp32_state_bytes']:,} B -> "
             f"packed {ex['file_bytes']:,} B ({ex['file_ratio']:.1f}x); 1-bit weights "
             f"{ex['binary_ratio']:.1f}x smaller",
             f"packed model     {ex['path']}" + (f"   ONNX {ex['onnx']}" if ex.get("onnx") else "")]
    for kind in ("cells", "alpha", "curves"):
        for p in s["plots"][kind]:
            lines.append(f"{kind + ' plot':<17}{p}")
    return "\n".join(lines)


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"
