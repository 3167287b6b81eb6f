"""Does fine-tuning on a bag of a new environment help? Ground-truth depth error before and after.

A model trained on synthetic streets (``--init``) is fine-tuned self-supervised on a bag of
another scene style (default: the indoor corridor), recorded with
``dna-depth make-sample-bag``, exactly as a user would fine-tune on their own recording.
Both models are then evaluated against the ground-truth depth of a second, unseen bag of
that style:

- AbsRel (and delta < 1.25) with per-image median scaling, the usual self-supervised
  protocol (depth clipped to 80 m, sky excluded);
- with ``--odom``, fine-tuning uses the bag's odometry for speed supervision and the
  benchmark also reports the median ratio of predicted to true depth *without* median
  scaling: 1.0 means the depth is in metres (target: within 10 %);
- the unscaled ratio per ground-truth depth bin (0-2, 2-3, 3-5, 5-10, 10-80 m), which
  tells a wrong scale (all bins off alike) from a distorted depth range.

Not part of CI; takes minutes to hours on a CPU depending on ``--steps`` and the size::

    python benchmarks/finetune_synthetic.py --init dna_depth_core/assets/dna_depth_synthetic.safetensors
    python benchmarks/finetune_synthetic.py --init street.safetensors --odom --steps 1500 --work-dir /tmp/ft
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dna_depth_core.checkpoint import read_metadata
from dna_depth_core.metrics import ABS_REL, DELTA_1, evaluate_depth_map
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.data.rosbag.dataset import BagDataConfig
from dna_depth_core.training.finetune import make_settings, run_finetune
from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.rosbag.reader import RecordedBag, decode_image, header_stamp_ns, read_calibration
from dna_depth_core.data.rosbag.sample_bag import make_sample_bag

MAX_EVAL_DEPTH = 80.0
"""Metres; ground truth beyond is not evaluated (the KITTI protocol's cap)."""


def ground_truth_pairs(bag_path: Path) -> list[tuple[np.ndarray, np.ndarray, CameraCalibration]]:
    """``(uint8 RGB image, float32 depth in metres with 0 = unknown, the camera's calibration)``
    per frame of a sample bag (the depth is in the geometry of the rectified image)."""
    bag = RecordedBag(bag_path)
    calibration = read_calibration(bag, "/camera/camera_info")
    images = {header_stamp_ns(m.data): decode_image(m) for m in bag.messages(["/camera/image_raw"])}
    pairs = []
    for message in bag.messages(["/camera/depth_gt"]):
        depth = message.deserialize()
        values = np.frombuffer(depth.data, np.float32).reshape(depth.height, depth.width)
        pairs.append((images[header_stamp_ns(message.data)], np.nan_to_num(values, nan=0.0), calibration))
    return pairs


DEPTH_BINS = (0.0, 2.0, 3.0, 5.0, 10.0, MAX_EVAL_DEPTH)
"""Metres; edges of the ground-truth depth bins of the per-bin ratio table."""


def evaluate(path: Path, pairs: list[tuple[np.ndarray, np.ndarray, CameraCalibration]]) -> dict:
    """Mean median-scaled AbsRel and delta1, the median unscaled depth ratio, and the median
    unscaled ratio per ground-truth depth bin, over ``pairs``.

    The per-bin ratios show how the depth is distorted, not just scaled: a model whose
    near ratios are above 1 and far ratios below 1 compresses the depth range, and its
    overall ratio then depends on the mix of near and far pixels.
    """
    estimator = DepthEstimator.from_checkpoint(path, device="cpu", backend="eager")  # no ONNX export per model
    abs_rel, delta, ratios = [], [], []
    pixel_ratios, pixel_depths = [], []
    for image, truth, calibration in pairs:
        # The node's path: prepared with the calibration, depth on the rectified image (NaN outside the view).
        predicted = estimator.estimate(image, calibration, resolution="input")
        metrics, scale = evaluate_depth_map(truth, predicted, 1e-3, MAX_EVAL_DEPTH, median_scaling=True)
        abs_rel.append(metrics[ABS_REL])
        delta.append(metrics[DELTA_1])
        ratios.append(1.0 / scale)  # median(pred) / median(gt) over the valid pixels
        valid = (truth > 1e-3) & (truth < MAX_EVAL_DEPTH) & np.isfinite(predicted)
        pixel_ratios.append(predicted[valid] / truth[valid])
        pixel_depths.append(truth[valid])
    pixel_ratios, pixel_depths = np.concatenate(pixel_ratios), np.concatenate(pixel_depths)
    bins = {}
    for low, high in zip(DEPTH_BINS[:-1], DEPTH_BINS[1:]):
        in_bin = (pixel_depths >= low) & (pixel_depths < high)
        if in_bin.any():
            bins[f"{low:g}-{high:g} m"] = {"pixel_share": float(in_bin.mean()),
                                           "unscaled_ratio": float(np.median(pixel_ratios[in_bin]))}
    return {"abs_rel": float(np.mean(abs_rel)), "delta1": float(np.mean(delta)),
            "unscaled_depth_ratio": float(np.median(ratios)), "unscaled_ratio_by_depth": bins}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="street-trained checkpoint to start from")
    parser.add_argument("--style", default="corridor", help="scene style of the fine-tuning bags (default corridor)")
    parser.add_argument("--train-frames", type=int, default=300, help="frames in the fine-tuning bag (10 Hz)")
    parser.add_argument("--eval-frames", type=int, default=40, help="frames in the held-out evaluation bag")
    parser.add_argument("--height", type=int, help="image and training height (default: the checkpoint's)")
    parser.add_argument("--width", type=int, help="image and training width (default: the checkpoint's)")
    parser.add_argument("--steps", type=int, default=1000, help="fine-tuning optimiser steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (default: finetune-bag's, 3e-4)")
    parser.add_argument("--odom", action="store_true", help="speed-supervise with /odom (metric depth)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed of the fine-tuning bag (evaluation: +1000)")
    parser.add_argument("--work-dir", default="finetune_benchmark", help="bags, frame cache and fine-tune output")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further training overrides")
    args = parser.parse_args(argv)

    metadata = read_metadata(args.init)
    height, width = args.height or metadata.height, args.width or metadata.width
    work = Path(args.work_dir)
    bags = {}
    for name, frames, seed in (("train", args.train_frames, args.seed), ("eval", args.eval_frames, args.seed + 1000)):
        bags[name] = work / f"{args.style}_{name}_{frames}f_{width}x{height}_seed{seed}"
        if not bags[name].exists():
            make_sample_bag(bags[name], style=args.style, frames=frames, height=height, width=width, seed=seed)

    output = work / f"finetune_{'odom' if args.odom else 'selfsup'}_{args.steps}steps"
    if output.exists():
        sys.exit(f"{output} exists; delete it or choose another --work-dir")
    data = BagDataConfig(height=height, width=width, odom_topic="/odom" if args.odom else None,
                         cache_dir=str(work / "cache"))
    overrides = [f"optim.max_steps={args.steps}", "optim.epochs=1000", f"optim.lr={args.lr}",
                 f"data.batch_size={args.batch_size}", "runtime.checkpoint_every_steps=100", *args.overrides]
    settings = make_settings([str(bags["train"])], output, data, args.init, overrides)
    started = time.monotonic()
    result = run_finetune(settings, output)
    minutes = (time.monotonic() - started) / 60

    pairs = ground_truth_pairs(bags["eval"])
    before, after = evaluate(Path(args.init), pairs), evaluate(result.checkpoint, pairs)
    report = {
        "init": args.init, "style": args.style, "size": [height, width], "steps": result.summary.steps,
        "odometry": args.odom, "train_frames": args.train_frames, "eval_frames": len(pairs),
        "finetune_minutes": round(minutes, 1), "before": before, "after": after,
        "photometric_before": result.before["photometric"], "photometric_after": result.after["photometric"],
    }
    (output / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(f"\n{args.style} held-out bag, {len(pairs)} frames, {width}x{height}, {result.summary.steps} steps "
          f"({minutes:.1f} min){', odometry' if args.odom else ''}")
    print(f"{'':8s} {'AbsRel':>8s} {'d<1.25':>8s} {'pred/gt (unscaled)':>20s}")
    for name, metrics in (("before", before), ("after", after)):
        print(f"{name:8s} {metrics['abs_rel']:8.4f} {metrics['delta1']:8.3f} {metrics['unscaled_depth_ratio']:20.3f}")
    print(f"\nmedian predicted / true depth (unscaled) per true-depth bin:\n{'bin':>10s} {'pixels':>7s} "
          f"{'before':>7s} {'after':>7s}")
    for name, after_bin in after["unscaled_ratio_by_depth"].items():
        before_bin = before["unscaled_ratio_by_depth"][name]
        print(f"{name:>10s} {after_bin['pixel_share']:7.1%} {before_bin['unscaled_ratio']:7.3f} "
              f"{after_bin['unscaled_ratio']:7.3f}")
    improved = after["abs_rel"] < before["abs_rel"]
    print(f"AbsRel {'improved' if improved else 'did NOT improve'}"
          + (f"; unscaled depth ratio {after['unscaled_depth_ratio']:.3f} "
             f"({'within' if abs(after['unscaled_depth_ratio'] - 1) <= 0.1 else 'outside'} 10 % of metric)"
             if args.odom else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
