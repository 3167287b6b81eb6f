"""Is the shipped checkpoint metric? Unscaled depth against exact synthetic truth, per style and depth bin.

For held-out synthetic sequences of every scene style (seeds 500000+, which no training
run of the project uses), each frame goes through the preparation contract as a camera
frame would (:class:`~dna_depth_core.inference.DepthEstimator`: rectified with its
calibration, centre-cropped to the network's aspect, resized, depth times the
focal-length factor of a camera other than the training one), and the predicted depth on
the camera image is compared with the generator's exact depth. Printed per row (a style
and a camera), as one markdown table:

- ``ratio``: the median over all valid pixels of predicted / true depth, **unscaled**
  (1.0 is metric; the goal of the shipped model is within 10 %), overall (true depth
  0.5-80 m) and per true-depth bin 0.5-2, 2-4, 4-8, 8-15, 15-80 m (``-``: no pixels);
- ``AbsRel``: mean over images of the median-scaled absolute relative error (the shape
  of the depth, scale removed);
- ``nearest`` / ``farthest``: the 0.1st and 99.9th percentile of predicted depth (m);
- and, above the table, the checkpoint's possible range (``min_depth`` and ``max_depth``
  times ``depth_scale``).

Rows: each style with the shipped model's training camera (network size, 90 degrees,
its default camera height) and with a held-out camera height; then each style's own
default camera (street: KITTI's 640x192 camera; corridor: the same; robot: its 4:3
wide-angle lens with distortion at 320x240), which exercises the focal-length factor and
the crop.

Run (about 5 minutes on one loaded CPU core)::

    OMP_NUM_THREADS=1 python benchmarks/shipped_metric.py
    OMP_NUM_THREADS=1 python benchmarks/shipped_metric.py --checkpoint runs/metric_shipped/last.safetensors
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from dna_depth_core.checkpoint import load_checkpoint, shipped_checkpoint_path
from dna_depth_core.data.synthetic import camera_frames, generate_sequence, scene_config
from dna_depth_core.inference import DepthEstimator

SEED = 500_000
BINS = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 15.0), (15.0, 80.0))
EVALUATED = (0.5, 80.0)
"""True depths (metres) the overall ratio and AbsRel use."""


def rows(height: int, width: int) -> list[tuple[str, dict]]:
    """``(label, scene_config keyword arguments)`` of every benchmark row."""
    trained = {"height": height, "width": width, "horizontal_fov_deg": 90.0}
    return [
        ("street, training camera, h 1.65 m", {"style": "street", **trained, "camera_height": 1.65}),
        ("street, training camera, h 1.9 m", {"style": "street", **trained, "camera_height": 1.9}),
        ("corridor, training camera, h 1.2 m", {"style": "corridor", **trained, "camera_height": 1.2}),
        ("corridor, training camera, h 1.0 m", {"style": "corridor", **trained, "camera_height": 1.0}),
        ("robot, training camera, h 0.5 m", {"style": "robot", **trained, "camera_height": 0.5}),
        ("robot, training camera, h 0.4 m", {"style": "robot", **trained, "camera_height": 0.4}),
        ("street, KITTI camera 640x192", {"style": "street", "height": 192, "width": 640}),
        ("corridor, KITTI camera 640x192", {"style": "corridor", "height": 192, "width": 640}),
        ("robot, wide-angle lens 320x240", {"style": "robot", "height": 240, "width": 320}),
    ]


def measure(estimator: DepthEstimator, options: dict, sequences: int, frames: int) -> dict:
    """Pooled ratios, AbsRel and predicted range over ``sequences`` x ``frames`` frames of one row."""
    style = options.pop("style")
    config = scene_config(style, frames_per_sequence=frames, **options)
    ratios, truths, predictions, abs_rels = [], [], [], []
    for seed in range(SEED, SEED + sequences):
        sequence = generate_sequence(config, seed)
        images, calibration = camera_frames(sequence)
        for image, truth in zip(images, sequence.depths, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the camera notice, once per row is enough
                predicted = estimator.estimate(image, calibration, resolution="input")
            valid = np.isfinite(predicted) & (truth > EVALUATED[0]) & (truth < EVALUATED[1])
            if not valid.any():
                continue
            p, t = predicted[valid].astype(np.float64), truth[valid].astype(np.float64)
            ratios.append(p / t)
            truths.append(t)
            predictions.append(predicted[np.isfinite(predicted)])
            scaled = p * np.median(t) / np.median(p)
            abs_rels.append(float(np.mean(np.abs(scaled - t) / t)))
    ratio, truth, predicted = np.concatenate(ratios), np.concatenate(truths), np.concatenate(predictions)
    per_bin = []
    for low, high in BINS:
        inside = (truth >= low) & (truth < high)
        per_bin.append(float(np.median(ratio[inside])) if inside.sum() >= 100 else None)
    return {"ratio": float(np.median(ratio)), "bins": per_bin, "abs_rel": float(np.mean(abs_rels)),
            "nearest": float(np.percentile(predicted, 0.1)), "farthest": float(np.percentile(predicted, 99.9)),
            "images": len(abs_rels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint_path(), help="default: the shipped checkpoint")
    parser.add_argument("--sequences", type=int, default=2, help="held-out sequences per row")
    parser.add_argument("--frames", type=int, default=8, help="frames per sequence")
    args = parser.parse_args()
    torch.set_num_threads(1)

    checkpoint = load_checkpoint(args.checkpoint)
    metadata = checkpoint.metadata
    estimator = DepthEstimator(checkpoint.depth_net, metadata, device="cpu", backend="eager")
    print(f"checkpoint {args.checkpoint}: {metadata.width}x{metadata.height}, metric {metadata.metric}, "
          f"depth_scale {metadata.depth_scale:.4g}, possible depth {metadata.min_depth * metadata.depth_scale:.3g}"
          f"-{metadata.max_depth * metadata.depth_scale:.4g} m")
    print(f"held-out seeds {SEED}+, {args.sequences} sequences x {args.frames} frames per row; "
          "ratio = median of predicted / true depth, unscaled\n")
    bins = " | ".join(f"{low:g}-{high:g} m" for low, high in BINS)
    print(f"| row | images | ratio 0.5-80 m | {bins} | AbsRel (median-scaled) | nearest (m) | farthest (m) |")
    print("|---" * (len(BINS) + 6) + "|")
    for label, options in rows(metadata.height, metadata.width):
        result = measure(estimator, dict(options), args.sequences, args.frames)
        cells = " | ".join("-" if value is None else f"{value:.3f}" for value in result["bins"])
        print(f"| {label} | {result['images']} | {result['ratio']:.3f} | {cells} | {result['abs_rel']:.3f} | "
              f"{result['nearest']:.2f} | {result['farthest']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
