"""Does fine-tuning on a bag of a new environment help, and does it keep metres? 3 routes x 3 seeds.

A trained model (``--init``) is fine-tuned self-supervised on a bag of a scene style it was
not trained on (default: ``warehouse``, the held-out style no training recipe uses),
recorded with ``dna-depth make-sample-bag``, exactly as a user would fine-tune on their
own recording; once per scale source (``--routes``):

- ``odom``: speed supervision with the bag's odometry (and its ``/tf_static`` mount);
- ``camera_height``: the floor plane and the style's camera height (0.4 m warehouse, 0.5 m
  robot, 1.65 m street) fix the scale (``finetune-bag --camera-height``);
- ``selfsup``: no scale source; a metric start keeps its own unit, if it holds.

The training triplets are spaced as ``finetune-bag`` spaces them (automatic with odometry,
neighbours without); ``--frame-spacing K`` fixes the spacing for every route. For each
scene seed (``--seeds``: the training bag's scene, the training run's seed;
the evaluation bag is seed + 1000). Both the starting and the fine-tuned model are then
evaluated against the ground-truth depth of the unseen evaluation bag:

- ``AbsRel`` with per-image median scaling, the usual self-supervised protocol (depth
  clipped to 80 m; goal of issue #14: <= 0.15);
- ``ratio``: the median over images of predicted / true depth *without* median scaling:
  1.0 means the depth is in metres (goal: within 10 % on every seed);
- the unscaled ratio per true-depth bin 0.5-2, 2-4, 4-8, 8-15, 15-80 m (goal: within
  25 % in every bin from 0.5 to 15 m), which tells a wrong scale (all bins off alike)
  from a distorted depth range (``-``: fewer than 100 pixels);
- ``nearest``: the 0.1st percentile of the predicted depth (m), and the model's nearest
  possible depth (``min_depth`` x metres per unit) in ``benchmark.json``.

One table, a row per route and seed (and the starting model per seed), then one summary
line per route against the goals.

Every model is evaluated the way the depth node computes depth: each recorded camera
frame (for the ground-robot styles ``robot`` and ``warehouse`` a raw, distorted 640x480
plumb_bob image) and the bag's CameraInfo go through
:class:`~dna_depth_core.inference.DepthEstimator`, which prepares them with the
checkpoint's :class:`~dna_depth_core.data.camera.FramePlan` (rectify, crop, resize) and
maps the depth back onto the rectified camera image (``output_resolution: input``: NaN
outside the network's view and on the rectification border). That is compared with
``/camera/depth_gt``, which is in the same rectified geometry: like with like.

The fine-tuned model is also evaluated the fine-tune's own way, and the two must agree
(within 2 %, the parity check of issue #13; a line says when they do not): the evaluation
bag's frames as fine-tuning prepares them
(:func:`~dna_depth_core.data.rosbag.dataset.build_bag_datasets`, network size), depth
straight from the network as training validation computes it, against the bag's depth
mapped onto those frames (:func:`~dna_depth_core.data.rosbag.ground_truth.ground_truth_depths`,
the fine-tune report's ground truth). Both see the same frames (the evaluation bag's moving
frames).

An output folder that already holds a fine-tune's checkpoint and report is evaluated
again, not retrained (so a killed benchmark continues where it stopped).

Not part of CI; takes minutes to hours on a CPU depending on ``--steps`` and the size::

    OMP_NUM_THREADS=1 python benchmarks/finetune_synthetic.py --init dna_depth_core/assets/dna_depth_synthetic.safetensors \
        --train-frames 40 --eval-frames 10 --height 96 --width 128 --steps 30 --batch-size 4 --work-dir /tmp/ft_wh
    python benchmarks/finetune_synthetic.py --init street.safetensors --style corridor --routes odom --seeds 0 \
        --steps 1500 --work-dir /tmp/ft
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
from dna_depth_core.data.synthetic import GROUND_ROBOT_STYLES, WAREHOUSE_STYLE, scene_config
from dna_depth_core.metrics import ABS_REL, DELTA_1, evaluate_depth_map
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.training.finetune import FINETUNED_CHECKPOINT, REPORT_FILE, make_settings, run_finetune

from shipped_metric import BINS

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


ROUTES = {"odom": "odometry", "camera_height": "camera height", "selfsup": "no scale source"}
"""The fine-tune's scale sources the benchmark runs (``--routes``), and how the table names them."""

GOALS = {"abs_rel": 0.15, "ratio": 0.10, "bin_ratio": 0.25, "bins_up_to": 15.0}
"""Issue #14's goals: median-scaled AbsRel at most 0.15, the unscaled ratio within 10 % of 1
on every seed, and within 25 % in every bin up to 15 m."""

MIN_BIN_PIXELS = 100
"""Pixels a depth bin needs for its ratio to be shown."""


def evaluate(path: Path, pairs: list[tuple[np.ndarray, np.ndarray, CameraCalibration]]) -> dict:
    """Mean median-scaled AbsRel and delta1, the median unscaled depth ratio, and the median
    unscaled ratio per ground-truth depth bin, over ``pairs``.

    The per-bin ratios show how the depth is distorted, not just scaled: a model whose
    near ratios are above 1 and far ratios below 1 compresses the depth range, and its
    overall ratio then depends on the mix of near and far pixels.
    """
    estimator = DepthEstimator.from_checkpoint(path, device="cpu", backend="eager")  # no ONNX export per model
    abs_rel, delta, ratios = [], [], []
    pixel_ratios, pixel_depths, predictions = [], [], []
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
        predictions.append(predicted[np.isfinite(predicted)])
    pixel_ratios, pixel_depths = np.concatenate(pixel_ratios), np.concatenate(pixel_depths)
    bins = {}
    for low, high in BINS:
        in_bin = (pixel_depths >= low) & (pixel_depths < high)
        if in_bin.sum() >= MIN_BIN_PIXELS:
            bins[f"{low:g}-{high:g} m"] = {"pixel_share": float(in_bin.mean()),
                                           "unscaled_ratio": float(np.median(pixel_ratios[in_bin]))}
    return {"abs_rel": float(np.mean(abs_rel)), "delta1": float(np.mean(delta)),
            "unscaled_depth_ratio": float(np.median(ratios)), "unscaled_ratio_by_depth": bins,
            "nearest_predicted_m": float(np.percentile(np.concatenate(predictions), 0.1))}


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


def make_bags(work: Path, style: str, frames: dict[str, int], bag_size: tuple[int, int] | None,
              seed: int) -> dict[str, Path]:
    """The training bag (scene ``seed``) and the evaluation bag (``seed + 1000``), made once."""
    bags = {}
    for name, scene_seed in (("train", seed), ("eval", seed + 1000)):
        size = "camera" if bag_size is None else f"{bag_size[1]}x{bag_size[0]}"
        bags[name] = work / f"{style}_{name}_{frames[name]}f_{size}_seed{scene_seed}"
        if not bags[name].exists():
            bag_height, bag_width = bag_size or (None, None)
            make_sample_bag(bags[name], style=style, frames=frames[name], height=bag_height, width=bag_width,
                            seed=scene_seed)
    return bags


def run_route(args: argparse.Namespace, route: str, seed: int, bags: dict[str, Path],
              size: tuple[int | None, int | None]) -> dict:
    """Fine-tune on ``bags["train"]`` with the scale source ``route``, evaluate the start and
    the result on ``bags["eval"]``; the report (also written as ``benchmark.json``)."""
    work = Path(args.work_dir)
    spacing = "" if args.frame_spacing is None else f"_spacing{args.frame_spacing}"
    output = work / f"seed{seed}" / f"finetune_{route}_{args.steps}steps{spacing}"
    camera_height = scene_config(args.style, 480, 640).camera_height if route == "camera_height" else None
    data = BagDataConfig(height=size[0], width=size[1], odom_topic="/odom" if route == "odom" else None,
                         frame_spacing=args.frame_spacing, cache_dir=str(work / "cache"))
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
                     f"data.batch_size={args.batch_size}", "runtime.checkpoint_every_steps=100",
                     f"runtime.seed={seed}", "data.num_workers=0", *args.overrides]
        settings = make_settings([str(bags["train"])], output, data, args.init, overrides,
                                 camera_height=camera_height)
        started = time.process_time()
        result = run_finetune(settings, output)
        minutes = (time.process_time() - started) / 60
        checkpoint, steps = result.checkpoint, result.summary.steps
        photometric = result.before["photometric"], result.after["photometric"]

    # The same frames for every evaluation: the evaluation bag's moving frames, as fine-tuning picks them.
    finetuned = read_metadata(checkpoint)
    eval_data = dataclasses.replace(data, height=finetuned.height, width=finetuned.width, odom_topic=None,
                                    frame_spacing=1)
    dataset, indices = evaluation_frames(bags["eval"], eval_data)
    stamps = np.array([dataset.sequences[0].stamps[dataset.triplets[index, 2]] for index in indices])
    pairs = ground_truth_pairs(bags["eval"], dataset.sequences[0].topics.image, stamps)
    before, after = evaluate(Path(args.init), pairs), evaluate(checkpoint, pairs)
    own = evaluate_as_finetuning(checkpoint, dataset, indices, eval_data)
    parity = abs(after["abs_rel"] - own["abs_rel"]) / own["abs_rel"]
    if parity > PARITY_TOLERANCE:
        print(f"parity OUTSIDE {PARITY_TOLERANCE:.0%}: {route} seed {seed}: AbsRel {after['abs_rel']:.4f} through "
              f"the node's path, {own['abs_rel']:.4f} in the fine-tune's own evaluation", flush=True)
    run_report = json.loads((output / REPORT_FILE).read_text())
    report = {
        "init": args.init, "style": args.style, "route": route, "seed": seed,
        "image_size": list(pairs[0][0].shape[:2]), "network_size": [finetuned.height, finetuned.width],
        "steps": steps, "frame_spacing": run_report["bags"][0].get("frame_spacing", 1),
        "train_frames": args.train_frames, "eval_frames": len(pairs),
        "image_topic": dataset.sequences[0].topics.image,
        "finetune_cpu_minutes": None if minutes is None else round(minutes, 1), "before": before, "after": after,
        "after_finetune_evaluation": own, "abs_rel_relative_difference": parity,
        "photometric_before": photometric[0], "photometric_after": photometric[1],
        "kept_start": run_report["output_model"] == "starting model",
        "scale_source": finetuned.provenance.get("scale_source"), "metric": finetuned.metric,
        "metres_per_unit": finetuned.depth_scale,
        "nearest_possible_m": finetuned.min_depth * finetuned.depth_scale, "camera_height": camera_height,
    }
    (output / "benchmark.json").write_text(json.dumps(report, indent=2))
    return report


def _bin_cells(metrics: dict) -> list[str]:
    by_bin = metrics["unscaled_ratio_by_depth"]
    return [f"{by_bin[name]['unscaled_ratio']:.3f}" if name in by_bin else "-"
            for name in (f"{low:g}-{high:g} m" for low, high in BINS)]


def _bins_within(metrics: dict) -> bool:
    """Every bin up to :data:`GOALS` ``bins_up_to`` that has pixels is within the bin goal."""
    by_bin = metrics["unscaled_ratio_by_depth"]
    return all(abs(by_bin[name]["unscaled_ratio"] - 1) <= GOALS["bin_ratio"]
               for name in (f"{low:g}-{high:g} m" for low, high in BINS if high <= GOALS["bins_up_to"])
               if name in by_bin)


def print_table(reports: list[dict]) -> None:
    """One markdown table (a row per route and seed, the starting model per seed), then a
    summary line per route against :data:`GOALS`."""
    first = reports[0]
    print(f"\n{first['style']} held-out bags ({first['eval_frames']} evaluation frames of {first['image_topic']} "
          f"{first['image_size'][1]}x{first['image_size'][0]}), network {first['network_size'][1]}x"
          f"{first['network_size'][0]}, {first['steps']} steps from {first['init']}; ratio = median predicted / "
          "true depth, unscaled\n")
    bins = " | ".join(f"{low:g}-{high:g} m" for low, high in BINS)
    print(f"| route | seed | source (m per unit) | AbsRel | ratio | {bins} | nearest (m) | kept start | CPU min |")
    print("|---" * (len(BINS) + 8) + "|")
    for seed in sorted({report["seed"] for report in reports}):
        start = next(report["before"] for report in reports if report["seed"] == seed)
        print(f"| starting model | {seed} | | {start['abs_rel']:.3f} | {start['unscaled_depth_ratio']:.3f} | "
              f"{' | '.join(_bin_cells(start))} | {start['nearest_predicted_m']:.2f} | | |")
    for report in reports:
        after = report["after"]
        source = (f"{report['scale_source']} ({report['metres_per_unit']:.3g})" if report["metric"]
                  else f"{report['scale_source']} (relative)")
        minutes = "-" if report["finetune_cpu_minutes"] is None else f"{report['finetune_cpu_minutes']:.1f}"
        print(f"| {ROUTES[report['route']]} | {report['seed']} | {source} | {after['abs_rel']:.3f} | "
              f"{after['unscaled_depth_ratio']:.3f} | {' | '.join(_bin_cells(after))} | "
              f"{after['nearest_predicted_m']:.2f} | {'yes' if report['kept_start'] else 'no'} | {minutes} |")
    print(f"\ngoals: AbsRel <= {GOALS['abs_rel']}, ratio within {GOALS['ratio']:.0%} on every seed, every bin from "
          f"0.5 to {GOALS['bins_up_to']:g} m within {GOALS['bin_ratio']:.0%}")
    for route in ROUTES:
        runs = [report for report in reports if report["route"] == route]
        if not runs:
            continue
        rows = [report["after"] for report in runs]
        metric = [report["metric"] for report in runs]  # a relative result's ratio is not in metres: it fails
        abs_rels = [row["abs_rel"] for row in rows]
        ratios = [row["unscaled_depth_ratio"] for row in rows]
        within = sum(is_metric and abs(ratio - 1) <= GOALS["ratio"] for is_metric, ratio in zip(metric, ratios))
        bins_within = sum(is_metric and _bins_within(row) for is_metric, row in zip(metric, rows))
        relative = f", relative on {len(runs) - sum(metric)}" if not all(metric) else ""
        print(f"{ROUTES[route]:>16s}: AbsRel {np.mean(abs_rels):.3f} mean ({min(abs_rels):.3f}-{max(abs_rels):.3f}; "
              f"<= {GOALS['abs_rel']} on {sum(value <= GOALS['abs_rel'] for value in abs_rels)}/{len(rows)} seeds), "
              f"ratio {min(ratios):.3f}-{max(ratios):.3f} (within {GOALS['ratio']:.0%} on {within}/{len(rows)}"
              f"{relative}), bins with pixels within {GOALS['bin_ratio']:.0%} on {bins_within}/{len(rows)}, "
              f"nearest {min(row['nearest_predicted_m'] for row in rows):.2f}-"
              f"{max(row['nearest_predicted_m'] for row in rows):.2f} m, starting model kept on "
              f"{sum(report['kept_start'] for report in runs)}/{len(runs)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="trained checkpoint to start from")
    parser.add_argument("--style", default=WAREHOUSE_STYLE,
                        help=f"scene style of the bags (default {WAREHOUSE_STYLE}, held out of every training recipe)")
    parser.add_argument("--routes", default=",".join(ROUTES),
                        help=f"comma-separated scale sources to fine-tune with (default: {','.join(ROUTES)})")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated scene and training seeds (default 0,1,2)")
    parser.add_argument("--train-frames", type=int, default=300, help="frames in the fine-tuning bag (10 Hz)")
    parser.add_argument("--eval-frames", type=int, default=40, help="frames in the held-out evaluation bag")
    parser.add_argument("--height", type=int,
                        help="training height (default: the checkpoint's; ground-robot styles: picked from the camera)")
    parser.add_argument("--width", type=int,
                        help="training width (default: the checkpoint's; ground-robot styles: picked from the camera)")
    parser.add_argument("--steps", type=int, default=1000, help="fine-tuning optimiser steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frame-spacing", type=int,
                        help="fine-tune on frames t-K, t, t+K (finetune-bag's --frame-spacing; default as there: "
                             "automatic with odometry, 1 without)")
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (default: finetune-bag's, 3e-4)")
    parser.add_argument("--work-dir", default="finetune_benchmark", help="bags, frame cache and fine-tune outputs")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further training overrides")
    args = parser.parse_args(argv)
    routes = [route.strip() for route in args.routes.split(",") if route.strip()]
    unknown = sorted(set(routes) - set(ROUTES))
    if unknown:
        parser.error(f"unknown route(s) {', '.join(unknown)}; choose from {', '.join(ROUTES)}")
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]

    metadata = read_metadata(args.init)
    if args.style in GROUND_ROBOT_STYLES:
        # The robot's own 640x480 camera; the training size follows it unless given.
        bag_size, size = None, (args.height, args.width)
    else:
        size = (args.height or metadata.height, args.width or metadata.width)
        bag_size = size
    frames = {"train": args.train_frames, "eval": args.eval_frames}
    reports = []
    for seed in seeds:
        bags = make_bags(Path(args.work_dir), args.style, frames, bag_size, seed)
        for route in routes:
            reports.append(run_route(args, route, seed, bags, size))
    (Path(args.work_dir) / "benchmark_table.json").write_text(json.dumps(reports, indent=2))
    print_table(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
