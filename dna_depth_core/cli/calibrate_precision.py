"""``dna-depth calibrate-precision``: measure reduced precisions on ground truth and record them in the checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoint import load_checkpoint, read_metadata
from ..devices import resolve_device
from ..errors import UserError
from ..evaluation.precision_budget import calibrate_checkpoint, format_results
from ..inference.backends import resolve_configuration
from ..inference.precision import DEFAULT_BUDGET, read_checkpoint_precision, weights_fingerprint
from ..paths import require_writable_file

if TYPE_CHECKING:
    import torch


def register(subparsers) -> None:
    budget = DEFAULT_BUDGET
    parser = subparsers.add_parser(
        "calibrate-precision",
        help="measure fp32/bf16/int8/fp16 on ground truth and record what precision 'auto' may use",
        description=(
            "Run every precision and backend available on this machine (float32, bf16 on CPUs with "
            "AVX512-BF16 or AMX, int8 calibrated on the checkpoint's training frames, fp16 and TensorRT on "
            "CUDA) on held-out synthetic test sequences of every scene style, compare each with float32 "
            f"on ground truth (budget: |change in AbsRel| <= {budget.abs_rel:g}, |change in d1| <= "
            f"{budget.d1:g}, per-pixel depth change p99 <= {budget.pixel_change_p99:.0%}), time each, and "
            "write the checkpoint with the results to OUTPUT (with the int8 model when it met the budget). "
            "Precision 'auto' of the node and DepthEstimator then runs the fastest configuration that met "
            "the budget. Latencies are this machine's: run it on the robot's computer (or one like it); a "
            "run on a GPU machine adds its CUDA figures to those recorded on the CPU."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint to measure (.safetensors)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="checkpoint file to write with the record (may be the input file)")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'cuda:N' or 'auto'")
    parser.add_argument("--no-int8", action="store_true",
                        help="do not calibrate or measure int8 (it needs NNCF and the training frames)")
    parser.add_argument("--calibration-frames", type=int, default=48,
                        help="training frames the int8 activation ranges are calibrated on")
    parser.add_argument("--sequences", type=int, default=2, help="test sequences per scene style")
    parser.add_argument("--frames", type=int, default=6, help="frames per test sequence")
    parser.add_argument("--rounds", type=int, default=10, help="timed batch-1 runs per configuration (interleaved)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for name in ("calibration_frames", "sequences", "frames", "rounds"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    require_writable_file(args.output, "--output")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    metadata = read_metadata(args.checkpoint)
    record, results = calibrate_checkpoint(
        args.checkpoint, args.output, device, not args.no_int8, calibration_count=args.calibration_frames,
        sequences=args.sequences, frames=args.frames, rounds=args.rounds, log=lambda line: print(line, flush=True),
    )
    print(f"\n{args.checkpoint.name} at {metadata.width}x{metadata.height} on {record.machine}\n")
    print(format_results(results))
    print(f"\nwrote {args.output}: {auto_choice(args.output, device)}")
    return 0


def auto_choice(checkpoint: Path, device: torch.device) -> str:
    """What precision ``auto`` runs ``checkpoint`` in on ``device`` by its record, and why (a phrase)."""
    metadata = read_metadata(checkpoint)
    record, int8_model = read_checkpoint_precision(checkpoint)
    choice = resolve_configuration("auto", "auto", device, record, record.weights if record else None,
                                   (metadata.height, metadata.width), int8_model is not None)
    return f"precision 'auto' on {device.type} runs {choice.precision} on {choice.backend} ({choice.reason})"


def has_precision_record(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` stores a precision record measured for its own weights."""
    record, _ = read_checkpoint_precision(checkpoint)
    return record is not None and record.weights == weights_fingerprint(load_checkpoint(checkpoint).depth_net)


def record_precision(checkpoint: Path, network: str, int8: bool = False,
                     calibration_frames: tuple[list, str] | None = None) -> None:
    """Measure a run's output ``checkpoint`` in every precision this machine runs (on the CPU,
    and on the GPU when there is one) against the accuracy budget, as ``calibrate-precision``
    does, and record the results in it, so the node's ``auto`` runs the fastest that met it.

    Args:
        network: what the checkpoint holds, for the progress line ("the fine-tuned network").
        int8: also calibrate and measure int8, on ``calibration_frames`` (``(frames,
            description)``; ``None``: the checkpoint's synthetic training frames).
    """
    import torch

    # The record keeps each device type's entries: a GPU machine measures for both.
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        print(f"measuring {network}'s precisions on {device.type} against the accuracy budget "
              "(skip with --no-precision-record) ...", flush=True)
        _, results = calibrate_checkpoint(checkpoint, checkpoint, device, int8=int8,
                                          calibration_frames=calibration_frames,
                                          log=lambda line: print(line, flush=True))
        print(format_results(results), flush=True)
        print(f"{checkpoint.name}: {auto_choice(checkpoint, device)}", flush=True)
