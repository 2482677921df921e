"""`dcpnas study`: set files read within bounds, the summary's statistics on hand-made results, and a
tiny study end to end (trials as subprocesses, skipped when finished, a label clash refused)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dcpnas.errors import ConfigError
from dcpnas.study import StudyConfig, aggregate, get_study_set, load_study_file, plan_trials
from dcpnas.study.sets import NULL, REFERENCE
from dcpnas.study.summary import format_markdown


def test_named_sets_hold_the_papers_rows():
    assert [e.label for e in get_study_set("table-4.3").entries] == [
        "dcpnas", "cpnas", "cpnas-sample", "bnas", "darts", "random", "dcpnas-exact"]
    assert {e.method for e in get_study_set("table-4.3").entries} >= {"cpnas-sample", "random"}
    assert [e.label for e in get_study_set("table-4.4").entries] == ["dcpnas", "l1", "cosine"]
    t42 = get_study_set("table-4.2").entries
    assert t42[-1].overrides == ("ablation.use_discrepancy=false", "ablation.use_reconstruction=false")
    with pytest.raises(ConfigError, match="did you mean table-4.3"):
        get_study_set("table-4.33")


def test_pc_darts_set_resolves_at_the_quick_preset():
    from dcpnas.search import resolve_search_config

    entries = get_study_set("pc-darts").entries
    assert [e.label for e in entries] == ["dcpnas", "pc2", "pc2-en"]
    for e in entries:  # every entry is a valid quick-preset search (K divides C = 4)
        cfg = resolve_search_config(preset="quick", method=e.method, overrides=list(e.overrides))
        assert cfg.supernet.edge_normalization == (e.label == "pc2-en")


def test_curvature_subbatch_set_resolves_at_the_quick_preset():
    from dcpnas.search import resolve_search_config

    entries = get_study_set("curvature-subbatch").entries
    assert [e.label for e in entries] == ["dcpnas", "cf1"]
    cfgs = [resolve_search_config(preset="quick", method=e.method, overrides=list(e.overrides))
            for e in entries]
    assert [c.objective.fraction for c in cfgs] == [0.25, 1.0]
    assert [c.objective.ggn_jvp for c in cfgs] == ["forward", "forward"]


def test_plan_adds_the_null_perturbation_seed_major(tmp_path):
    trials = plan_trials(StudyConfig("table-4.4", seeds=2), tmp_path)
    assert [(t.entry.label, t.seed) for t in trials[:4]] == [
        ("dcpnas", 0), ("l1", 0), ("cosine", 0), ("null", 0)]
    assert "supernet.alpha_perturbation=1e-09" in trials[3].entry.overrides
    assert len(plan_trials(StudyConfig("table-4.4", seeds=2, noise_floor=False), tmp_path)) == 6
    first = plan_trials(StudyConfig("table-4.4", seeds=2, priority=["null", "dcpnas"]), tmp_path)
    assert [(t.entry.label, t.seed) for t in first[:5]] == [
        ("dcpnas", 0), ("null", 0), ("dcpnas", 1), ("null", 1), ("l1", 0)]
    with pytest.raises(Exception, match="not an entry"):
        plan_trials(StudyConfig("table-4.4", priority=["l2"]), tmp_path)


@pytest.mark.parametrize("content, match", [
    ("not json", "not valid JSON"),
    ('{"entries": 3}', "list 'entries'"),
    ('{"entries": []}', "1..64"),
    ('{"entries": [{"label": "a", "colour": "red"}]}', "unknown keys"),
    ('{"entries": [{"label": "../x"}]}', "label"),
    ('{"entries": [{"label": "a", "overrides": ["lam"]}]}', "KEY=VALUE"),
    ('{"entries": [{"label": "a"}, {"label": "a"}]}', "duplicate labels"),
    ('{"entries": [{"label": 5}]}', "string 'label'"),
    ('{"search_only": "yes", "entries": [{"label": "a"}]}', "'search_only'"),
])
def test_study_file_errors_name_the_problem(tmp_path, content, match):
    p = tmp_path / "set.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_study_file(p)


def test_study_file_size_is_bounded(tmp_path):
    p = tmp_path / "big.json"
    p.write_text(" " * (1 << 20 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_study_file(p)


def test_study_file_is_read(tmp_path):
    p = tmp_path / "lams.json"
    p.write_text(json.dumps({"name": "lams", "entries": [
        {"label": "dcpnas"}, {"label": "lam-0.1", "overrides": ["objective.lam=0.1"]}]}))
    s = get_study_set(str(p))
    assert s.name == "lams" and s.entries[1].overrides == ("objective.lam=0.1",)
    assert not s.search_only
    p.write_text(json.dumps({"search_only": True, "entries": [{"label": "dcpnas"}]}))
    assert get_study_set(str(p)).search_only


def test_distribution_set_searches_only():
    s = get_study_set("distribution")
    assert [(e.label, e.method) for e in s.entries] == [
        ("dcpnas", "dcpnas"), ("cpnas", "cpnas"), ("darts", "darts")]
    assert s.search_only and not get_study_set("table-4.3").search_only


def dist_shared(g1: str, g2: str) -> float:
    """Share of the 16 genes two cells have in common, counted gene by gene per node."""
    from dcpnas.space.genotype import parse_genotype_string

    a, b = parse_genotype_string(g1), parse_genotype_string(g2)
    same = 0
    for cell in ("normal", "reduce"):
        for node in range(4):
            rest = list(getattr(b, cell)[2 * node:2 * node + 2])
            for gene in getattr(a, cell)[2 * node:2 * node + 2]:
                if gene in rest:
                    same += 1
                    rest.remove(gene)
    return same / 16


def test_distribution_view_by_hand():
    from dcpnas.space.named import NAMED_GENOTYPES
    from dcpnas.study.distribution import format_distribution, genotype_distribution

    v1, v2, mcn = (NAMED_GENOTYPES[n].to_darts() for n in ("DARTS_V1", "DARTS_V2", "DDPNAS_MCN_2"))
    res = [{"label": REFERENCE, "seed": s, "genotype": v2, "alphas": None} for s in range(3)]
    res += [{"label": "same", "seed": s, "genotype": v2, "alphas": None} for s in range(3)]
    res += [{"label": "mix", "seed": s, "genotype": g, "alphas": None} for s, g in enumerate((v1, v1, v2))]
    res += [{"label": "other", "seed": s, "genotype": mcn, "alphas": None} for s in range(3)]
    res += [{"label": "unsearched", "seed": 0, "genotype": None, "alphas": None}]
    view = genotype_distribution(res, [REFERENCE, "same", "mix", "other", "unsearched"])
    rows = view["rows"]
    assert rows[REFERENCE]["vs_reference"] is None and rows["unsearched"]["n"] == 0
    assert rows["same"]["vs_reference"]["distance"] == 0.0 and rows["same"]["vs_reference"]["p_value"] == 1.0
    assert rows["same"]["agreement"]["majority_choices"] == 16 and rows["same"]["agreement"]["pairwise"] == 1.0
    assert rows["same"]["consensus"] == v2
    # mix = {V1, V1, V2} against {V2 ×3}: d = (2/3)·d(V1, V2). Of the C(6, 3) = 20 splits of the
    # pooled {V1 ×2, V2 ×4}, d depends on how many V1 the first set holds: 2 (4 splits) or 0 (4)
    # give the observed d, 1 (12) gives 0, so p = 8/20.
    from dcpnas.space.distribution import distance
    from dcpnas.space.genotype import parse_genotype_string
    d12 = distance([parse_genotype_string(v1)], [parse_genotype_string(v2)])
    assert rows["mix"]["vs_reference"]["distance"] == pytest.approx(2 / 3 * d12)
    assert rows["mix"]["vs_reference"]["p_value"] == pytest.approx(8 / 20)
    assert sum(map(sum, rows["mix"]["frequency"]["normal"])) == 3 * 8
    # Paired by seed: (V1, V2), (V1, V2), (V2, V2). Of the 8 within-seed swap patterns, those that
    # move both V1 or neither keep the observed d (4), the others give 0: p = 4/8, p min 2/8.
    paired = rows["mix"]["paired_with_reference"]
    assert paired["seeds"] == [0, 1, 2] and paired["p_value"] == pytest.approx(0.5)
    assert paired["p_min"] == pytest.approx(0.25) and paired["distance"] == pytest.approx(2 / 3 * d12)
    shared12 = dist_shared(v1, v2)
    assert paired["shared"] == pytest.approx((2 * shared12 + 1) / 3)
    md = format_distribution(view)
    assert "| same | 3 | 16/16 (>= 2) | 1.00 | 0.000 | 1 | 0.1 | 1.00 | 1 | 0.25 |" in md
    assert f"* `same`: `{v2}`" in md


def _r(label, seed, top1, acc, alphas, method="dcpnas"):
    return {"label": label, "method": method, "seed": seed, "test_top1": top1,
            "search_val_acc": acc, "mbits": 1.0, "ops": 2e6, "search_time_s": 10.0,
            "alphas": alphas}


def test_aggregate_by_hand():
    res = [_r(REFERENCE, 0, 70.0, 0.5, [[0.0, 1.0]]), _r(REFERENCE, 1, 72.0, 0.7, [[1.0, 1.0]]),
           _r("x", 0, 71.0, 0.4, [[0.5, 1.0]]), _r("x", 1, 75.0, 0.6, [[1.0, -1.0]]),
           _r(NULL, 0, 70.5, 0.5, [[0.0, 1.1]]), _r(NULL, 1, 71.0, 0.7, [[1.0, 0.9]]),
           _r("s", 0, 60.0, 0.2, [[9.0, 9.0]], method="random")]
    agg = aggregate(res, [REFERENCE, "x", NULL, "s"])
    # A sampling method's α (one-hot codes) is not compared with the reference's.
    assert agg["rows"]["s"]["paired"]["max_d_alpha"]["n"] == 0
    assert agg["rows"]["s"]["paired"]["d_top1"]["values"] == pytest.approx([-10.0])
    x = agg["rows"]["x"]
    assert x["test_top1"]["mean"] == pytest.approx(73.0)
    assert x["test_top1"]["std"] == pytest.approx(math.sqrt(8.0))        # sample std of 71, 75
    assert x["paired"]["d_top1"]["values"] == pytest.approx([1.0, 3.0])
    assert x["paired"]["d_val_acc"]["values"] == pytest.approx([-0.1, -0.1])
    assert x["paired"]["max_d_alpha"]["values"] == pytest.approx([0.5, 2.0])
    floor = agg["noise_floor"]
    assert floor["max_d_alpha"] == pytest.approx(0.1)
    assert floor["abs_d_top1"] == pytest.approx(0.75)                    # |0.5|, |−1|
    assert agg["rows"][REFERENCE]["paired"]["d_top1"]["n"] == 0
    md = format_markdown(agg, "caption", {}, "cmd")
    assert "| x | 71.00 (+1.00) | 75.00 (+3.00) |" in md
    assert f"| {REFERENCE} | 70.00 | 72.00 |" in md and "| s | 60.00 (-10.00) | — |" in md


def _study(tmp_path, npz, *extra, out="st"):
    search = [f"data.dataset=npz:{npz}", "data.limit=32", "data.batch_size=8", "data.resolution=0",
              "supernet.C=2", "schedule.rounds=1", "schedule.steps_per_epoch=1",
              "data.eval_batches=1", "tensorboard=false"]
    cmd = [sys.executable, "-m", "dcpnas", "study", *extra, "--seeds", "1", "--no-train",
           "--jobs", "2", "--out", str(tmp_path / out), "--search-set", *search]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_study_end_to_end_skips_finished_trials_and_refuses_a_label_clash(tmp_path, tiny_npz):
    r = _study(tmp_path, tiny_npz, "smoke")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "st"
    summary = json.loads((out / "summary-smoke.json").read_text())
    assert set(summary["rows"]) == {"dcpnas", "cpnas", "null"}
    assert summary["rows"]["cpnas"]["paired"]["max_d_alpha"]["n"] == 1
    assert summary["noise_floor"]["max_d_alpha"] is not None
    assert (out / "summary-smoke.md").read_text().startswith("two entries")
    view = summary["distribution"]
    assert view["rows"]["cpnas"]["n"] == 1 and view["rows"]["cpnas"]["vs_reference"]["sizes"] == [1, 1]
    assert "as distributions" in (out / "summary-smoke.md").read_text()
    assert (out / "summary-smoke-genotypes.png").read_bytes()[:4] == b"\x89PNG"
    from dcpnas.space.genotype import load_genotype
    consensus = load_genotype(str(out / "summary-smoke-consensus-cpnas.json"))
    assert consensus.to_darts() == view["rows"]["cpnas"]["consensus"]
    for label in ("dcpnas", "cpnas", "null"):
        assert (out / label / "seed-0" / "search" / "summary.json").exists()
    # Run again: nothing to do, every trial is kept.
    stamp = (out / "dcpnas" / "seed-0" / "search" / "summary.json").stat().st_mtime_ns
    r = _study(tmp_path, tiny_npz, "smoke")
    assert r.returncode == 0 and "3 trials (3 done)" in r.stdout
    assert (out / "dcpnas" / "seed-0" / "search" / "summary.json").stat().st_mtime_ns == stamp
    # Every run recorded this code; a trial made by other code is kept but named in the summary.
    from dcpnas.utils.provenance import code_fingerprint
    summary = json.loads((out / "summary-smoke.json").read_text())
    assert list(summary["code_versions"]) == [code_fingerprint()]
    assert "versions of the code" not in (out / "summary-smoke.md").read_text()
    markers = [out / "cpnas" / "seed-0" / part / "dcpnas-run.json" for part in ("search", "train")]
    assert markers[0].exists()
    for marker in filter(Path.exists, markers):  # the smoke study may skip training
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "code": "0123456789abcdef"}))
    r = _study(tmp_path, tiny_npz, "smoke")
    assert r.returncode == 0 and "3 trials (3 done)" in r.stdout
    summary = json.loads((out / "summary-smoke.json").read_text())
    assert summary["code_versions"]["0123456789abcdef"] == ["cpnas/seed-0"]
    md = (out / "summary-smoke.md").read_text()
    assert "run by 2 versions of the code" in md and "0123456789abcdef: cpnas/seed-0" in md
    # A set that uses the label "cpnas" for another configuration is refused, nothing run.
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"entries": [{"label": "cpnas", "overrides": ["objective.lam=1"]}]}))
    r = _study(tmp_path, tiny_npz, str(clash))
    assert r.returncode == 2 and "another configuration" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_study_trains_given_cells_over_seeds(tmp_path, tiny_npz):
    """Entries with a genotype skip the search: their trials train that cell (no noise floor)."""
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps({"name": "cells", "entries": [
        {"label": "dcpnas", "genotype": "DARTS_V2"}, {"label": "mcn", "genotype": "DDPNAS_MCN_2"}]}))
    train = ["model.C=4", "model.layers=3", "data.batch_size=16", "data.train_limit=32",
             "data.augment=false", "epochs=1", "step1_epochs=1", "device=cpu",
             f"data.dataset=npz:{tiny_npz}"]
    cmd = [sys.executable, "-m", "dcpnas", "study", str(cells), "--seeds", "1", "--jobs", "2",
           "--out", str(tmp_path / "c"), "--train-set", *train]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "c"
    summary = json.loads((out / "summary-cells.json").read_text())
    assert set(summary["rows"]) == {"dcpnas", "mcn"}                  # no null: nothing is searched
    assert summary["rows"]["mcn"]["paired"]["d_top1"]["n"] == 1
    assert not (out / "mcn" / "seed-0" / "search").exists()
    md = (out / "summary-cells.md").read_text()
    top1 = {label: summary["rows"][label]["test_top1_values"][0] for label in ("dcpnas", "mcn")}
    assert f"| mcn | {top1['mcn']:.2f} ({top1['mcn'] - top1['dcpnas']:+.2f}) |" in md
    assert "as distributions" not in md                                  # no search, no genotype set
    assert "DDPNAS_MCN_2" in (out / "mcn" / "seed-0" / "train.log").read_text().splitlines()[0]
    trial = json.loads((out / "mcn" / "seed-0" / "trial.json").read_text())
    assert trial["entry"]["genotype"] == "DDPNAS_MCN_2"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "2 trials (2 done)" in r.stdout
    cells.write_text(json.dumps({"entries": [{"label": "x", "genotype": str(tmp_path / "missing.json")}]}))
    r = subprocess.run(cmd[:-len(train) - 1] + ["--out", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 2 and "missing.json" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_the_summary_names_the_command_that_reproduces_it():
    from dcpnas.study.runner import StudyConfig
    from dcpnas.study.summary import study_command

    cfg = StudyConfig("distribution", seeds=6, search_preset="fashion-mnist", noise_floor=False, jobs=2,
                      train=False, train_overrides=["epochs=1"])
    assert study_command(cfg) == ("dcpnas study distribution --seeds 6 --search-preset fashion-mnist "
                                  "--no-noise-floor")          # the set itself is searches-only
    cfg = StudyConfig("table-4.3", seeds=3, first_seed=2, train=False, search_overrides=["supernet.C=2"])
    assert study_command(cfg) == ("dcpnas study table-4.3 --seeds 3 --first-seed 2 --search-preset quick "
                                  "--search-only --search-set supernet.C=2")
    cfg = StudyConfig("table-4.2", train_overrides=["channels_last=false"])
    assert study_command(cfg) == ("dcpnas study table-4.2 --seeds 3 --search-preset quick --train-preset "
                                  "quick --train-set channels_last=false")
    from dcpnas.cli.main import build_parser
    for c in (StudyConfig("distribution", seeds=6, noise_floor=False, train=False),
              StudyConfig("table-4.3", train=False, first_seed=1)):
        argv = study_command(c).split()[1:]
        args = build_parser(argv)[0].parse_args(argv)    # it parses as the CLI's own
        assert args.seeds == c.seeds and args.no_train == (c.set_name != "distribution")  # a set may declare it
