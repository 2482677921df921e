"""dcpnas.data: on-disk formats written in tmp_path, the embedded set, the search split, device batching."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.data import (
    DATASET_NAMES, DeviceBatches, ImageDataset, build_imagenet_loaders, dataset_info,
    imagenet_search_loaders, load_cifar10, load_cifar100, load_dataset, load_embedded, load_fashion_mnist,
    load_npz, read_idx, search_split, write_idx,
)
from dcpnas.data import cifar as cifar_mod
from dcpnas.data import fashion_mnist as fm
from dcpnas.data.embedded import embedded_path
from dcpnas.errors import DataError

# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $DCPNAS_DATA, a fresh $HOME (so an empty cache), no system dirs, and no network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DCPNAS_DATA", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIRS", ())

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr("dcpnas.data.download.download_file", no_network)
    return home


def write_fashion(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, fill: int = 0) -> None:
    """Tiny Fashion-MNIST in the real IDX layout; ``fill`` tags the images so tests can tell sources apart."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    rng = np.random.default_rng(fill)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = np.full((n, 28, 28), fill, dtype=np.uint8)
        x[:, 0, 0] = rng.integers(0, 256, n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", (np.arange(n) % 10).astype(np.uint8))


def write_cifar(folder: Path, kind: str, n_per_batch: int = 6) -> dict:
    """Tiny CIFAR in the official pickle layout (bytes keys, protocol 2 as the Python 2 originals)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_classes = 10 if kind == "cifar10" else 100
    label_key = b"labels" if kind == "cifar10" else b"fine_labels"
    names = ["train"] if kind == "cifar100" else [f"data_batch_{i}" for i in range(1, 6)]
    written = {}
    for name in [*names, "test_batch" if kind == "cifar10" else "test"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, n_classes, n_per_batch)]
        batch = {b"batch_label": name.encode(), label_key: labels, b"data": data,
                 b"filenames": [b"x.png"] * n_per_batch}
        if kind == "cifar100":
            batch[b"coarse_labels"] = [v // 5 for v in labels]
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = (data, labels)
    meta_name, key = ("batches.meta", b"label_names") if kind == "cifar10" else ("meta", b"fine_label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({key: [f"c{i}".encode() for i in range(n_classes)]}, f, protocol=2)
    return written


# ------------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype) if dtype != np.uint8 else \
        np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / f"a-idx3-ubyte{suffix}"
    write_idx(path, a)
    if suffix == ".gz":
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated_names_file(tmp_path, suffix):
    path = tmp_path / f"t-idx3-ubyte{suffix}"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8))
    if suffix:  # drop part of the payload inside a valid gzip stream, and cut the gzip stream itself
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:-100]))
        with pytest.raises(DataError, match="truncated") as e:
            read_idx(path)
        assert str(path) in str(e.value)
        cut = tmp_path / "cut-idx3-ubyte.gz"
        full = gzip.compress(raw)
        cut.write_bytes(full[:len(full) // 2])
        with pytest.raises(DataError) as e:
            read_idx(cut)
        assert str(cut) in str(e.value)
    else:
        path.write_bytes(path.read_bytes()[:-1])
        with pytest.raises(DataError, match="truncated") as e:
            read_idx(path)
        assert str(path) in str(e.value)
        assert "\n" not in str(e.value)


def test_idx_bad_magic_and_short_header(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x00")
    with pytest.raises(DataError, match="magic") as e:
        read_idx(bad)
    assert str(bad) in str(e.value)
    bad.write_bytes(b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x00")  # unknown type code
    with pytest.raises(DataError, match="magic"):
        read_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x03\x00\x00")  # header cut short
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06")  # one extra byte
    with pytest.raises(DataError, match="oversized"):
        read_idx(bad)


# --------------------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_loads_gz_and_raw(isolated, tmp_path):
    write_fashion(tmp_path / "gz", gz=True)
    write_fashion(tmp_path / "raw", gz=False)
    for sub in ("gz", "raw"):
        ds = load_fashion_mnist(tmp_path / sub, download=False)
        assert ds.shape == (1, 28, 28) and ds.num_classes == 10 and ds.classes[0] == "T-shirt/top"
        assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
        assert ds.y_train.dtype == torch.int64 and ds.y_train.tolist() == [i % 10 for i in range(20)]


def test_fashion_mnist_search_order(isolated, tmp_path, monkeypatch):
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", isolated / ".cache/dcpnas/fashion-mnist"
    write_fashion(explicit, fill=1)
    write_fashion(env / "fashion-mnist", fill=2)  # $DCPNAS_DATA/fashion-mnist is looked at too
    write_fashion(cache, fill=3)
    monkeypatch.setenv("DCPNAS_DATA", str(env))

    def tag(ds):
        return int(ds.x_train[0, 0, 5, 5])

    assert tag(load_fashion_mnist(explicit, download=False)) == 1
    assert tag(load_fashion_mnist(download=False)) == 2
    monkeypatch.delenv("DCPNAS_DATA")
    assert tag(load_fashion_mnist(download=False)) == 3
    # the system dir comes last
    system = tmp_path / "system"
    write_fashion(system, fill=4)
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (str(system),))
    assert tag(load_fashion_mnist(download=False)) == 3
    for p in cache.iterdir():
        p.unlink()
    assert tag(load_fashion_mnist(download=False)) == 4


def test_fashion_mnist_incomplete_folder_is_skipped(isolated, tmp_path):
    explicit = tmp_path / "explicit"
    write_fashion(explicit, fill=1)
    (explicit / "t10k-labels-idx1-ubyte.gz").unlink()
    write_fashion(isolated / ".cache/dcpnas/fashion-mnist", fill=3)
    assert int(load_fashion_mnist(explicit, download=False).x_train[0, 0, 5, 5]) == 3


def test_fashion_mnist_not_found_lists_places(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("DCPNAS_DATA", str(tmp_path / "envdir"))
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (str(tmp_path / "sys"),))
    calls = []

    def failing_download(dest, timeout=15.0):
        calls.append(dest)
        raise DataError("download of http://example/x failed: offline")

    monkeypatch.setattr(fm, "download_fashion_mnist", failing_download)
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path / "mine")
    msg = str(e.value)
    assert calls == [isolated / ".cache/dcpnas/fashion-mnist"]
    for place in (tmp_path / "mine", tmp_path / "envdir", isolated / ".cache/dcpnas/fashion-mnist",
                  tmp_path / "sys"):
        assert str(place) in msg
    assert "offline" in msg and "apt-get install dataset-fashion-mnist" in msg and "DCPNAS_DATA" in msg
    assert "--data-dir" in msg and "\n" not in msg
    calls.clear()
    with pytest.raises(DataError, match="download disabled"):
        load_fashion_mnist(tmp_path / "mine", download=False)
    assert calls == []


def test_fashion_mnist_download_fills_cache(isolated, monkeypatch):
    def fake_download(dest, timeout=15.0):
        write_fashion(dest, fill=7)

    monkeypatch.setattr(fm, "download_fashion_mnist", fake_download)
    ds = load_fashion_mnist()
    assert int(ds.x_train[0, 0, 5, 5]) == 7
    assert (isolated / ".cache/dcpnas/fashion-mnist/train-images-idx3-ubyte.gz").is_file()


def test_fashion_mnist_corrupt_file_names_it(isolated, tmp_path):
    write_fashion(tmp_path / "d")
    target = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:40])
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path / "d", download=False)
    assert str(target) in str(e.value)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_labels():
    y = read_idx("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")
    assert y.shape == (60000,) and np.bincount(y).tolist() == [6000] * 10


# ------------------------------------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_round_trip(isolated, tmp_path, kind):
    folder = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    written = write_cifar(tmp_path / folder, kind)
    load = load_cifar10 if kind == "cifar10" else load_cifar100
    for where in (tmp_path, tmp_path / folder):  # the parent or the folder itself
        ds = load(where, download=False)
        n_classes = 10 if kind == "cifar10" else 100
        assert ds.name == kind and ds.num_classes == n_classes and ds.classes[3] == "c3"
        n_train = 6 * (5 if kind == "cifar10" else 1)
        assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
        first = "data_batch_1" if kind == "cifar10" else "train"
        data, labels = written[first]
        # row = R plane, G plane, B plane, each 32×32 row-major
        assert torch.equal(ds.x_train[0, 1, 2, 3], torch.tensor(data[0, 1024 + 2 * 32 + 3]))
        assert ds.y_train[:6].tolist() == labels
        test_name = "test_batch" if kind == "cifar10" else "test"
        assert ds.y_test.tolist() == written[test_name][1]
    assert load_dataset(kind, data_dir=tmp_path).x_train.shape[0] == n_train


def test_cifar_truncated_batch_names_file(isolated, tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", "cifar10")
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, download=False)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_cifar_pickle_cannot_run_code(isolated, tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", "cifar10")
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad.write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="not allowed") as e:
        load_cifar10(tmp_path, download=False)
    assert str(bad) in str(e.value)


def test_cifar_not_found_and_download_path(isolated, tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        load_cifar100(tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and str(isolated / ".cache/dcpnas/cifar-100-python") in msg
    assert "cifar-100-python.tar.gz" in msg

    # download path: a real tar.gz (built here) goes through safe extraction into the cache
    import shutil
    import tarfile

    src = tmp_path / "src"
    write_cifar(src / "cifar-10-batches-py", "cifar10")
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")

    def fake_download(url, dest, *, md5=None, timeout=15.0):
        assert url.endswith("cifar-10-python.tar.gz") and md5 == cifar_mod.CIFAR10.md5
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tgz, dest)
        return dest

    monkeypatch.setattr("dcpnas.data.download.download_file", fake_download)
    ds = load_cifar10(tmp_path / "nowhere")
    assert ds.x_train.shape == (30, 3, 32, 32)
    assert (isolated / ".cache/dcpnas/cifar-10-batches-py/data_batch_5").is_file()
    assert not (isolated / ".cache/dcpnas/cifar-10-python.tar.gz").exists()


def test_safe_extract_refuses_escaping_members(tmp_path):
    import io
    import tarfile

    from dcpnas.data.download import safe_extract

    tgz = tmp_path / "evil.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/../../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="refusing"):
        safe_extract(tgz, tmp_path / "out", "cifar-10-batches-py")
    assert not (tmp_path / "escape.txt").exists()


# -------------------------------------------------------------------------------------------------- npz


@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW1", "NCHW3", "float"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    c = 3 if layout.endswith("3") else 1
    ref_train = rng.integers(0, 256, (8, c, 6, 5), dtype=np.uint8)  # H=6, W=5: layouts can't be confused
    ref_test = rng.integers(0, 256, (4, c, 6, 5), dtype=np.uint8)

    def encode(x):
        if layout == "NHW":
            return x[:, 0]
        if layout.startswith("NHWC"):
            return x.transpose(0, 2, 3, 1)
        if layout == "float":
            return x[:, 0].astype(np.float32) / 255.0
        return x

    path = tmp_path / "mine.npz"
    np.savez(path, x_train=encode(ref_train), y_train=np.arange(8) % 3, x_test=encode(ref_test),
             y_test=np.array([0, 1, 2, 2]))
    ds = load_npz(path)
    assert ds.x_train.dtype == torch.uint8 and ds.shape == (c, 6, 5) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.x_train.numpy(), ref_train)
    np.testing.assert_array_equal(ds.x_test.numpy(), ref_test)
    assert ds.y_train.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    for name in (f"npz:{path}", str(path)):
        assert load_dataset(name).x_train.shape == (8, c, 6, 5)
        assert tuple(dataset_info(name)) == (c, 6, 3)


def test_npz_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.npz"
    x = np.zeros((4, 8, 8), np.uint8)
    y = np.zeros(4, np.int64)
    np.savez(path, x_train=x, y_train=y, x_test=x)
    with pytest.raises(DataError, match="'y_test'") as e:
        load_npz(path)
    assert str(path) in str(e.value)
    np.savez(path, x_train=x, y_train=y[:3], x_test=x, y_test=y)
    with pytest.raises(DataError, match="'y_train'"):
        load_npz(path)
    np.savez(path, x_train=np.zeros((4, 2, 8, 8), np.uint8), y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match="'x_train'"):
        load_npz(path)
    np.savez(path, x_train=x.astype(np.float32) + 2.0, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match=r"'x_train'.*\[0, 1\]"):
        load_npz(path)
    np.savez(path, x_train=x, y_train=y, x_test=np.zeros((4, 3, 8, 8), np.uint8), y_test=y)
    with pytest.raises(DataError, match="'x_test'"):
        load_npz(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_npz(path)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "none.npz")


# ---------------------------------------------------------------------------------- registry / embedded


def test_registry_names_and_info():
    assert set(DATASET_NAMES) >= {"embedded", "fashion-mnist", "cifar10", "cifar100"}
    assert tuple(dataset_info("imagenet")) == (3, 224, 1000)
    assert tuple(dataset_info("cifar100")) == (3, 32, 100)
    assert tuple(dataset_info("embedded")) == (1, 28, 10)
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    assert all(n in str(e.value) for n in DATASET_NAMES) and "npz:" in str(e.value)
    with pytest.raises(DataError):
        dataset_info("svhn")


def test_embedded_dataset():
    ds = load_dataset("embedded")
    assert isinstance(ds, ImageDataset) and ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.bincount(ds.y_train, minlength=10).tolist() == [600] * 10
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [100] * 10
    assert ds.classes == fm.CLASSES
    assert 0.2 < ds.mean[0] < 0.4 and 0.25 < ds.std[0] < 0.45  # Fashion-MNIST: 0.286 / 0.353
    assert embedded_path().is_file()
    with __import__("importlib").resources.as_file(embedded_path()) as p:
        assert p.stat().st_size < 5 * 1024 * 1024
    assert torch.equal(load_embedded().x_test, ds.x_test)


def test_image_dataset_validation():
    x = torch.zeros(4, 1, 5, 5, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    ds = ImageDataset("t", ["a", "b"], x, y, x, y)
    assert ds.shape == (1, 5, 5) and ds.num_classes == 2 and ds.std == (1.0,)  # constant image: std 1
    with pytest.raises(DataError, match="y_train"):
        ImageDataset("t", ["a"], x, y, x, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(DataError, match="x_train"):
        ImageDataset("t", ["a", "b"], x.float(), y, x, y)
    with pytest.raises(DataError, match="labels"):
        ImageDataset("t", ["a", "b"], x, y[:3], x, y)
    x2 = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 2, 2)
    ds = ImageDataset("t", ["a"], x2, torch.zeros(2, dtype=torch.int64), x2, torch.zeros(2, dtype=torch.int64))
    ref = x2.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(ds.mean, ref.mean(1).numpy()) and np.allclose(ds.std, ref.std(1, unbiased=False).numpy())


# ---------------------------------------------------------------------------------------------- ImageNet


def write_imagefolder(root: Path, classes=("n01", "n02", "n03"), per_class=(4, 2)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class):
        for ci, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = Image.fromarray(rng.integers(0, 256, (30 + 3 * i, 40, 3), dtype=np.uint8))
                if i % 2:
                    img.save(root / split / cls / f"img{i}.png")
                else:
                    img.save(root / split / cls / f"img{i}.JPEG", quality=90)


def test_imagenet_loaders(tmp_path):
    pytest.importorskip("torchvision")
    write_imagefolder(tmp_path)
    train, val, n_classes = build_imagenet_loaders(tmp_path, batch_size=4, workers=0, image_size=32)
    assert n_classes == 3
    assert len(train.dataset) == 12 and len(val.dataset) == 6 and len(train) == 3
    x, y = next(iter(train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.max() < 3
    ys = torch.cat([yb for _, yb in val])
    assert sorted(ys.tolist()) == [0, 0, 1, 1, 2, 2]
    xv, _ = next(iter(val))
    assert xv.shape[1:] == (3, 32, 32)

    dtrain, dval, _ = build_imagenet_loaders(tmp_path, 2, 0, image_size=32, distributed=True, rank=1,
                                             world_size=2)
    assert type(dtrain.sampler).__name__ == "DistributedSampler" and len(dtrain) == 3

    st, sv, n = imagenet_search_loaders(tmp_path, batch_size=2, workers=0, image_size=32, seed=1)
    a, b = set(st.dataset.indices), set(sv.dataset.indices)
    assert n == 3 and not a & b and len(a) == len(b) == 6 and a | b == set(range(12))
    st2, _, _ = imagenet_search_loaders(tmp_path, 2, 0, image_size=32, fraction=0.5, seed=1)
    assert len(st2.dataset) == 3


def test_imagenet_missing_folders(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(DataError, match="does not exist"):
        build_imagenet_loaders(tmp_path / "none", 2, 0)
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="val"):
        build_imagenet_loaders(tmp_path, 2, 0)
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="train"):  # class folder without images
        build_imagenet_loaders(tmp_path, 2, 0)


# ------------------------------------------------------------------------------------------------ split


def test_search_split():
    a, b = search_split(101, seed=3)
    assert len(a) == 50 and len(b) == 51
    assert not set(a.tolist()) & set(b.tolist()) and set(a.tolist()) | set(b.tolist()) == set(range(101))
    a2, b2 = search_split(101, seed=3)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    a3, _ = search_split(101, seed=4)
    assert not torch.equal(a, a3)
    a4, b4 = search_split(100, seed=0, fraction=0.8)
    assert len(a4) == 80 and len(b4) == 20
    torch.manual_seed(123)  # global RNG state must not matter
    assert torch.equal(search_split(101, seed=3)[0], a)


# --------------------------------------------------------------------------------------- DeviceBatches


def tagged_images(n: int, c: int = 1, h: int = 6, w: int = 6) -> torch.Tensor:
    """Random images with pixels >= 1, so zero padding is recognisable and windows are (almost surely) unique."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def plain(x, y, bs, **kw):
    kw.setdefault("mean", (0.0,) * x.shape[1])
    kw.setdefault("std", (1.0,) * x.shape[1])
    return DeviceBatches(x, y, bs, device="cpu", **kw)


def test_batches_cover_each_sample_once():
    n = 50
    x = tagged_images(n)
    y = torch.arange(n)
    db = plain(x, y, 8, drop_last=False)
    assert len(db) == 7
    seen = []
    for xb, yb in db:
        assert xb.dtype == torch.float32
        torch.testing.assert_close(xb, x[yb].float() / 255)  # images travel with their labels
        seen += yb.tolist()
    assert sorted(seen) == list(range(n))
    db = plain(x, y, 8, drop_last=True)
    assert len(db) == 6 and len(set(torch.cat([yb for _, yb in db]).tolist())) == 48
    db = plain(x, y, 8, shuffle=False, drop_last=False)
    assert torch.cat([yb for _, yb in db]).tolist() == list(range(n))


def test_batches_normalise():
    x = torch.full((4, 3, 2, 2), 51, dtype=torch.uint8)  # 0.2
    db = DeviceBatches(x, torch.zeros(4, dtype=torch.int64), 4, device="cpu", mean=(0.1, 0.2, 0.3),
                       std=(0.5, 1.0, 0.25), channels_last=True)
    xb, _ = next(iter(db))
    torch.testing.assert_close(xb[0, :, 0, 0], torch.tensor([0.2, 0.0, -0.4]))
    assert xb.is_contiguous(memory_format=torch.channels_last)


def test_batches_epoch_determinism_and_resume():
    n = 64
    x = tagged_images(n)
    y = torch.arange(n)

    def epoch_labels(db, e):
        db.set_epoch(e)
        return [yb.tolist() for _, yb in db]

    def epoch_images(db, e):
        db.set_epoch(e)
        return torch.cat([xb for xb, _ in db])

    a = plain(x, y, 16, augment=True, seed=5)
    b = plain(x, y, 16, augment=True, seed=5)
    assert epoch_labels(a, 3) == epoch_labels(b, 3)
    assert torch.equal(epoch_images(a, 3), epoch_images(b, 3))  # augmentation replays too
    assert epoch_labels(a, 3) != epoch_labels(a, 4)
    assert epoch_labels(a, 3) != epoch_labels(plain(x, y, 16, seed=6), 3)
    # resume: a fresh object restored from state_dict sees the same next epoch
    a.set_epoch(7)
    state = a.state_dict()
    c = plain(x, y, 16, augment=True, seed=0)
    c.load_state_dict(state)
    assert c.epoch == 7 and torch.equal(torch.cat([xb for xb, _ in c]), epoch_images(b, 7))
    with pytest.raises(DataError):
        plain(x[:10], y[:10], 2).load_state_dict(state)


def test_batches_random_crop_is_a_shifted_window():
    p, h, w = 2, 5, 7
    x = tagged_images(40, c=2, h=h, w=w)
    y = torch.arange(40)
    db = plain(x, y, 10, augment=True, hflip=False, crop_padding=p, seed=1)
    padded = torch.nn.functional.pad(x.float() / 255, (p, p, p, p))
    shifts = set()
    for xb, yb in db:
        for img, i in zip(xb, yb.tolist()):
            matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                       if torch.allclose(img, padded[i, :, dy:dy + h, dx:dx + w], rtol=0, atol=1e-6)]
            assert matches, f"sample {i} is not a window of its padded image"
            shifts.add(matches[0])
    assert len(shifts) > 10  # offsets vary (25 possible)
    # zero padding really appears (some pixels are 0 though inputs are >= 1)
    assert any((xb == 0).any() for xb, _ in db)


def test_batches_flip():
    x = tagged_images(200, h=4, w=5)
    y = torch.arange(200)
    db = plain(x, y, 50, augment=True, crop_padding=0, hflip=True, seed=2)
    flipped = same = 0
    for xb, yb in db:
        ref = x[yb].float() / 255
        is_flip = torch.isclose(xb, ref.flip(3), rtol=0, atol=1e-6).flatten(1).all(1)
        is_same = torch.isclose(xb, ref, rtol=0, atol=1e-6).flatten(1).all(1)
        assert (is_flip | is_same).all()
        flipped += int(is_flip.sum())
        same += int(is_same.sum())
    assert 60 < flipped < 140 and 60 < same < 140
    db = plain(x, y, 50, augment=True, crop_padding=0, hflip=False)
    for xb, yb in db:
        torch.testing.assert_close(xb, x[yb].float() / 255)


@pytest.mark.parametrize("drop_last", [True, False])
def test_batches_two_ranks(drop_last):
    n = 53
    x = tagged_images(n)
    y = torch.arange(n)
    ranks = [plain(x, y, 4, rank=r, world_size=2, drop_last=drop_last, seed=9) for r in range(2)]
    for r in ranks:
        r.set_epoch(2)
    assert len(ranks[0]) == len(ranks[1]) == (6 if drop_last else 7)
    got = [[yb for _, yb in r] for r in ranks]
    assert [len(b) for b in got[0]] == [len(b) for b in got[1]]  # lockstep: same batch sizes
    s0, s1 = (set(torch.cat(g).tolist()) for g in got)
    if drop_last:
        assert not s0 & s1 and len(s0) == len(s1) == 24
    else:  # 53 padded to 54: one sample is repeated, every sample is seen
        assert len(torch.cat(got[0])) == len(torch.cat(got[1])) == 27
        assert s0 | s1 == set(range(n)) and len(s0 & s1) <= 1


def test_batches_reject_bad_arguments():
    x = tagged_images(4)
    with pytest.raises(DataError, match="batch"):
        plain(x, torch.arange(4), 8)  # cannot fill one batch with drop_last
    with pytest.raises(DataError):
        plain(x.float(), torch.arange(4), 2)
    with pytest.raises(DataError):
        plain(x, torch.arange(4), 2, rank=2, world_size=2)
