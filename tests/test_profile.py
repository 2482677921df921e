"""Cost accounting: a hand-counted network, the authors' DCP-NAS-L, supernets and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from dcpnas.binary import BinaryConv2d
from dcpnas.cli.main import main
from dcpnas.errors import ConfigError, DataError
from dcpnas.metrics import profile_genotype, profile_model
from dcpnas.space import Supernet
from dcpnas.space.network import DerivedNetwork


pytestmark = pytest.mark.usefixtures("one_thread")


def hand_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),                       # real, 3×8×8 -> 8×8×8
        nn.BatchNorm2d(8),
        BinaryConv2d(8, 16, 3, stride=2, padding=1),                     # W1A1, -> 16×4×4
        BinaryConv2d(16, 16, 3, padding=1, groups=16, binary_activations=False),  # W1A32 depthwise
        nn.PReLU(16),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),                                               # classifier
    )


def test_hand_counted_network():
    p = profile_model(hand_net(), (3, 8, 8))
    real, w1a1, w1a32, fc = p.layers
    # real conv: 8·8·8 outputs × 3·3·3 MACs = 512·27 = 13 824 FLOPs; 8·3·9 = 216 real weights.
    assert (real.flops, real.bops, real.binary_params, real.real_params) == (13824, 0, 0, 216)
    assert real.precision == "W32A32" and real.kind == "real" and real.output_shape == (8, 8, 8)
    # W1A1: 16·4·4 = 256 outputs × 8·3·3 = 72 -> 18 432 BOPs; 16·8·9 = 1152 1-bit weights + 16 β.
    assert (w1a1.flops, w1a1.bops, w1a1.binary_params, w1a1.real_params) == (0, 18432, 1152, 16)
    assert w1a1.precision == "W1A1" and w1a1.kind == "binary"
    # W1A32 depthwise: 256 outputs × 1·3·3 = 2304 MACs, counted as FLOPs (no XNOR on real inputs);
    # 16·9 = 144 1-bit weights + 16 β.
    assert (w1a32.flops, w1a32.bops, w1a32.binary_params, w1a32.real_params) == (2304, 0, 144, 16)
    # classifier: 16·10 = 160 FLOPs, 170 real params (bias included).
    assert (fc.flops, fc.real_params, fc.group) == (160, 170, "classifier")
    # BN 8+8 and PReLU 16: the 'other real params'.
    assert p.other_params == {"BatchNorm2d": 16, "PReLU": 16}

    assert p.binary_params == 1152 + 144  # 1296
    assert p.real_params == 216 + 16 + 16 + 16 + 16 + 170  # 450
    assert p.params == sum(t.numel() for t in hand_net().parameters())
    assert p.bits == 1296 + 32 * 450  # 15 696
    assert p.classifier_bits == 32 * 170  # 5440
    assert p.bits_without_classifier == 15696 - 5440  # 10 256
    assert p.mbits == pytest.approx(0.015696)
    assert p.flops == 13824 + 2304 + 160  # 16 288
    assert p.bops == 18432
    assert p.ops == 16288 + 18432 / 64  # 16 576
    groups = {g.group: g for g in p.groups()}
    assert set(groups) == {"real conv", "W1A1", "W1A32", "classifier", "other"}
    assert groups["other"].real_params == 32 and groups["W1A1"].bops == 18432

    # Shapes are all the hooks need: on the meta device (no memory) the counts are the same.
    with torch.device("meta"):
        meta_net = hand_net()
    assert profile_model(meta_net, (3, 8, 8)).to_dict() == p.to_dict()

    # Step 1 of the two-step recipe (real weights): the W1A1 layer becomes W32A1, FLOPs and 32-bit.
    net = hand_net()
    net[2].binary_weights = False
    q = profile_model(net, (3, 8, 8))
    assert q.layers[1].precision == "W32A1" and q.bops == 0
    assert q.flops == 16288 + 18432 and q.bits == 15696 + 31 * 1152


def test_shared_module_counts_macs_per_call_and_restores_mode():
    conv = nn.Conv2d(2, 2, 1, bias=False)
    net = nn.Sequential(conv, nn.BatchNorm2d(2), conv).train()
    p = profile_model(net, (2, 3, 3))
    # 2·3·3 outputs × 2 MACs, twice; 4 weights counted once.
    assert p.flops == 2 * 18 * 2 and p.params == 4 + 4 and p.layers[0].calls == 2
    assert net.training and net[1].training


def test_derived_network_totals_match_direct_counts():
    torch.manual_seed(0)
    net = DerivedNetwork("DARTS_V2", binary=True, in_channels=3, num_classes=10, C=8, layers=5)
    p = profile_model(net, (3, 16, 16))
    binary = sum(m.weight.numel() for m in net.modules() if isinstance(m, BinaryConv2d))
    assert p.binary_params == binary
    assert p.params == sum(t.numel() for t in net.parameters())
    assert p.classifier_params == net.classifier.weight.numel() + 10
    # The CIFAR stem is one real 3×3 conv, 3 -> 24 channels at 16×16.
    stem = [r for r in p.layers if r.group == "real conv"]
    assert len(stem) == 1 and stem[0].flops == 24 * 16 * 16 * 3 * 9
    assert p.bops > 0
    assert p.layers[0].name == "stem0.0" and p.layers[-1].name == "classifier"  # execution order


def test_supernet_profile_leaves_alpha_out():
    child = profile_model(Supernet("child", C=4, layers=3), (3, 8, 8))
    parent = profile_model(Supernet("parent", C=4, layers=3), (3, 8, 8))
    assert child.arch_params == parent.arch_params == 2 * 14 * 8
    assert child.bops > 0 and parent.bops == 0 and parent.binary_params == 0
    net = Supernet("parent", C=4, layers=3)
    assert parent.params == sum(t.numel() for t in net.parameters()) - 2 * 14 * 8


def test_profile_genotype_inputs_and_errors():
    p = profile_genotype("DARTS_V2", "XS", "cifar100")
    assert p.input_shape == (3, 32, 32) and p.layers[-1].output_shape == (100,)
    p = profile_genotype("DARTS_V2", "XS", "fashion-mnist", binary=False)
    assert p.input_shape == (1, 28, 28) and p.bops == 0 and p.binary_params == 0
    with pytest.raises(ConfigError, match="unknown network size 'XXL'"):
        profile_genotype("DARTS_V2", "XXL", "cifar10")
    with pytest.raises(DataError, match="unknown dataset 'mnist2'"):
        profile_genotype("DARTS_V2", "XS", "mnist2")


def test_cli_dcpnas_l_imagenet(capsys):
    # The authors' DCP-NAS-L: ≈12.4 M binarized conv weights, ≈2.14 M real params of which the
    # FC holds 1000·1728 + 1000 = 1 729 000 (docs/METHOD.md#decision-training).
    assert main(["profile", "--genotype", "DDPNAS_MCN_2", "--size", "L", "--dataset", "imagenet",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    t = data["totals"]
    assert 12.3e6 < t["binary_params"] < 12.5e6
    assert 2.10e6 < t["real_params"] < 2.18e6
    assert t["classifier_params"] == 1_729_000
    assert 80 < t["mbits"] < 82 and 25 < t["mbits_without_classifier"] < 26
    assert t["ops"] == pytest.approx(t["flops"] + t["bops"] / 64)
    assert t["bops"] > 0 and t["flops"] > 0
    assert data["info"]["C"] == 108 and data["info"]["layers"] == 10
    assert data["input_shape"] == [3, 224, 224]
    assert sum(r["binary_params"] for r in data["layers"]) == t["binary_params"]

    assert main(["profile", "--genotype", "DDPNAS_MCN_2", "--size", "L", "--dataset",
                 "imagenet"]) == 0
    table = capsys.readouterr().out
    assert "MBits" in table and "OPs" in table and "80.842" in table
    assert "without the classifier" in table


def test_cli_profile_errors(capsys):
    assert main(["profile", "--genotype", "/no/such.json", "--size", "XS", "--dataset",
                 "cifar10"]) == 2
    assert "is neither a file nor a known name" in capsys.readouterr().err
    assert main(["profile", "--size", "XXL"]) == 2
