"""The backbone API of derived networks (timm's convention): multi-scale features, their stated
channels and reductions, consistency with the classifier network, gradients; the README example."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dcpnas.binary import binary_convs
from dcpnas.space.network import build_network

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "backbone_detection.py"


@pytest.mark.parametrize("layout,size,layers", [("cifar", 32, 5), ("cifar", 28, 3), ("imagenet", 64, 4)])
@pytest.mark.parametrize("binary", [True, False], ids=["1-bit", "real"])
def test_features_match_feature_info(layout, size, layers, binary):
    net = build_network("DDPNAS_MCN_2", "XS", C=4, layers=layers, layout=layout, in_channels=3,
                        binary=binary, features_only=True).eval()
    with torch.no_grad():
        features = net(torch.randn(2, 3, size, size))
    info = net.feature_info
    assert len(features) == len(info) == 3
    assert [f.shape[1] for f in features] == info.channels()
    assert [size // f.shape[-1] for f in features] == info.reduction()
    assert info.reduction() == sorted(info.reduction()) and len(set(info.reduction())) == 3
    assert all(name.startswith("cells.") for name in info.module_name())
    assert not hasattr(net, "classifier")


def test_out_indices_pick_and_order():
    net = build_network("DARTS_V2", "XS", C=4, layers=3, in_channels=1, features_only=True,
                        out_indices=(-1, 0))
    features = net(torch.randn(1, 1, 16, 16))
    assert net.feature_info.reduction() == [1, 4] and [f.shape[-1] for f in features] == [16, 4]
    with pytest.raises(ValueError, match="out of range"):
        build_network("DARTS_V2", "XS", C=4, layers=3, features_only=True, out_indices=(3,))


def test_backbone_equals_the_classifier_network():
    torch.manual_seed(0)
    full = build_network("DDPNAS_MCN_2", "XS", C=4, layers=3, in_channels=1).eval()
    backbone = build_network("DDPNAS_MCN_2", "XS", C=4, layers=3, in_channels=1, features_only=True).eval()
    missing, unexpected = backbone.load_state_dict(full.state_dict(), strict=False)
    assert not missing and set(unexpected) == {"classifier.weight", "classifier.bias"}
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        last = backbone(x)[-1]
        assert torch.equal(full.forward_features(x), last)
        assert torch.equal(full(x), full.forward_head(last))
        assert torch.allclose(full.forward_head(last, pre_logits=True), last.mean((2, 3)))


def test_gradients_reach_every_used_parameter():
    net = build_network("DDPNAS_MCN_2", "XS", C=4, layers=3, in_channels=1, features_only=True)
    sum(f.square().mean() for f in net(torch.randn(4, 1, 16, 16))).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert all(c.beta.grad is not None and c.beta.grad.abs().sum() > 0 for c in binary_convs(net))
    # Only the finest map asked for: the cells after it are not run, and get no gradient.
    first = build_network("DDPNAS_MCN_2", "XS", C=4, layers=3, in_channels=1, features_only=True,
                          out_indices=(0,))
    first(torch.randn(2, 1, 16, 16))[0].sum().backward()
    assert all(p.grad is None for n, p in first.named_parameters() if n.startswith(("cells.1.", "cells.2.")))
    assert all(p.grad is not None for n, p in first.named_parameters() if n.startswith("cells.0."))


def test_the_detection_example_learns():
    spec = importlib.util.spec_from_file_location("backbone_detection", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    first, last = example.main("DDPNAS_MCN_2", steps=8, batch=8, C=4, layers=3, quiet=True)
    assert last < 0.7 * first


def test_the_readme_backbone_snippet_prints_what_it_says(capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Backbone", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md#backbone", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    assert printed == promised
