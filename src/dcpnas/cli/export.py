"""Export a trained model: packed 1-bit weights (.dcpnas) and optionally an ONNX inference graph."""

from __future__ import annotations

import argparse

NAME = "export"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=__doc__.splitlines()[0], description=__doc__.splitlines()[0]
                              + " The packed file stores binary conv weights as bits (8 per byte) with "
                              "their β scales and the model spec; dcpnas.train.load_packed reads it.")
    p.add_argument("--checkpoint", "-c", required=True, help="model.pt (or checkpoint.pt) from 'dcpnas train'")
    p.add_argument("--out", "-o", required=True, help="packed model file to write (e.g. model.dcpnas)")
    p.add_argument("--onnx", help="also write the inference graph as ONNX to this file")
    p.add_argument("--onnx-exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch ONNX exporter (default: torchscript, which needs no extra package)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    p.add_argument("--json", action="store_true", help="print the size report as JSON")
    return p


def run(args) -> int:
    import json

    from ..train.export import export_packed
    from ..train.modelfile import load_model
    from ..utils.io import check_distinct_files, check_output_file

    # Both outputs are checked before the model is read: a bad --onnx must not come after the .dcpnas.
    check_output_file(args.out)
    if args.onnx:
        check_output_file(args.onnx)
    check_distinct_files({"--out": args.out, "--onnx": args.onnx}, {"--checkpoint": args.checkpoint})
    if args.onnx:
        from ..train.onnx_export import check_opset

        check_opset(args.opset, args.onnx_exporter)
    report = export_packed(args.checkpoint, args.out)
    result = report.to_dict()
    if args.onnx:
        from ..train.onnx_export import export_onnx

        model, spec, _ = load_model(args.checkpoint)
        export_onnx(model, args.onnx, spec.input_shape, opset=args.opset, exporter=args.onnx_exporter)
        result["onnx"] = args.onnx
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report.table())
        if args.onnx:
            print(f"ONNX inference graph {args.onnx} (input 'images': N x {' x '.join(map(str, spec.input_shape))},"
                  f" normalised with the model's mean/std; output 'logits')")
    return 0
