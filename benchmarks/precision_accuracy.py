"""Reduced precision against the ground-truth accuracy budget: every configuration, per checkpoint.

For each checkpoint (default: the shipped one) and every precision/backend available here
(float32 on each backend, bf16 on CPUs with AVX512-BF16 or AMX, int8 calibrated on the
checkpoint's training frames or the int8 model the checkpoint stores, fp16 and TensorRT on
CUDA), prints the change against PyTorch float32 on held-out synthetic test sequences of
every scene style — mean AbsRel, mean d<1.25, the 99th percentile of the per-pixel relative
depth change (worst over the styles, and per style) — the median batch-1 latency timed
interleaved, and the verdict of :func:`dna_depth_core.inference.precision.budget_verdict`
(|change in AbsRel| <= 0.003, |change in d1| <= 0.005, pixel p99 <= 3 %).

The network runs at the checkpoint's input size unless ``--height/--width`` say otherwise
(e.g. 640x192, the latency target's size; int8 is then calibrated at that size too).
``dna-depth calibrate-precision`` runs the same measurement and stores it in a checkpoint.

Run::

    python benchmarks/precision_accuracy.py                                    # shipped checkpoint
    python benchmarks/precision_accuracy.py --checkpoint a.safetensors --checkpoint b.safetensors
    python benchmarks/precision_accuracy.py --height 192 --width 640 --sequences 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from dna_depth_core.checkpoint import load_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.evaluation.precision_budget import (
    TEST_SEED, available_configurations, budget_test_sets, describe_test_sets, format_results,
    measure_configurations,
)
from dna_depth_core.devices import resolve_device
from dna_depth_core.inference.backends import physical_core_count
from dna_depth_core.inference.precision import cpu_description, read_checkpoint_precision
from dna_depth_core.checkpoint import shipped_checkpoint_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", type=Path,
                        help="checkpoint to measure (repeatable; default: the shipped one)")
    parser.add_argument("--height", type=int, help="network input height (multiple of 32; default: the checkpoint's)")
    parser.add_argument("--width", type=int, help="network input width (multiple of 32; default: the checkpoint's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sequences", type=int, default=2, help="test sequences per scene style")
    parser.add_argument("--frames", type=int, default=6, help="frames per test sequence")
    parser.add_argument("--rounds", type=int, default=10, help="timed runs per configuration")
    parser.add_argument("--calibration-frames", type=int, default=48, help="int8 calibration frames")
    parser.add_argument("--no-int8", action="store_true", help="skip int8")
    args = parser.parse_args()
    device = resolve_device(args.device)
    machine = cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"# Precision against the accuracy budget: {machine}, {physical_core_count()} physical cores, "
          f"torch {torch.__version__}\n")
    for path in args.checkpoint or [shipped_checkpoint_path()]:
        checkpoint = load_checkpoint(path)
        metadata = checkpoint.metadata
        resized = (args.height or metadata.height, args.width or metadata.width) != (metadata.height, metadata.width)
        metadata = dataclasses.replace(metadata, height=args.height or metadata.height,
                                       width=args.width or metadata.width)
        _, int8_model = read_checkpoint_precision(path)
        calibration = "stored in the checkpoint"
        if args.no_int8 or device.type != "cpu":
            int8_model = None
        elif int8_model is None or resized:
            from dna_depth_core.export.quantize import quantize_int8, training_frames

            try:
                frames, calibration = training_frames(metadata, args.calibration_frames)
                int8_model = quantize_int8(checkpoint.depth_net, metadata, frames)
            except UserError as error:
                int8_model, calibration = None, f"not measured: {error}"
        test_sets = budget_test_sets(metadata.height, metadata.width, args.sequences, args.frames)
        results = measure_configurations(
            checkpoint.depth_net, metadata, device, available_configurations(device, int8_model is not None),
            test_sets, int8_model, args.rounds, log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        print(f"## {path.name} at {metadata.width}x{metadata.height}\n")
        print(f"Test data: {describe_test_sets(test_sets, TEST_SEED)}. int8 calibration: {calibration}.\n")
        print(format_results(results) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
