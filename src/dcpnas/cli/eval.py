"""Evaluate a trained model on its test split: top-1/top-5 and its cost (MBits, OPs)."""

from __future__ import annotations

import argparse

NAME = "eval"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0]
                              + " The checkpoint is a model.pt (or checkpoint.pt) written by 'dcpnas train'"
                              " or a packed .dcpnas file.")
    p.add_argument("--checkpoint", "-c", required=True, help="model.pt, checkpoint.pt or model.dcpnas")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the one the model was trained on)")
    p.add_argument("--data-dir", help="dataset folder (the ImageNet root for imagenet)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch (default: 256)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def run(args) -> int:
    import json

    from ..errors import ConfigError
    from ..train.evaluate import evaluate_file

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    result = evaluate_file(args.checkpoint, dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                           batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.checkpoint}: {result['dataset']} test ({result['n']} images): top-1 {result['top1']:.2f}% "
          f"top-5 {result['top5']:.2f}% loss {result['loss']:.4f}")
    prof = result.get("profile")
    if prof:
        print(f"cost: {prof['mbits']:.3f} MBits ({prof['mbits_without_classifier']:.3f} without the "
              f"classifier), {prof['ops'] / 1e6:.2f} M OPs (FLOPs {prof['flops'] / 1e6:.2f} M + "
              f"BOPs {prof['bops'] / 1e6:.2f} M / 64)")
    return 0
