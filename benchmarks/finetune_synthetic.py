"""Does fine-tuning on a bag of a new environment help? Ground-truth depth error before and after.

A model trained on synthetic streets (``--init``) is fine-tuned self-supervised on a bag of
another scene style (default: the indoor corridor), recorded with
``dna-depth make-sample-bag``, exactly as a user would fine-tune on their own recording.
Both models are then evaluated against the ground-truth depth of a second, unseen bag of
that style:

- AbsRel (and delta < 1.25) with per-image median scaling, the usual self-supervised
  protocol (depth clipped to 80 m, sky excluded);
- with ``--odom``, fine-tuning uses the bag's odometry for speed supervision; with
  ``--camera-height``, the floor plane and the style's camera height (0.5 m robot, 1.65 m
  street) fix the scale; without either the scale source is the starting model's own
  unit, if it is metric (the printout names the source, the unit and the nearest depth);
  a metric result also reports the median ratio of predicted to true depth *without* median
  scaling: 1.0 means the depth is in metres (target: within 10 %);
- the unscaled ratio per ground-truth depth bin (0-2, 2-3, 3-5, 5-10, 10-80 m), which
  tells a wrong scale (all bins off alike) from a distorted depth range.

Every model is evaluated the way the depth node computes depth: each recorded camera
frame (for the ``robot`` style a raw, distorted 640x480 plumb_bob image) and the bag's
CameraInfo go through :class:`~dna_depth_core.inference.DepthEstimator`, which prepares
them with the checkpoint's :class:`~dna_depth_core.data.camera.FramePlan` (rectify, crop,
resize) and maps the depth back onto the rectified camera image (``output_resolution:
input``: NaN outside the network's view and on the rectification border). That is
compared with ``/camera/depth_gt``, which is in the same rectified geometry: like with like.

The fine-tuned model is also evaluated the fine-tune's own way, and the two must agree
(within 2 %, the parity check of issue #13): the evaluation bag's frames as fine-tuning
prepares them (:func:`~dna_depth_core.data.rosbag.dataset.build_bag_datasets`, network
size), depth straight from the network as training validation computes it, against the
bag's depth mapped onto those frames
(:func:`~dna_depth_core.data.rosbag.ground_truth.ground_truth_depths`, the fine-tune
report's ground truth). Both see the same frames (the evaluation bag's moving frames).

An output folder that already holds this fine-tune's checkpoint and report is evaluated
again, not retrained.

Not part of CI; takes minutes to hours on a CPU depending on ``--steps`` and the size::

    python benchmarks/finetune_synthetic.py --init dna_depth_core/assets/dna_depth_synthetic.safetensors
    python benchmarks/finetune_synthetic.py --init street.safetensors --odom --steps 1500 --work-dir /tmp/ft
    python benchmarks/finetune_synthetic.py --init dna_depth_core/assets/dna_depth_synthetic.safetensors \
        --style robot --steps 30 --batch-size 2 --work-dir /tmp/ft_robot   # ~40 min on 2 loaded cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dna_depth_core.checkpoint import load_checkpoint, read_metadata
from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.camera.preparation import plan_training_frames
from dna_depth_core.data.rosbag.dataset import BagDataConfig, BagTripletDataset, build_bag_datasets
from dna_depth_core.data.rosbag.ground_truth import ground_truth_depths
from dna_depth_core.data.rosbag.reader import RecordedBag, decode_image, header_stamp_ns, read_calibration
from dna_depth_core.data.rosbag.sample_bag import make_sample_bag
from dna_depth_core.data.synthetic import ROBOT_STYLE, scene_config
from dna_depth_core.metrics import ABS_REL, DELTA_1, evaluate_depth_map
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.training.finetune import FINETUNED_CHECKPOINT, REPORT_FILE, make_settings, run_finetune

MAX_EVAL_DEPTH = 80.0
"""Metres; ground truth beyond is not evaluated (the KITTI protocol's cap)."""

DEPTH_TOPIC = "/camera/depth_gt"
"""The sample bag's exact depth, in the rectified camera's geometry (P)."""

CAMERA_INFO_TOPIC = "/camera/camera_info"

PARITY_TOLERANCE = 0.02
"""Largest relative difference of the two evaluations' AbsRel (issue #13)."""


def evaluation_frames(bag_path: Path, data: BagDataConfig) -> tuple[BagTripletDataset, list[int]]:
    """The evaluation bag as fine-tuning prepares it (every moving frame, no validation
    split) and the dataset indices of its distinct target frames."""
    dataset = build_bag_datasets([str(bag_path)], dataclasses.replace(data, val_fraction=0.0)).train
    return dataset, list(range(len(dataset)))


def ground_truth_pairs(
    bag_path: Path, image_topic: str, stamps: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, CameraCalibration]]:
    """``(uint8 RGB camera image as recorded, float32 depth in metres with 0 = unknown, the
    camera's calibration)`` for the frames of ``image_topic`` at ``stamps`` (seconds), the
    depth in the geometry of the rectified image."""
    bag = RecordedBag(bag_path)
    calibration = read_calibration(bag, CAMERA_INFO_TOPIC)
    wanted = {int(round(stamp * 1e9)) for stamp in stamps}

    def nearest(stamp_ns: int) -> int | None:
        best = min(wanted, key=lambda value: abs(value - stamp_ns))
        return best if abs(best - stamp_ns) < 1_000_000 else None  # within 1 ms

    images = {}
    for message in bag.messages([image_topic]):
        key = nearest(header_stamp_ns(message.data))
        if key is not None:
            images[key] = decode_image(message)
    pairs = []
    for message in bag.messages([DEPTH_TOPIC]):
        key = nearest(header_stamp_ns(message.data))
        if key is None:
            continue
        depth = message.deserialize()
        values = np.frombuffer(depth.data, np.float32).reshape(depth.height, depth.width)
        pairs.append((images[key], np.nan_to_num(values, nan=0.0), calibration))
    if len(pairs) != len(wanted):
        raise RuntimeError(f"{bag_path}: {len(pairs)} image/depth pairs at the {len(wanted)} evaluated stamps")
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
        metrics, scale = evaluate_depth_map(truth, predicted, 1e-3, MAX_EVAL_DEPTH, garg_crop=False,
                                            median_scaling=True)
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


@torch.no_grad()
def evaluate_as_finetuning(path: Path, dataset: BagTripletDataset, indices: list[int], data: BagDataConfig) -> dict:
    """Mean median-scaled AbsRel and delta1 the fine-tune's way: the target frames of
    ``dataset`` (network size, prepared by fine-tuning's plan), disparity from the network
    turned into depth as training validation does, against the recorded depth mapped onto
    those frames (pixels on the rectification border, black in the frames, left out as the
    node leaves them out)."""
    checkpoint = load_checkpoint(path)
    metadata = checkpoint.metadata
    truths = ground_truth_depths(dataset, indices, data).depths
    sequence = dataset.sequences[0]
    bag = RecordedBag(sequence.bag_path)
    first_image = decode_image(next(iter(bag.messages([sequence.topics.image]))))
    plan = plan_training_frames(first_image.shape[:2], (metadata.height, metadata.width),
                                read_calibration(bag, CAMERA_INFO_TOPIC))
    abs_rel, delta = [], []
    for index, truth in zip(indices, truths):
        if truth is None:
            raise RuntimeError(f"no ground truth for evaluation sample {index}")
        frames = dataset[index]["frames"]  # (3, 3, H, W): previous, target, next
        disparity = checkpoint.depth_net(frames[1:2], multiscale=False)
        predicted = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)[0, 0].numpy()
        truth = np.nan_to_num(truth, nan=0.0)
        if plan.network_mask is not None:
            truth[~plan.network_mask] = 0.0
        metrics, _ = evaluate_depth_map(truth, predicted, 1e-3, MAX_EVAL_DEPTH, garg_crop=False,
                                        median_scaling=True)
        abs_rel.append(metrics[ABS_REL])
        delta.append(metrics[DELTA_1])
    return {"abs_rel": float(np.mean(abs_rel)), "delta1": float(np.mean(delta))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="street-trained checkpoint to start from")
    parser.add_argument("--style", default="corridor", help="scene style of the fine-tuning bags (default corridor)")
    parser.add_argument("--train-frames", type=int, default=300, help="frames in the fine-tuning bag (10 Hz)")
    parser.add_argument("--eval-frames", type=int, default=40, help="frames in the held-out evaluation bag")
    parser.add_argument("--height", type=int,
                        help="training height (default: the checkpoint's; robot style: picked from the camera)")
    parser.add_argument("--width", type=int,
                        help="training width (default: the checkpoint's; robot style: picked from the camera)")
    parser.add_argument("--steps", type=int, default=1000, help="fine-tuning optimiser steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (default: finetune-bag's, 3e-4)")
    parser.add_argument("--odom", action="store_true", help="speed-supervise with /odom (metric depth)")
    parser.add_argument("--camera-height", action="store_true",
                        help="scale from the floor plane with the style's camera height (finetune-bag --camera-height)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed of the fine-tuning bag (evaluation: +1000)")
    parser.add_argument("--work-dir", default="finetune_benchmark", help="bags, frame cache and fine-tune output")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further training overrides")
    args = parser.parse_args(argv)

    metadata = read_metadata(args.init)
    if args.style == ROBOT_STYLE:
        # The robot's own 640x480 camera; the training size follows it unless given.
        bag_size, (height, width) = None, (args.height, args.width)
    else:
        height, width = args.height or metadata.height, args.width or metadata.width
        bag_size = (height, width)
    work = Path(args.work_dir)
    bags = {}
    for name, frames, seed in (("train", args.train_frames, args.seed), ("eval", args.eval_frames, args.seed + 1000)):
        size = "camera" if bag_size is None else f"{bag_size[1]}x{bag_size[0]}"
        bags[name] = work / f"{args.style}_{name}_{frames}f_{size}_seed{seed}"
        if not bags[name].exists():
            bag_height, bag_width = bag_size or (None, None)
            make_sample_bag(bags[name], style=args.style, frames=frames, height=bag_height, width=bag_width, seed=seed)

    route = "odom" if args.odom else "camera_height" if args.camera_height else "selfsup"
    output = work / f"finetune_{route}_{args.steps}steps"
    camera_height = scene_config(args.style, 480, 640).camera_height if args.camera_height else None
    data = BagDataConfig(height=height, width=width, odom_topic="/odom" if args.odom else None,
                         cache_dir=str(work / "cache"))
    minutes = None
    if (output / FINETUNED_CHECKPOINT).is_file() and (output / REPORT_FILE).is_file():
        print(f"{output} holds a finished fine-tune: evaluating it again", flush=True)
        checkpoint = output / FINETUNED_CHECKPOINT
        finetune_report = json.loads((output / REPORT_FILE).read_text())
        steps = finetune_report["steps"]
        photometric = finetune_report["photometric_before"], finetune_report["photometric_after"]
    elif output.exists():
        sys.exit(f"{output} exists without a finished fine-tune; delete it or choose another --work-dir")
    else:
        overrides = [f"optim.max_steps={args.steps}", "optim.epochs=1000", f"optim.lr={args.lr}",
                     f"data.batch_size={args.batch_size}", "runtime.checkpoint_every_steps=100", *args.overrides]
        settings = make_settings([str(bags["train"])], output, data, args.init, overrides,
                                 camera_height=camera_height)
        started = time.monotonic()
        result = run_finetune(settings, output)
        minutes = (time.monotonic() - started) / 60
        checkpoint, steps = result.checkpoint, result.summary.steps
        photometric = result.before["photometric"], result.after["photometric"]

    # The same frames for every evaluation: the evaluation bag's moving frames, as fine-tuning picks them.
    finetuned = read_metadata(checkpoint)
    eval_data = dataclasses.replace(data, height=finetuned.height, width=finetuned.width, odom_topic=None)
    dataset, indices = evaluation_frames(bags["eval"], eval_data)
    stamps = np.array([dataset.sequences[0].stamps[dataset.triplets[index, 2]] for index in indices])
    pairs = ground_truth_pairs(bags["eval"], dataset.sequences[0].topics.image, stamps)
    before, after = evaluate(Path(args.init), pairs), evaluate(checkpoint, pairs)
    own = evaluate_as_finetuning(checkpoint, dataset, indices, eval_data)
    parity = abs(after["abs_rel"] - own["abs_rel"]) / own["abs_rel"]
    report = {
        "init": args.init, "style": args.style, "image_size": list(pairs[0][0].shape[:2]),
        "network_size": [finetuned.height, finetuned.width], "steps": steps, "odometry": args.odom,
        "train_frames": args.train_frames, "eval_frames": len(pairs), "image_topic": dataset.sequences[0].topics.image,
        "finetune_minutes": None if minutes is None else round(minutes, 1), "before": before, "after": after,
        "after_finetune_evaluation": own, "abs_rel_relative_difference": parity,
        "photometric_before": photometric[0], "photometric_after": photometric[1],
        "scale_source": finetuned.provenance.get("scale_source"), "metres_per_unit": finetuned.depth_scale,
        "nearest_depth_m": finetuned.min_depth * finetuned.depth_scale, "camera_height": camera_height,
    }
    (output / "benchmark.json").write_text(json.dumps(report, indent=2))
    image_height, image_width = pairs[0][0].shape[:2]
    took = "" if minutes is None else f" ({minutes:.1f} min)"
    print(f"\n{args.style} held-out bag, {len(pairs)} frames of {report['image_topic']} {image_width}x{image_height}, "
          f"network {finetuned.width}x{finetuned.height}, {steps} steps{took}, scale source "
          f"{report['scale_source']}, {finetuned.depth_scale:.4g} m per unit "
          f"(nearest {report['nearest_depth_m']:.3g} m)")
    print(f"{'':8s} {'AbsRel':>8s} {'d<1.25':>8s} {'pred/gt (unscaled)':>20s}   (the node's path, camera geometry)")
    for name, metrics in (("before", before), ("after", after)):
        print(f"{name:8s} {metrics['abs_rel']:8.4f} {metrics['delta1']:8.3f} {metrics['unscaled_depth_ratio']:20.3f}")
    print(f"\nparity, fine-tuned model: AbsRel {after['abs_rel']:.4f} through the node's path, {own['abs_rel']:.4f} "
          f"in the fine-tune's own evaluation (network frames): {parity:.2%} apart "
          f"({'within' if parity <= PARITY_TOLERANCE else 'OUTSIDE'} {PARITY_TOLERANCE:.0%})")
    print(f"\nmedian predicted / true depth (unscaled) per true-depth bin:\n{'bin':>10s} {'pixels':>7s} "
          f"{'before':>7s} {'after':>7s}")
    for name, after_bin in after["unscaled_ratio_by_depth"].items():
        before_bin = before["unscaled_ratio_by_depth"].get(name, {"unscaled_ratio": float("nan")})
        print(f"{name:>10s} {after_bin['pixel_share']:7.1%} {before_bin['unscaled_ratio']:7.3f} "
              f"{after_bin['unscaled_ratio']:7.3f}")
    improved = after["abs_rel"] < before["abs_rel"]
    print(f"AbsRel {'improved' if improved else 'did NOT improve'}"
          + (f"; unscaled depth ratio {after['unscaled_depth_ratio']:.3f} "
             f"({'within' if abs(after['unscaled_depth_ratio'] - 1) <= 0.1 else 'outside'} 10 % of metric)"
             if finetuned.metric else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
