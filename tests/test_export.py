"""Packed export (.dcpnas): round trip, bit layout, size, corruption; inference folding and ONNX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.binary import BinaryConv2d, binary_convs
from dcpnas.errors import DataError, DcpnasError
from dcpnas.space.named import DDPNAS_MCN_2
from dcpnas.train.checkpoint import save_model
from dcpnas.train.export import MAGIC, export_packed
from dcpnas.train.modelfile import load_packed, read_packed
from dcpnas.train.onnx_export import FoldedBinaryConv2d, export_onnx, fold_for_inference
from dcpnas.train.spec import ModelSpec

SRC = str(Path(__file__).resolve().parents[1] / "src")


def trained_like(binary: bool = True, C: int = 4, layers: int = 3, binary_weights: bool = True, seed: int = 0):
    """A network whose every parameter and BN statistic is non-trivial (as after training)."""
    spec = ModelSpec(genotype=DDPNAS_MCN_2.to_dict(), C=C, layers=layers, layout="cifar", scope="official",
                     binary=binary, in_channels=1, num_classes=10, image_size=16, dataset="embedded",
                     mean=(0.286,), std=(0.353,), binary_weights=binary_weights)
    torch.manual_seed(seed)
    model = spec.build()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123)
    return model.eval(), spec


def test_packed_round_trip_gives_the_same_logits(tmp_path):
    model, spec = trained_like()
    report = export_packed((model, spec), tmp_path / "m.dcpnas")
    loaded = load_packed(tmp_path / "m.dcpnas")
    x = torch.randn(8, 1, 16, 16)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.allclose(a, b, atol=1e-6, rtol=0) and torch.equal(a, b)
    assert not loaded.training and report.binary_weights > 0
    # everything that is not a packed latent weight comes back bit for bit
    packed = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, BinaryConv2d)}
    for k, v in model.state_dict().items():
        w = loaded.state_dict()[k]
        assert torch.equal(w, torch.sign(v) + (v == 0)) if k in packed else torch.equal(w, v), k


def test_sign_bits_layout_is_as_documented(tmp_path):
    model, spec = trained_like()
    export_packed((model, spec), tmp_path / "m.dcpnas")
    raw = (tmp_path / "m.dcpnas").read_bytes()
    assert raw[:8] == MAGIC
    header = json.loads(zlib.decompress(raw[16:16 + int.from_bytes(raw[8:16], "little")]))
    assert header["data_offset"] % 64 == 0
    conv_name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, BinaryConv2d))
    entry = next(e for e in header["tensors"] if e["name"] == f"{conv_name}.weight")
    assert entry["encoding"] == "sign-bits" and entry["nbytes"] == -(-conv.weight.numel() // 8)
    blob = raw[header["data_offset"] + entry["offset"]:][:entry["nbytes"]]
    signs = (conv.weight.detach().flatten() >= 0).numpy()
    first = int(signs[0]) << 7 | int(signs[1]) << 6 | int(signs[2]) << 5 | int(signs[3]) << 4 \
        | int(signs[4]) << 3 | int(signs[5]) << 2 | int(signs[6]) << 1 | int(signs[7])
    assert blob[0] == first                                  # element 0 is the MSB of byte 0, 1 = +1
    beta = next(e for e in header["tensors"] if e["name"] == f"{conv_name}.beta")
    assert beta["encoding"] == "raw" and beta["dtype"] == "float32"
    assert header["spec"]["C"] == 4 and header["spec"]["genotype"] == DDPNAS_MCN_2.to_dict()


def test_binary_layers_are_at_least_25x_smaller_than_fp32(tmp_path):
    model, spec = trained_like(C=16, layers=5)
    save_model(tmp_path / "model.pt", spec, model)
    report = export_packed(tmp_path / "model.pt", tmp_path / "m.dcpnas")
    n_binary = sum(c.weight.numel() for c in binary_convs(model))
    assert report.binary_weights == n_binary
    assert report.binary_fp32_bytes == 4 * n_binary
    # the packed share, measured on the file's own entries
    header = read_packed(tmp_path / "m.dcpnas")[2]
    packed_bytes = sum(e["nbytes"] for e in header["tensors"] if e["encoding"] == "sign-bits")
    assert packed_bytes == report.binary_packed_bytes
    assert 25 <= 4 * n_binary / packed_bytes <= 32
    assert report.file_bytes == os.path.getsize(tmp_path / "m.dcpnas")
    assert report.reference_file_bytes == os.path.getsize(tmp_path / "model.pt")
    assert report.file_bytes < report.reference_file_bytes
    assert "smaller" in report.table()


@pytest.mark.parametrize("binary, binary_weights", [(False, True), (True, False)])
def test_real_and_step1_models_round_trip(tmp_path, binary, binary_weights):
    model, spec = trained_like(binary=binary, binary_weights=binary_weights)
    report = export_packed((model, spec), tmp_path / "m.dcpnas")
    assert report.binary_weights == 0                        # nothing runs binary weights: nothing packed
    loaded = load_packed(tmp_path / "m.dcpnas")
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_corrupt_truncated_and_foreign_files(tmp_path):
    model, spec = trained_like()
    path = tmp_path / "m.dcpnas"
    export_packed((model, spec), path)
    raw = bytearray(path.read_bytes())
    (tmp_path / "short.dcpnas").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_packed(tmp_path / "short.dcpnas")
    raw[-3] ^= 0xFF
    (tmp_path / "flip.dcpnas").write_bytes(raw)
    with pytest.raises(DataError, match="corrupt"):
        load_packed(tmp_path / "flip.dcpnas")
    (tmp_path / "x.dcpnas").write_bytes(b"hello world, not a model")
    with pytest.raises(DataError, match="bad magic"):
        load_packed(tmp_path / "x.dcpnas")
    with pytest.raises(DataError, match="not found"):
        load_packed(tmp_path / "none.dcpnas")


# -- inference folding and ONNX ---------------------------------------------------------------------
def test_folded_network_has_constant_pm_beta_weights_and_same_logits():
    model, spec = trained_like()
    folded = fold_for_inference(model)
    assert not any(isinstance(m, BinaryConv2d) for m in folded.modules())
    pairs = [(m, f) for m, f in zip(model.modules(), folded.modules()) if isinstance(m, BinaryConv2d)]
    for m, f in pairs:
        assert isinstance(f, FoldedBinaryConv2d) and f.binary_activations == m.binary_activations
        beta = m.beta.detach().view(-1, 1, 1, 1)
        assert torch.equal(f.weight.abs(), beta.abs().expand_as(f.weight))     # ±β per output channel
        assert torch.equal(torch.sign(f.weight), torch.sign(beta) * (2.0 * (m.weight >= 0) - 1))
    x = torch.randn(8, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-6, rtol=0)
    assert model.cells[0].ops[0].op[0].op[1].__class__ is BinaryConv2d     # the original is untouched


def _ort_logits(path, x):
    ort = pytest.importorskip("onnxruntime")
    inference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in inference.get_inputs()] == ["images"]
    return inference.run(["logits"], {"images": x.numpy()})[0]


def test_onnx_export_of_a_real_network_matches(tmp_path):
    model, spec = trained_like(binary=False)
    export_onnx(model, tmp_path / "m.onnx", spec.input_shape)
    x = torch.randn(5, 1, 16, 16)                               # another batch size than exported with
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(_ort_logits(tmp_path / "m.onnx", x), ref, atol=1e-4, rtol=1e-4)


def test_onnx_export_of_a_1bit_network(tmp_path):
    model, spec = trained_like()
    export_onnx(model, tmp_path / "m.onnx", spec.input_shape)
    raw = (tmp_path / "m.onnx").read_bytes()
    assert b"GreaterOrEqual" in raw and b"Where" in raw              # sign on the activations
    torch.manual_seed(3)
    x = torch.randn(64, 1, 16, 16)
    with torch.no_grad():
        ref = model(x).numpy()
    got = _ort_logits(tmp_path / "m.onnx", x)
    # A binary activation within rounding of 0 may flip under another summation order (fp32 vs
    # fp64 in PyTorch differs the same way), so most, not all, logits agree to 1e-4.
    close = np.isclose(got, ref, atol=1e-4, rtol=1e-4).all(axis=1)
    assert close.mean() >= 0.8
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_onnx_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    def no_exporter(*args, **kw):
        raise ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")

    monkeypatch.setattr(torch.onnx, "export", no_exporter)
    model, spec = trained_like()
    with pytest.raises(DcpnasError, match="onnxscript") as err:
        export_onnx(model, tmp_path / "m.onnx", spec.input_shape)
    assert "pip install" in str(err.value) and "\n" not in str(err.value)


def test_cli_export(tmp_path):
    model, spec = trained_like()
    spec = spec.replace(image_size=28)   # eval checks the images against the model: 'embedded' is 28x28
    save_model(tmp_path / "model.pt", spec, model, {"top1": 12.5})
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "dcpnas", "export", "--checkpoint", str(tmp_path / "model.pt"),
                        "--out", str(tmp_path / "m.dcpnas"), "--onnx", str(tmp_path / "m.onnx"), "--json"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["file_bytes"] == os.path.getsize(tmp_path / "m.dcpnas") and (tmp_path / "m.onnx").exists()
    assert read_packed(tmp_path / "m.dcpnas")[2]["metrics"] == {"top1": 12.5}
    # dcpnas eval reads the packed file standalone and scores exactly as the model file
    scores = []
    for path in ("model.pt", "m.dcpnas"):
        r = subprocess.run([sys.executable, "-m", "dcpnas", "eval", "--checkpoint", str(tmp_path / path),
                            "--device", "cpu", "--json"], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        scores.append(json.loads(r.stdout))
    assert scores[0]["n"] == 1000 and scores[0]["top1"] == scores[1]["top1"]
    assert scores[0]["loss"] == pytest.approx(scores[1]["loss"], abs=1e-6)
    assert scores[0]["profile"] == scores[1]["profile"]
    r = subprocess.run([sys.executable, "-m", "dcpnas", "export", "--checkpoint", str(tmp_path / "nope.pt"),
                        "--out", str(tmp_path / "x.dcpnas")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope.pt" in r.stderr
