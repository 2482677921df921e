"""A sweep of bad inputs across every command and file format: each must give one ``dcpnas: error:``
line naming its culprit, exit status 2, no traceback, and leave every file as it was.

The inputs live in one module-wide folder (``world``): a dataset, genotype and model files written
directly (no training), crafted variants of each, and finished runs. Every case runs in-process and is
refused while validating, so the whole sweep takes seconds. A failing case says what went wrong:
ACCEPTED (exit 0), HANG (no answer within two minutes), TRACEBACK, NOT ONE LINE, WRONG CAUSE (the
needle is missing) or FILES CHANGED.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.cli.main import main

G = "('sep_conv_3x3', 0)"
G8 = ", ".join([G] * 8)
SEARCH_TINY = ["supernet.C=2", "schedule.rounds=1", "schedule.steps_per_epoch=1", "data.limit=32",
               "data.batch_size=8", "data.eval_batches=1", "tensorboard=false"]
TRAIN_TINY = ["model.C=4", "model.layers=3", "data.batch_size=16", "data.train_limit=32", "data.augment=false",
              "epochs=1", "step1_epochs=1", "device=cpu"]


def _sets(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def search(*extra, npz="{NPZ}") -> list[str]:
    return ["search", "--preset", "quick", "--quiet", "--out", "{OUT}",
            *_sets([f"data.dataset=npz:{npz}", *SEARCH_TINY, *extra])]


def train(*extra, npz="{NPZ}", genotype="{W}/g.json") -> list[str]:
    return ["train", "-g", genotype, "--out", "{OUT}", *_sets([f"data.dataset=npz:{npz}", *TRAIN_TINY, *extra])]


def genotype_text(normal: str = G8, normal_concat: str = "[2, 3, 4, 5]", reduce: str = G8,
                  reduce_concat: str = "[2, 3, 4, 5]") -> str:
    return (f"Genotype(normal=[{normal}], normal_concat={normal_concat}, reduce=[{reduce}], "
            f"reduce_concat={reduce_concat})")


def nested(*counts: int) -> str:
    return ", ".join("[" + ", ".join([G] * n) + "]" for n in counts)


# (id, argv, needles, environment) -------------------------------------------------------------------
CASES = [
    # search settings
    ("search-seed-negative", search("seed=-1"), ["seed must be in 0..2**63-1"]),
    ("search-seed-1e30", search("seed=1e30"), ["seed", "about 31 digits"]),
    ("search-seed-2^63", search("seed=9223372036854775808"), ["seed must be in"]),
    ("search-seed-2^64", search("seed=18446744073709551616"), ["seed must be in"]),
    ("search-seed-huge", search("seed=" + "9" * 400), ["seed must be in", "digits"]),
    ("search-seed-text", search("seed=abc"), ["seed"]),
    ("search-resolution-1", search("data.resolution=1"), ["resolution", "at least 4"]),
    ("search-resolution-3", search("data.resolution=3"), ["resolution", "got 3"]),
    ("search-resolution-negative", search("data.resolution=-2"), ["resolution"]),
    ("search-fisher-0", search("objective.fisher_microbatches=0"), ["fisher_microbatches"]),
    ("search-fisher-huge", search("objective.fisher_microbatches=1000000"), ["fisher_microbatches", "data.batch_size (8)"]),
    ("search-fisher-9", search("objective.fisher_microbatches=9"), ["fisher_microbatches (9)"]),
    ("search-C-huge", search("supernet.C=100000"), ["supernet.C must be at most 4096"]),
    ("search-layers-huge", search("supernet.layers=100000"), ["supernet.layers must be at most 256"]),
    ("search-C-4096", search("supernet.C=4096", "supernet.layers=64"), ["supernet.C=4096", "needs about"]),
    ("search-layers-256", search("supernet.C=512", "supernet.layers=256"), ["supernet.layers=256", "needs about"]),
    ("search-C-and-layers", search("supernet.C=2048", "supernet.layers=64"), ["supernet.C=2048", "needs about"]),
    ("search-batch-huge", search("data.batch_size=100000000", "data.limit=0"), ["batch"]),
    ("search-C-odd", search("supernet.C=3"), ["supernet", "even number"]),
    ("search-partial-not-dividing", search("supernet.partial_channels=3"), ["partial_channels"]),
    ("search-layers-2", search("supernet.layers=2"), ["layers must be >= 3"]),
    ("search-batch-0", search("data.batch_size=0"), ["batch_size"]),
    ("search-limit-1", search("data.limit=1"), ["limit"]),
    ("search-split-1.5", search("data.split_fraction=1.5"), ["split_fraction"]),
    ("search-rounds-0", search("schedule.rounds=0"), ["rounds"]),
    ("search-rounds-negative", search("schedule.rounds=-1"), ["rounds"]),
    ("search-lr-negative", search("optim.w.lr=-1"), ["lr"]),
    ("search-lr-min-above-lr", search("optim.w.lr_min=1"), ["lr_min"]),
    ("search-curvature-fraction-2", search("objective.curvature_fraction=2"), ["curvature_fraction"]),
    ("search-temperature-0", search("objective.temperature=0"), ["temperature"]),
    ("search-tau-99", search("decoupled.tau=99"), ["tau"]),
    ("search-method-unknown", search("method=nosuch"), ["method", "'nosuch'"]),
    ("search-layout-unknown", search("supernet.layout=hexagonal"), ["layout"]),
    ("search-distance-unknown", search("objective.distance=cosh"), ["distance"]),
    ("search-log-every-0", search("log_every=0"), ["log_every"]),
    ("search-threads-negative", search("threads=-1"), ["threads"]),
    ("search-unknown-key", search("nosuch.key=1"), ["nosuch"]),
    ("search-alpha-std-nan", search("supernet.alpha_init_std=nan"), ["alpha_init_std"]),
    ("search-lam-inf", search("objective.lam=inf"), ["objective.lam"]),
    ("search-eval-batches-negative", search("data.eval_batches=-1"), ["eval_batches"]),
    ("search-sweeps-0", search("sample.sweeps=0"), ["sweeps"]),
    ("search-samples-0", search("random.samples=0"), ["samples"]),
    ("search-npz-missing", search(npz="{W}/none.npz"), ["none.npz"]),
    ("search-npz-header-bomb", search(npz="{W}/bomb.npz"), ["bomb.npz", "claims shape"]),
    ("search-npz-header-short", search(npz="{W}/short.npz"), ["short.npz", "claims shape"]),
    ("search-npz-one-class", search(npz="{W}/one.npz"), ["one.npz", "every 'y_train' label is 3"]),
    ("search-npz-directory", search(npz="{W}"), [""]),
    # run directories of search, train, demo and study
    ("search-into-finished-search", search(), ["holds a finished search run"], {"{OUT}": "{W}/search-done"}),
    ("search-into-finished-train", search(), ["holds a train run"], {"{OUT}": "{W}/train-done"}),
    ("search-into-a-file", search(), ["not a directory"], {"{OUT}": "{W}/g.json"}),
    ("search-resume-of-train-run", search() + ["--resume"], ["holds a train run"], {"{OUT}": "{W}/train-done"}),
    ("train-into-finished-search", train(), ["holds a search run"], {"{OUT}": "{W}/search-done"}),
    ("train-into-finished-train", train(), ["holds a finished train run"], {"{OUT}": "{W}/train-done"}),
    ("train-into-finished-train-seed", train("seed=9"), ["finished train run"], {"{OUT}": "{W}/train-done"}),
    ("train-into-a-file", train(), ["not a directory"], {"{OUT}": "{W}/g.json"}),
    ("demo-into-search-run", ["demo", "--out", "{W}/search-done", "--device", "cpu"], ["holds a search run"]),
    ("demo-into-train-run", ["demo", "--out", "{W}/train-done", "--device", "cpu"], ["holds a train run"]),
    ("demo-into-a-file", ["demo", "--out", "{W}/g.json", "--device", "cpu"], ["not a directory"]),
    ("demo-into-a-photo-folder", ["demo", "--out", "{W}/photos", "--device", "cpu"], ["holds no dcpnas run"]),
    ("study-into-train-run", ["study", "smoke", "--out", "{W}/train-done", "--seeds", "1"], ["holds a train run"]),
    # config files
    ("config-seed-23-digits", ["search", "--config", "{W}/seed23.json", "--out", "{OUT}"], ["seed must be in"]),
    ("config-format-newer", ["search", "--config", "{W}/config9.json", "--out", "{OUT}"], ["dcpnas-config/9"]),
    ("config-missing", ["search", "--config", "{W}/none.json", "--out", "{OUT}"], ["none.json"]),
    ("config-toml-syntax", ["search", "--config", "{W}/bad.toml", "--out", "{OUT}"], ["bad.toml"]),
    ("config-json-list", ["search", "--config", "{W}/list.json", "--out", "{OUT}"], ["list.json", "table"]),
    ("config-fifo", ["search", "--config", "{W}/fifo.json", "--out", "{OUT}"], ["FIFO"]),
    ("config-train-seed", ["train", "-g", "DARTS_V2", "--config", "{W}/seed23.json", "--out", "{OUT}"],
     ["seed must be in"]),
    # training settings
    ("train-seed-negative", train("seed=-1"), ["seed must be in"]),
    ("train-seed-1e30", train("seed=1e30"), ["seed must be in"]),
    ("train-seed-2^63", train("seed=9223372036854775808"), ["seed must be in"]),
    ("train-C-huge", train("model.C=100000"), ["model.C must be at most 4096"]),
    ("train-layers-huge", train("model.layers=100000"), ["model.layers must be at most 256"]),
    ("train-C-4096", train("model.C=4096", "model.layers=256"), ["model.C=4096", "needs about"]),
    ("train-teacher-C-huge", train("teacher.kind=self", "teacher.C=100000"), ["teacher.C must be at most"]),
    ("train-batch-huge", train("data.batch_size=100000000"), ["batch"]),
    ("train-crop-padding-huge", train("data.crop_padding=100000", "data.augment=true"), ["data.crop_padding=100000"]),
    ("train-crop-padding-9", train("data.crop_padding=9", "data.augment=true"), ["data.crop_padding=9", "8x8"]),
    ("train-C-odd", train("model.C=3"), ["C must be an even number"]),
    ("train-layers-0", train("model.layers=0"), ["layers"]),
    ("train-batch-0", train("data.batch_size=0"), ["batch_size"]),
    ("train-epochs-0", train("epochs=0"), ["epochs"]),
    ("train-lr-nan", train("optim.lr=nan"), ["optim.lr"]),
    ("train-drop-path-1", train("model.drop_path=1"), ["drop_path"]),
    ("train-stem-0", train("model.stem_multiplier=0"), ["stem_multiplier"]),
    ("train-genotype-unknown", train(genotype="nosuch"), ["nosuch"]),
    ("train-torchvision-teacher", train("teacher.kind=torchvision"), ["torchvision"]),
    ("train-size-unknown", train("model.size=XXL"), ["size"]),
    ("train-npz-header-bomb", train(npz="{W}/bomb.npz"), ["bomb.npz", "claims shape"]),
    ("train-npz-one-class", train(npz="{W}/one.npz"), ["every 'y_train' label is 3"]),
    ("train-init-from-huge-spec", train("model.init_from={W}/huge.pt"), ["huge.pt", "needs about"]),
    ("train-init-from-newer-format", train("model.init_from={W}/model9.pt"), ["dcpnas-model/9"]),
    ("train-teacher-huge-spec", train("teacher.kind=checkpoint", "teacher.checkpoint={W}/huge.pt"), ["huge.pt"]),
    # genotypes
    ("genotype-concat-0", ["genotype", "show", genotype_text(normal_concat="[0]")], ["normal_concat [0]", "2..5"]),
    ("genotype-concat-1", ["genotype", "show", genotype_text(reduce_concat="[1, 2]")], ["reduce_concat [1, 2]"]),
    ("genotype-concat-6", ["genotype", "show", genotype_text(normal_concat="[6]")], ["normal_concat [6]"]),
    ("genotype-concat-negative", ["genotype", "show", genotype_text(normal_concat="[-1, 2]")], ["normal_concat"]),
    ("genotype-nested-3122", ["genotype", "show", genotype_text(normal=nested(3, 1, 2, 2))], ["node 2 lists 3 genes"]),
    ("genotype-nested-2213", ["genotype", "show", genotype_text(normal=nested(2, 2, 1, 3))], ["node 4 lists 1 genes"]),
    ("genotype-nested-empty-node", ["genotype", "show", genotype_text(normal=nested(2, 2, 2, 0, 2))], ["genes"]),
    ("genotype-nested-mixed", ["genotype", "show", genotype_text(normal=nested(2, 2, 2) + ", " + G + ", " + G)],
     ["mix the flat"]),
    ("genotype-file-concat-0", ["genotype", "show", "{W}/concat0.json"], ["concat0.json", "normal_concat [0]"]),
    ("genotype-file-format-newer", ["genotype", "show", "{W}/g9.json"], ["dcpnas-genotype/9"]),
    ("genotype-file-nested-3122", ["genotype", "show", "{W}/nested.txt"], ["nested.txt", "node 2 lists 3"]),
    ("genotype-convert-onto-input", ["genotype", "convert", "{W}/g.json", "--to", "darts", "--out", "{W}/g.json"],
     ["is the input"]),
    ("genotype-draw-onto-input", ["genotype", "draw", "{W}/g.json", "--out", "{W}/g.json"], ["is the input"]),
    ("genotype-convert-to-fifo", ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", "{W}/fifo.json"],
     ["a FIFO"]),
    ("genotype-convert-to-device", ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", "{DEV}"],
     ["a device"]),
    ("genotype-draw-to-device", ["genotype", "draw", "DARTS_V2", "--out", "{DEV}"], ["a device"]),
    ("profile-concat-0", ["profile", "-g", "{W}/concat0.json", "--size", "XS"], ["normal_concat [0]"]),
    ("profile-nested-3122", ["profile", "-g", "{W}/nested.txt", "--size", "XS"], ["node 2 lists 3"]),
    ("train-concat-0", train(genotype="{W}/concat0.json"), ["normal_concat [0]"]),
    # export
    ("export-out-is-checkpoint", ["export", "-c", "{W}/model.pt", "--out", "{W}/model.pt"], ["is the input"]),
    ("export-out-symlink-to-checkpoint", ["export", "-c", "{W}/model.pt", "--out", "{W}/link.pt"], ["is the input"]),
    ("export-out-hardlink-to-checkpoint", ["export", "-c", "{W}/model.pt", "--out", "{W}/hard.pt"], ["is the input"]),
    ("export-onnx-is-checkpoint", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx",
                                   "{W}/model.pt"], ["--onnx is the input"]),
    ("export-onnx-is-out", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{W}/new.dcpnas"],
     ["name the same file"]),
    ("export-onnx-is-existing-out", ["export", "-c", "{W}/model.pt", "--out", "{W}/m.dcpnas", "--onnx",
                                     "{W}/m.dcpnas"], ["name the same file"]),
    ("export-out-fifo", ["export", "-c", "{W}/model.pt", "--out", "{W}/fifo.json"], ["a FIFO"]),
    ("export-out-device", ["export", "-c", "{W}/model.pt", "--out", "{DEV}"], ["a device"]),
    ("export-onnx-device", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{DEV}"],
     ["a device"]),
    ("export-opset-99999", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{W}/new.onnx",
                            "--opset", "99999"], ["--opset 99999"]),
    ("export-opset-0", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{W}/new.onnx",
                        "--opset", "0"], ["--opset 0"]),
    ("export-opset-negative", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{W}/new.onnx",
                               "--opset", "-5"], ["--opset -5"]),
    ("export-dynamo-opset-99", ["export", "-c", "{W}/model.pt", "--out", "{W}/new.dcpnas", "--onnx", "{W}/new.onnx",
                                "--onnx-exporter", "dynamo", "--opset", "99"], ["--opset 99"]),
    ("export-huge-spec", ["export", "-c", "{W}/huge.pt", "--out", "{W}/new.dcpnas"], ["huge.pt", "needs about"]),
    ("export-newer-format", ["export", "-c", "{W}/model9.pt", "--out", "{W}/new.dcpnas"], ["dcpnas-model/9"]),
    # eval
    ("eval-huge-spec", ["eval", "-c", "{W}/huge.pt"], ["huge.pt", "C=4096, layers=256"]),
    ("eval-packed-huge-spec", ["eval", "-c", "{W}/huge.dcpnas"], ["huge.dcpnas", "needs about"]),
    ("eval-newer-format", ["eval", "-c", "{W}/model9.pt"], ["dcpnas-model/9"]),
    ("eval-batch-huge", ["eval", "-c", "{W}/model.pt", "--batch-size", "1000000000", "--device", "cpu"],
     ["--batch-size", "needs about"]),
    ("eval-npz-header-bomb", ["eval", "-c", "{W}/model.pt", "--dataset", "npz:{W}/bomb.npz", "--device", "cpu"],
     ["claims shape"]),
    ("eval-npz-short", ["eval", "-c", "{W}/model.pt", "--dataset", "npz:{W}/short.npz", "--device", "cpu"],
     ["claims shape"]),
    # profile
    ("profile-npz-header-bomb", ["profile", "--dataset", "npz:{W}/bomb.npz", "--size", "XS"], ["claims shape"]),
    ("profile-npz-short", ["profile", "--dataset", "npz:{W}/short.npz", "--size", "XS"], ["claims shape"]),
    # studies
    ("study-first-seed-negative", ["study", "smoke", "--out", "{OUT}", "--first-seed", "-1"], ["--first-seed"]),
    ("study-first-seed-2^63", ["study", "smoke", "--out", "{OUT}", "--first-seed", "9223372036854775808"],
     ["--first-seed"]),
    ("study-last-seed-2^63", ["study", "smoke", "--out", "{OUT}", "--first-seed", "9223372036854775807", "--seeds",
                              "2"], ["--first-seed + --seeds - 1"]),
    ("study-file-unknown-method", ["study", "{W}/set-method.json", "--out", "{OUT}"], ["study entry 'x'", "nosuch"]),
    ("study-file-unknown-key", ["study", "{W}/set-key.json", "--out", "{OUT}"], ["study entry 'x'", "objective"]),
    ("study-file-bad-value", ["study", "{W}/set-value.json", "--out", "{OUT}"], ["study entry 'x'", "even number"]),
    ("study-file-bad-seed", ["study", "{W}/set-seed.json", "--out", "{OUT}"], ["study entry 'x'", "seed"]),
    ("study-search-set-unknown", ["study", "smoke", "--out", "{OUT}", "--search-set", "nosuch=1"], ["nosuch"]),
    ("study-search-set-resolution", ["study", "smoke", "--out", "{OUT}", "--search-set", "data.resolution=2"],
     ["resolution"]),
    ("study-train-set-bad", ["study", "smoke", "--out", "{OUT}", "--train-set", "model.C=3"], ["model", "even"]),
    ("study-unknown-search-preset", ["study", "smoke", "--out", "{OUT}", "--search-preset", "nosuch"], ["nosuch"]),
    # messages stay one line of bounded length
    ("search-key-10k", search("k" * 10000 + "=1"), ["unknown"]),
    ("genotype-text-100k", ["genotype", "show", "Genotype(" + "x" * 100000 + ")"], ["genotype"]),
    ("genotype-op-10k", ["genotype", "show", genotype_text(normal=", ".join([f"('{'o' * 10000}', 0)"] * 8))],
     ["unknown operation"]),
    ("search-out-name-too-long", search(), ["too long"], {"{OUT}": "{W}/" + "n" * 5000}),
    # the memory ceiling
    ("limit-not-a-size", search(), ["DCPNAS_MEMORY_LIMIT='lots'"], {}, {"DCPNAS_MEMORY_LIMIT": "lots"}),
    ("limit-negative", search(), ["is not a size"], {}, {"DCPNAS_MEMORY_LIMIT": "-5"}),
    ("limit-1M-search", search(), ["1 MiB", "needs about"], {}, {"DCPNAS_MEMORY_LIMIT": "1M"}),
    ("limit-1K-train", train(), ["1 KiB", "needs about"], {}, {"DCPNAS_MEMORY_LIMIT": "1K"}),
    ("limit-1K-eval", ["eval", "-c", "{W}/model.pt", "--device", "cpu"], ["needs about"], {},
     {"DCPNAS_MEMORY_LIMIT": "1K"}),
    ("limit-1K-profile", ["profile", "--size", "XS"], ["needs about"], {}, {"DCPNAS_MEMORY_LIMIT": "1K"}),
]


def _snapshot(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.name == ".dcpnas.lock":
            continue
        if p.is_fifo():
            out[str(p.relative_to(folder))] = "fifo"
        elif p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(folder))] = "dir"
    return out


def _device(path: Path) -> None:
    """A character device like /dev/full where this process may make one (root): a write that replaced a
    device node then replaces this one, not the system's."""
    import stat

    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, AttributeError, OSError):
        pass                             # not root: /dev/full itself, which cannot be replaced then


def _npz_with_header(path: Path, shape, payload: int) -> Path:
    x, y = np.zeros((4, 8, 8), np.uint8), np.arange(4) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["x_train.npy"] = head.getvalue() + b"\0" * payload
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return path


@pytest.fixture(scope="module")
def world(tiny_npz, tmp_path_factory):
    from dcpnas.space.named import DARTS_V2
    from dcpnas.train.export import export_packed
    from dcpnas.train.modelfile import save_model
    from dcpnas.train.spec import ModelSpec
    from dcpnas.utils.io import atomic_write_json
    from dcpnas.utils.rundir import claim_run_dir, mark_finished
    from test_robustness import rewrite_packed

    w = tmp_path_factory.mktemp("world")
    DARTS_V2.save(w / "g.json")
    spec = ModelSpec(genotype=DARTS_V2.to_dict(), C=4, layers=3, layout="cifar", scope="official", binary=True,
                     in_channels=1, num_classes=10, image_size=8, dataset=f"npz:{tiny_npz}", mean=(0.3,),
                     std=(0.3,))
    torch.manual_seed(0)
    save_model(w / "model.pt", spec, spec.build(), {})
    export_packed(w / "model.pt", w / "m.dcpnas")
    payload = torch.load(w / "model.pt", weights_only=True)
    torch.save({**payload, "spec": {**payload["spec"], "C": 4096, "layers": 256}}, w / "huge.pt")
    torch.save({**payload, "format": "dcpnas-model/9"}, w / "model9.pt")
    rewrite_packed(w / "m.dcpnas", w / "huge.dcpnas", lambda h: h["spec"].update(C=4096, layers=256))
    (w / "link.pt").symlink_to(w / "model.pt")
    os.link(w / "model.pt", w / "hard.pt")
    os.mkfifo(w / "fifo.json")
    _device(w / "full")
    _npz_with_header(w / "bomb.npz", (1, 200000, 200000), 256)
    _npz_with_header(w / "short.npz", (100, 8, 8), 64)
    x = np.zeros((16, 8, 8), np.uint8)
    np.savez(w / "one.npz", x_train=x, y_train=np.full(16, 3), x_test=x, y_test=np.full(16, 3))
    (w / "seed23.json").write_text('{"seed": 12345678901234567890123}')
    (w / "config9.json").write_text(json.dumps({"config": {"seed": 1}, "meta": {"format": "dcpnas-config/9"}}))
    (w / "bad.toml").write_text("seed = = 3\n")
    (w / "list.json").write_text("[1, 2]")
    (w / "concat0.json").write_text(json.dumps({**DARTS_V2.to_dict(), "normal_concat": [0]}))
    (w / "g9.json").write_text(json.dumps({**DARTS_V2.to_dict(), "format": "dcpnas-genotype/9"}))
    (w / "nested.txt").write_text(genotype_text(normal=nested(3, 1, 2, 2)))
    for name, entry in (("method", {"method": "nosuch"}), ("key", {"overrides": ["objective.nosuch=1"]}),
                        ("value", {"overrides": ["supernet.C=3"]}), ("seed", {"overrides": ["seed=-4"]})):
        (w / f"set-{name}.json").write_text(json.dumps({"entries": [{"label": "dcpnas"}, {"label": "x", **entry}]}))
    (w / "photos").mkdir()
    (w / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    with claim_run_dir(w / "search-done", "search") as run:
        atomic_write_json(run.path / "summary.json", {"epochs": 1})
        DARTS_V2.save(run.path / "genotype.json")
        mark_finished(run)
    with claim_run_dir(w / "train-done", "train") as run:
        save_model(run.path / "model.pt", spec, spec.build(), {})
        atomic_write_json(run.path / "summary.json", {"epochs": 1})
        mark_finished(run)
    return w


def _fill(arg: str, w: Path, npz: Path, out: str) -> str:
    device = w / "full" if (w / "full").exists() else Path("/dev/full")
    return arg.replace("{OUT}", out).replace("{W}", str(w)).replace("{NPZ}", str(npz)).replace("{DEV}", str(device))


class _Hang(BaseException):
    """Raised by the alarm: not an OSError (TimeoutError is one), so nothing turns it into a message."""


def _outcome(code, err: str, needles, changed: bool) -> str | None:
    lines = [ln for ln in err.splitlines() if ln.startswith("dcpnas")]
    if code == 0:
        return "ACCEPTED"
    if code == "HANG":
        return "HANG"
    if "Traceback" in err:
        return "TRACEBACK"
    if code != 2 or len(lines) != 1 or not lines[0].startswith("dcpnas: error: ") or len(lines[0]) > 1100:
        return "NOT ONE LINE"
    if not all(n in lines[0] for n in needles):
        return "WRONG CAUSE"
    if changed:
        return "FILES CHANGED"
    return None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, world, tiny_npz, capsys, monkeypatch):
    name, argv, needles, *rest = case
    paths = rest[0] if rest else {}
    for key, value in (rest[1] if len(rest) > 1 else {}).items():
        monkeypatch.setenv(key, value)
    out = _fill(paths.get("{OUT}", "{W}/new-run"), world, tiny_npz, "")
    argv = [_fill(a, world, tiny_npz, out) for a in argv]
    before = _snapshot(world)
    capsys.readouterr()

    def hang(*_):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    try:
        code = main(argv)
    except _Hang:
        code, err = "HANG", capsys.readouterr().err
    except BaseException as exc:          # noqa: BLE001 - what escapes main is the finding
        code = f"{type(exc).__name__}"
        err = capsys.readouterr().err + f"\nTraceback: {type(exc).__name__}: {exc}"
    else:
        err = capsys.readouterr().err
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    outcome = _outcome(code, err, [_fill(n, world, tiny_npz, out) for n in needles], _snapshot(world) != before)
    assert outcome is None, f"{outcome}: dcpnas {' '.join(argv)} -> exit {code}: {err.strip()[-600:]}"


def test_the_sweep_is_large_enough():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)
