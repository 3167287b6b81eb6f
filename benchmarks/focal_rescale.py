"""How much the focal-length rescale corrects a monocular network's depth on another camera.

A monocular network judges distance from how big things look, so on a camera with a longer
focal length (in network-input pixels) than its training camera it sees everything bigger,
hence nearer: its depth comes out too small by the focal ratio. The preparation contract
multiplies depth by that ratio (``focal_rescale``, on by default in the node and in
:class:`~dna_depth_core.inference.DepthEstimator`).

This renders held-out synthetic street sequences (:mod:`dna_depth_core.data.synthetic`) at
the checkpoint's input size with the training camera's focal length and with
``--focal-factor`` times it (a narrower field of view), runs the checkpoint on them through
``DepthEstimator`` with the camera's calibration, with and without the rescale, and prints
one table: the median over frames of the unscaled ratio ``median(pred) / median(true)``
(1.0 is right; the shipped checkpoint's ``depth_scale`` was calibrated on its training
camera) and the median-scaled AbsRel (the shape of the depth, which a global factor does
not change).

Run (about a minute on a 2-core machine)::

    python benchmarks/focal_rescale.py
    python benchmarks/focal_rescale.py --checkpoint model.safetensors --focal-factor 0.7 --sequences 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dna_depth_core.checkpoint import read_metadata, shipped_checkpoint_path
from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.synthetic import SyntheticSceneConfig, generate_sequence
from dna_depth_core.evaluation.evaluate import (
    SYNTHETIC_PROTOCOL,
    EvaluationSample,
    estimator_predictor,
    evaluate_predictions,
)
from dna_depth_core.inference import DepthEstimator

HELD_OUT_SEED = 300_000
"""First scene seed: far from the seeds training (0...), evaluation (100000...) and the
shipped checkpoint's scale calibration (200000...) use."""


def render(style: str, height: int, width: int, fx: float, fy: float, sequences: int, frames: int):
    """Evaluation samples of ``sequences`` scenes seen by a pinhole camera with normalised
    focal lengths ``fx``, ``fy`` (principal point at the centre), with its calibration."""
    config = SyntheticSceneConfig(style=style, height=height, width=width, frames_per_sequence=frames,
                                  fx_ratio=fx, fy_ratio=fy)
    samples = []
    for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + sequences):
        sequence = generate_sequence(config, seed)
        calibration = CameraCalibration.pinhole(sequence.intrinsics, height, width, source=f"fx/W {fx:.3f}")
        samples += [EvaluationSample(f"seed{seed}/frame{index:03d}", image, depth, calibration)
                    for index, (image, depth) in enumerate(zip(sequence.images, sequence.depths, strict=True))]
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint_path(), help="default: the shipped checkpoint")
    parser.add_argument("--focal-factor", type=float, default=1.5,
                        help="second camera's focal length over the training camera's (default 1.5)")
    parser.add_argument("--style", default="street", help="synthetic scene style (default street)")
    parser.add_argument("--sequences", type=int, default=2, help="held-out sequences per camera")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    metadata = read_metadata(args.checkpoint)
    training = metadata.preparation
    height, width = metadata.height, metadata.width
    print(f"checkpoint {args.checkpoint.name}: {width}x{height} input, training camera fx/W {training.fx:.3f}, "
          f"fy/H {training.fy:.3f}; {args.sequences} x {args.frames} held-out {args.style} frames per camera\n")
    estimators = {
        rescale: DepthEstimator.from_checkpoint(args.checkpoint, device="cpu", backend="eager", focal_rescale=rescale)
        for rescale in (False, True)
    }
    rows = []
    started = time.monotonic()
    for factor in (1.0, args.focal_factor):
        fx, fy = training.fx * factor, training.fy * factor
        samples = render(args.style, height, width, fx, fy, args.sequences, args.frames)
        for rescale, estimator in estimators.items():
            result = evaluate_predictions(estimator_predictor(estimator), samples, SYNTHETIC_PROTOCOL,
                                          num_examples=0, progress=False)
            ratios = [1.0 / image.scale for image in result.per_image]  # median(pred) / median(true)
            depth_factor = estimator.plan((height, width), samples[0].calibration).depth_factor
            rows.append((factor, fx, rescale, depth_factor, float(np.median(ratios)),
                         float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75)),
                         result.metrics["abs_rel"]))
    print("| camera focal / training | fx/W | focal_rescale | depth factor | median pred/true (unscaled) "
          "| IQR | median-scaled AbsRel |")
    print("|---|---|---|---|---|---|---|")
    for factor, fx, rescale, depth_factor, ratio, low, high, abs_rel in rows:
        print(f"| {factor:.2f} | {fx:.3f} | {'on' if rescale else 'off'} | {depth_factor:.3f} | {ratio:.3f} "
              f"| {low:.3f}-{high:.3f} | {abs_rel:.3f} |")
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
