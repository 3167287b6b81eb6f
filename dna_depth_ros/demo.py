"""Out-of-the-box demo: sample bag -> depth node over DDS -> pictures and figures.

``python -m dna_depth_ros.demo`` (what ``make demo`` runs):

1. renders a synthetic street sequence and records it as a ROS 2 bag
   (:func:`dna_depth_core.data.rosbag.sample_bag.make_sample_bag`);
2. starts the depth node (``depth_node``) as its own process with the checkpoint shipped in
   the package (or ``--checkpoint``), on a private ROS domain, localhost only;
3. replays the bag's images and camera info into the node over DDS at the recorded rate
   (read with :class:`~dna_depth_core.data.rosbag.reader.RecordedBag`, published by a
   :class:`~dna_depth_ros.probe.DepthNodeProbe` paced by
   :class:`~dna_depth_ros.stand_ins.Pacer`), re-stamped with the current time so latency is
   measured end to end;
4. collects ``depth/image``, ``depth/colored`` and ``points`` (the probe records them) and writes
   ``demo_panels.png`` (input, coloured depth, ground truth, error and a top-down view of
   the point cloud for a few frames) and ``demo_summary.json``; prints frames per second,
   latency and the depth error against the bag's ground-truth topic.

The node publishes depth at the network's size and view (``output_resolution: network``);
it is compared with the ground truth as the evaluation does
(:func:`~dna_depth_core.evaluation.estimator_predictor`): put on the camera image by the
checkpoint's preparation contract (:func:`depth_on_camera_image`: its centre crop, NaN
outside it), over the pixels the network saw.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dna_depth_core.errors import UserError

NAMESPACE = "/camera"
OUTPUTS = ("depth/image", "depth/colored", "points")
"""The node's outputs the demo records (relative to :data:`NAMESPACE`)."""
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DEPTH_GT_TOPIC = "/camera/depth_gt"
PANEL_FRAMES = 4
NODE_START_TIMEOUT = 120.0
"""Seconds to wait for the node's subscriptions (model loading and warm-up included)."""


@dataclass
class ReceivedFrame:
    """Outputs of the node for one replayed frame, keyed by the frame's index in the bag."""

    depth: np.ndarray | None = None
    colored_bgr: np.ndarray | None = None
    points_xyz: np.ndarray | None = None
    latency: float | None = None


@dataclass
class BagFrames:
    """The replayable content of the sample bag (raw CDR bytes) and its ground truth."""

    images: list[bytes] = field(default_factory=list)
    camera_infos: list[bytes] = field(default_factory=list)
    depth_gt: list[np.ndarray] = field(default_factory=list)
    stamps_ns: list[int] = field(default_factory=list)
    """Recording time of each image, nanoseconds."""
    period: float = 0.1


def read_bag(path: Path) -> BagFrames:
    """Raw image and camera-info messages, ground-truth depth (metres, NaN unknown), frame period."""
    from dna_depth_core.data.rosbag.ground_truth import decode_depth
    from dna_depth_core.data.rosbag.reader import RecordedBag

    bag = RecordedBag(path)
    frames = BagFrames()
    for message in bag.messages([topic for topic in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, DEPTH_GT_TOPIC)
                                 if topic in bag.topics]):
        if message.topic == IMAGE_TOPIC:
            frames.images.append(bytes(message.data))
            frames.stamps_ns.append(message.log_time)
        elif message.topic == CAMERA_INFO_TOPIC:
            frames.camera_infos.append(bytes(message.data))
        else:
            frames.depth_gt.append(decode_depth(message))
    if len(frames.stamps_ns) > 1:
        frames.period = float(np.median(np.diff(frames.stamps_ns))) * 1e-9
    return frames


def collect_outputs(probe, sent_stamps: dict[int, int]) -> dict[int, ReceivedFrame]:
    """The node's outputs recorded by ``probe``, per replayed frame (header stamp -> index)."""
    from .probe import cloud_xyz

    received: dict[int, ReceivedFrame] = {}
    for topic, records in probe.received.items():
        for record in records:
            msg = record.msg
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            index = sent_stamps.get(stamp)
            if index is None:
                continue
            result = received.setdefault(index, ReceivedFrame())
            if topic == "depth/image":
                result.depth = np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width).copy()
                result.latency = (record.receive_time_ns - stamp) * 1e-9
            elif topic == "depth/colored":
                result.colored_bgr = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
            elif topic == "points":
                result.points_xyz = cloud_xyz(msg)
    return received


def depth_on_camera_image(depth: np.ndarray, image_size: tuple[int, int], preparation) -> np.ndarray:
    """The node's depth on the camera image, as the evaluation and the node at
    ``output_resolution: input`` put it.

    Args:
        depth: float32 metres, NaN unknown: ``(H, W)`` at the network's size and view, or
            already ``(h, w)`` on the camera image (returned as it is).
        image_size: ``(h, w)`` of the camera image.
        preparation: the checkpoint's
            :class:`~dna_depth_core.data.camera.preparation.FramePreparation`.

    Returns:
        float32 ``(h, w)`` metres: the network's view (the contract's crop to the network's
        aspect ratio) filled by nearest neighbour, NaN outside it. The sample bag's camera
        has no distortion, so its image is the pinhole image the view is cut from.
    """
    from dna_depth_core.data.camera.preparation import plan_for_checkpoint

    if depth.shape == tuple(image_size):
        return depth
    return plan_for_checkpoint(preparation, depth.shape, tuple(image_size)).to_image(depth)


def depth_errors(pairs: list[tuple[np.ndarray, np.ndarray]], median_scaling: bool) -> dict[str, float]:
    """Mean metrics over ``(gt, pred)`` pairs on the camera image with the evaluation protocol
    (no Garg crop, 1e-3..80 m), over the pixels with ground truth and a prediction (NaN in
    ``gt``: unknown; NaN in ``pred``: outside the network's view)."""
    from dna_depth_core.metrics import evaluate_depth_map

    per_frame = []
    for gt, pred in pairs:
        metrics, _ = evaluate_depth_map(np.nan_to_num(gt, nan=0.0), pred, garg_crop=False,
                                        median_scaling=median_scaling)
        per_frame.append(metrics)
    return {name: float(np.mean([m[name] for m in per_frame])) for name in per_frame[0]}


def write_panels(path: Path, frames: BagFrames, received: dict[int, ReceivedFrame], decode_rgb,
                 preparation) -> None:
    """One row per shown frame: input, node's coloured depth, ground truth, error on the camera
    image (:func:`depth_on_camera_image`; blank outside the network's view), top-down cloud."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [i for i, r in sorted(received.items()) if r.depth is not None and r.colored_bgr is not None
                and r.points_xyz is not None]
    shown = [complete[int(k)] for k in np.linspace(0, len(complete) - 1, min(PANEL_FRAMES, len(complete)))]
    figure, axes = plt.subplots(len(shown), 5, figsize=(25, 2.6 * len(shown) + 0.6), squeeze=False,
                                gridspec_kw={"width_ratios": [3, 3, 3, 3, 1.6]})
    for row, index in enumerate(shown):
        result, gt = received[index], frames.depth_gt[index]
        pred = depth_on_camera_image(result.depth, gt.shape, preparation)
        far = float(np.nanpercentile(gt, 95))
        relative_error = np.abs(pred - gt) / gt
        panels = [
            (decode_rgb(frames.images[index]), None, f"input frame {index}"),
            (result.colored_bgr[..., ::-1], None, "depth/colored (node)"),
            (gt, "turbo_r", "ground truth depth (m)"),
            (relative_error, "magma", "|pred - gt| / gt"),
        ]
        for column, (picture, cmap, title) in enumerate(panels):
            axis = axes[row, column]
            kwargs = {"vmin": 0, "vmax": far} if column == 2 else {"vmin": 0, "vmax": 0.5} if column == 3 else {}
            shown_image = axis.imshow(picture, cmap=cmap, **kwargs)
            if cmap:
                figure.colorbar(shown_image, ax=axis, fraction=0.025)
            axis.set_title(title, fontsize=9)
            axis.axis("off")
        xyz = result.points_xyz.reshape(-1, 3)
        xyz = xyz[np.isfinite(xyz).all(axis=1)][::7]
        axis = axes[row, 4]
        axis.scatter(xyz[:, 0], xyz[:, 2], s=0.3, c=-xyz[:, 1], cmap="viridis")
        axis.set_xlim(-20, 20)
        axis.set_ylim(0, max(far, 10))
        axis.set_aspect("equal")
        axis.set_xlabel("x (m)", fontsize=8)
        axis.set_ylabel("z, forward (m)", fontsize=8)
        axis.set_title("points, top-down", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def run_demo(output_dir: Path, checkpoint: str, frames: int, device: str) -> dict:
    """Run the whole demo; returns the summary that is also written as JSON."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    from dna_depth_core.checkpoint import read_metadata, shipped_checkpoint_path
    from dna_depth_core.data.camera.encodings import decode_image_message
    from dna_depth_core.data.rosbag.sample_bag import make_sample_bag

    from .probe import DepthNodeProbe
    from .stand_ins import Pacer

    output_dir.mkdir(parents=True, exist_ok=True)
    bag_path = output_dir / "sample_bag"
    if not bag_path.exists():
        make_sample_bag(bag_path, frames=frames)
    bag = read_bag(bag_path)
    if not bag.images:
        raise UserError(f"the sample bag {bag_path} holds no images; delete it and run the demo again")

    environment = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(102, 200)),
                       ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.update({k: environment[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    # The node and the probe share the /camera namespace and its relative topic names.
    node_command = [
        sys.executable, "-m", "dna_depth_ros.depth_node", "--ros-args", "-p", f"device:={device}",
        "-r", f"__ns:={NAMESPACE}",
    ]
    if checkpoint:  # rcl cannot parse an empty override; the node's default is the shipped checkpoint
        node_command += ["-p", f"checkpoint:={checkpoint}"]
    node_log = open(output_dir / "depth_node.log", "w")
    node_process = subprocess.Popen(node_command, env=environment, stdout=node_log, stderr=subprocess.STDOUT)

    context = rclpy.Context()
    rclpy.init(context=context)
    sent_stamps: dict[int, int] = {}
    try:
        probe = DepthNodeProbe("dna_depth_demo_player", outputs=OUTPUTS, namespace=NAMESPACE, context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()

        print("waiting for the depth node (model loading and warm-up) ...", flush=True)
        deadline = time.monotonic() + NODE_START_TIMEOUT
        while not probe.wait_for_node(timeout=0.5):
            if node_process.poll() is not None:
                node_log.flush()
                raise UserError(
                    f"the depth node exited with code {node_process.returncode}; its log: "
                    f"{(output_dir / 'depth_node.log').read_text().strip()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise UserError(f"the depth node did not subscribe within {NODE_START_TIMEOUT:.0f} s; see "
                                f"{output_dir / 'depth_node.log'}")

        print(f"replaying {len(bag.images)} frames at {1 / bag.period:.1f} Hz ...", flush=True)
        pacer = Pacer(None)
        start = time.monotonic()
        for index, (raw_image, raw_info) in enumerate(zip(bag.images, bag.camera_infos)):
            pacer.wait_until(bag.stamps_ns[index])
            image = deserialize_message(raw_image, Image)
            info = deserialize_message(raw_info, CameraInfo)
            now = probe.get_clock().now().to_msg()
            image.header.stamp = info.header.stamp = now
            sent_stamps[now.sec * 1_000_000_000 + now.nanosec] = index
            probe.camera_info_publisher.publish(info)
            probe.image_publisher.publish(image)
        pacer.wait_until(bag.stamps_ns[index] + round(bag.period * 1e9))  # the last frame's period too
        replay_seconds = time.monotonic() - start
        time.sleep(3.0)  # outputs of the last frames still on their way
        executor.shutdown()
        spinner.join()
        received = collect_outputs(probe, sent_stamps)
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        node_process.terminate()
        try:
            node_process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node_process.kill()
        node_log.close()

    with_depth = {i: r for i, r in received.items() if r.depth is not None}
    if not with_depth:
        raise UserError(f"no depth came back from the node; see {output_dir / 'depth_node.log'}")
    latencies = np.array([r.latency for r in with_depth.values()]) * 1000.0
    preparation = read_metadata(checkpoint or shipped_checkpoint_path()).preparation
    pairs = [(bag.depth_gt[i], depth_on_camera_image(r.depth, bag.depth_gt[i].shape, preparation))
             for i, r in with_depth.items() if i < len(bag.depth_gt)]

    def decode_rgb(raw: bytes) -> np.ndarray:
        message = deserialize_message(raw, Image)
        return decode_image_message(message)

    write_panels(output_dir / "demo_panels.png", bag, received, decode_rgb, preparation)
    summary = {
        "frames_replayed": len(bag.images),
        "frames_with_depth": len(with_depth),
        "output_fps": len(with_depth) / replay_seconds,
        "replay_fps": len(bag.images) / replay_seconds,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "depth_error_metric": depth_errors(pairs, median_scaling=False),
        "depth_error_median_scaled": depth_errors(pairs, median_scaling=True),
        "checkpoint": checkpoint or "shipped",
    }
    (output_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dna_depth_ros.demo",
        description="Record a synthetic sample bag, run the DNA-Depth node on it over DDS and write "
                    "pictures (demo_panels.png) and figures (demo_summary.json).",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("demo_output"),
                        help="where the bag, the pictures and the node's log go (default: demo_output)")
    parser.add_argument("--checkpoint", default="",
                        help="checkpoint for the node; default: the one shipped with the package")
    parser.add_argument("--frames", type=int, default=60, help="frames in the sample bag (10 per second)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    args = parser.parse_args(argv)
    try:
        summary = run_demo(args.output_dir, args.checkpoint, args.frames, args.device)
    except UserError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    metric, scaled = summary["depth_error_metric"], summary["depth_error_median_scaled"]
    print(f"\nnode output: {summary['output_fps']:.1f} frames/s of {summary['replay_fps']:.1f} replayed "
          f"({summary['frames_with_depth']}/{summary['frames_replayed']} frames got depth; the node drops "
          "frames it cannot keep up with)")
    print(f"latency (input stamp -> depth received): p50 {summary['latency_ms_p50']:.0f} ms, "
          f"p95 {summary['latency_ms_p95']:.0f} ms")
    print(f"depth error vs ground truth: AbsRel {metric['abs_rel']:.3f}, d<1.25 {metric['d1']:.3f} (metres as "
          f"predicted); median-scaled AbsRel {scaled['abs_rel']:.3f}, d<1.25 {scaled['d1']:.3f}")
    print(f"pictures: {args.output_dir / 'demo_panels.png'}   figures: {args.output_dir / 'demo_summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
