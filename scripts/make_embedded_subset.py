#!/usr/bin/env python3
"""Build src/dcpnas/resources/fashion-mnist-subset.npz, the dataset embedded in the package.

Source: Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, https://github.com/zalandoresearch/fashion-mnist),
Copyright (c) 2017 Zalando SE, MIT licence (see src/dcpnas/resources/LICENSE-fashion-mnist.txt).
Read from the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) by default.

The subset is class balanced (--train-per-class / --test-per-class images of each of the 10 classes, drawn
without replacement with a seeded numpy Generator, kept in original file order) and written as a
deflate-compressed .npz with fixed zip timestamps, so the same inputs give a byte-identical file.

Keys: x_train/x_test uint8 N×28×28, y_train/y_test uint8 N, classes (str), src_train/src_test (int32 indices
into the original train/test files), seed (int64).

    python scripts/make_embedded_subset.py [--source DIR] [--out FILE] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dcpnas.data.fashion_mnist import CLASSES, FILES, _find_files  # noqa: E402
from dcpnas.data.idx import read_idx  # noqa: E402

MAX_BYTES = 5 * 1024 * 1024


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SystemExit(f"class {c} has only {len(idx)} images, need {per_class}")
        picks.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(picks)).astype(np.int32)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez_compressed stamps entries with the current time; a fixed date keeps the file reproducible.
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=str(ROOT / "src/dcpnas/resources/fashion-mnist-subset.npz"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-per-class", type=int, default=600)
    ap.add_argument("--test-per-class", type=int, default=100)
    args = ap.parse_args()

    files, missing = _find_files(Path(args.source))
    if missing:
        raise SystemExit(f"{args.source}: missing {', '.join(missing)} (apt-get install dataset-fashion-mnist)")
    data = {key: read_idx(files[key]) for key in FILES}
    rng = np.random.default_rng(args.seed)
    src_train = balanced_subset(data["y_train"], args.train_per_class, rng)
    src_test = balanced_subset(data["y_test"], args.test_per_class, rng)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, {
        "x_train": data["x_train"][src_train], "y_train": data["y_train"][src_train],
        "x_test": data["x_test"][src_test], "y_test": data["y_test"][src_test],
        "classes": np.array(CLASSES), "src_train": src_train, "src_test": src_test,
        "seed": np.array(args.seed, dtype=np.int64),
    })
    size = out.stat().st_size
    print(f"wrote {out}: {len(src_train)} train + {len(src_test)} test images, {size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        out.unlink()
        raise SystemExit(f"{size} bytes is over the {MAX_BYTES}-byte budget; lower --train-per-class")


if __name__ == "__main__":
    main()
