"""``dna-depth export``: write a checkpoint's depth network as an ONNX model for deployment."""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from dna_depth_core.checkpoint import load_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.export import (
    DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, SUPPORTED_OPSETS, export_onnx, save_onnx, verify_onnx_model,
)
from dna_depth_core.export.precision_export import EXPORT_PRECISIONS, apply_export_precision
from dna_depth_core.export.verify import TOLERANCE_FACTOR
from dna_depth_core.networks import INPUT_DIVISOR
from dna_depth_core.paths import require_writable_file

FORMATS = ("onnx",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the depth network as an ONNX model for ONNX Runtime, OpenVINO or TensorRT",
        description=(
            "Export a checkpoint's depth network to ONNX. The model takes 'image', float32 (B, 3, H, W) "
            "RGB in [0, 1], and returns 'disparity', float32 (B, 1, H, W) in (0, 1); the checkpoint metadata "
            "(depth range, scale, whether metric) is stored in the model's metadata_props under 'dna_depth'. "
            "Static shapes (the default) suit TensorRT best: trtexec --onnx=model.onnx --fp16 "
            "--saveEngine=model.engine (see docs/deployment.md). Before anything is written, the model is "
            "run in ONNX Runtime on rendered street frames and compared with the network in float64: it "
            "must be within 10x the network's own float32 rounding (unless --no-verify is given)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint file written by 'dna-depth train', 'dna-depth finetune-bag' or "
                             "'dna-depth import-weights'")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="output format")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write, e.g. model.onnx")
    parser.add_argument("--height", type=int, default=None,
                        help=f"input height in pixels, a multiple of {INPUT_DIVISOR} (default: the checkpoint's)")
    parser.add_argument("--width", type=int, default=None,
                        help=f"input width in pixels, a multiple of {INPUT_DIVISOR} (default: the checkpoint's)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of a static-shape model")
    parser.add_argument("--dynamic", action="store_true",
                        help="make batch, height and width symbolic (any multiples of 32); TensorRT then needs "
                             "--minShapes/--optShapes/--maxShapes")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="make only the batch size symbolic, keeping height and width fixed")
    parser.add_argument("--opset", type=int, choices=SUPPORTED_OPSETS, default=DEFAULT_OPSET,
                        help="ONNX opset; 17 also loads in TensorRT 8.6 (JetPack 6.0), 18 needs TensorRT 10")
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                        help="fp32; fp16 (float16 graph, float32 input/output: TensorRT 11, ONNX Runtime CUDA); "
                             "int8 (the calibrated model 'dna-depth calibrate-precision' stored, when it met the "
                             "accuracy budget); auto: the fastest exportable one the checkpoint's precision record "
                             "found within budget. The record is copied into the model's metadata_props")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip running the exported model in ONNX Runtime to compare it with PyTorch")
    parser.set_defaults(handler=run)


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (value <= 0 or value % INPUT_DIVISOR):
        suggestion = max(round(value / INPUT_DIVISOR), 1) * INPUT_DIVISOR
        raise UserError(f"--{name} must be a positive multiple of {INPUT_DIVISOR}, got {value}; try {suggestion}")


def _verify(model, depth_net, args: argparse.Namespace, height: int, width: int) -> None:
    """Compare the in-memory model with PyTorch (see :mod:`dna_depth_core.export.verify`).

    Raises:
        UserError: the model does not compute what the network computes; nothing is written.
    """
    batch = 2 if args.dynamic or args.dynamic_batch else args.batch
    sizes = [(height, width)]
    if args.dynamic:  # a second size exercises the symbolic height and width
        sizes.append((height + INPUT_DIVISOR, width + 2 * INPUT_DIVISOR))
    result = verify_onnx_model(model, depth_net, batch, sizes)
    comparison = (f"largest disparity difference to float64 PyTorch {result.difference:.1e} on {result.frames} "
                  f"rendered street frame(s), allowed {result.tolerance:.1e} "
                  f"({TOLERANCE_FACTOR:g}x float32 PyTorch's {result.float32_rounding:.1e})")
    if not result.passed:
        raise UserError(
            f"the exported model does not match the network: {comparison}; nothing was written. Please report "
            f"this with the output of 'dna-depth info {args.checkpoint}'"
        )
    print(f"verified with ONNX Runtime: {comparison}")


def run(args: argparse.Namespace) -> int:
    _check_size("height", args.height)
    _check_size("width", args.width)
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    require_writable_file(args.output, "-o")
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"exporting to ONNX needs {' and '.join(missing)}: pip install onnx onnxscript onnxruntime")
    checkpoint = load_checkpoint(args.checkpoint)
    metadata = checkpoint.metadata
    height = args.height or metadata.height
    width = args.width or metadata.width
    shape = "dynamic batch, height and width" if args.dynamic else (
        f"dynamic batch x 3 x {height} x {width}" if args.dynamic_batch else f"{args.batch} x 3 x {height} x {width}"
    )
    print(f"exporting {metadata.network.encoder} from {args.checkpoint} ({shape}, opset {args.opset}) ...", flush=True)
    started = time.perf_counter()
    model = export_onnx(
        checkpoint.depth_net, metadata, height=height, width=width, batch=args.batch,
        dynamic_batch=args.dynamic or args.dynamic_batch, dynamic_size=args.dynamic, opset=args.opset,
    )
    print(f"exported in {time.perf_counter() - started:.1f} s", flush=True)
    if args.no_verify:
        print("not verified (--no-verify)")
    elif importlib.util.find_spec("onnxruntime") is None:
        print("not verified: onnxruntime is not installed (pip install onnxruntime)")
    else:
        _verify(model, checkpoint.depth_net, args, height, width)
    model, precision = apply_export_precision(model, args.checkpoint, checkpoint.depth_net, args.precision,
                                              (metadata.height, metadata.width), (height, width), args.dynamic)
    save_onnx(model, args.output)
    print(f"wrote {args.output} ({precision}, {args.output.stat().st_size / 1e6:.1f} MB)")
    print(f"input '{INPUT_NAME}': float32 RGB in [0, 1]; output '{OUTPUT_NAME}': disparity in (0, 1); "
          f"depth = {metadata.depth_scale:g} / (1/{metadata.max_depth:g} + "
          f"(1/{metadata.min_depth:g} - 1/{metadata.max_depth:g}) * disparity)"
          + (" metres" if metadata.metric else " (relative units)"))
    return 0
