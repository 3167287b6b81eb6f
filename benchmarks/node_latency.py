"""End-to-end latency of the depth node over real DDS, and what the node adds to the forward pass.

Starts ``python -m dna_depth_ros.depth_node`` as its own process (a B0 network with random
weights at 192x640 unless --checkpoint is given), feeds it 640x192 rgb8 images with camera
info and subscribes to all four outputs (depth, camera info, coloured depth, cloud with
rgb), so the node does all its work. Two runs, each with a fresh node:

- paced: the next frame is sent once the previous one's cloud arrived; latency without
  queueing;
- camera: frames at --rate Hz whatever the node does; shows the output rate and the
  latest-frame-only dropping.

Figures: input receipt -> output publish (node side) and input stamp -> receipt (subscriber side) p50/p95,
output frames per second, and from the node's diagnostics the forward pass and the node
overhead (everything else: decode, resize, depth conversion, colouring, cloud, message
building and publishing) per frame, measured on the same frames.

    python benchmarks/node_latency.py            # ~2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import torch  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint  # noqa: E402
from dna_depth_core.networks import create_depth_net  # noqa: E402
from dna_depth_ros.probe import DepthNodeProbe  # noqa: E402

WIDTH, HEIGHT = 640, 192
OUTPUTS = ("depth/image", "depth/camera_info", "depth/colored", "points")


def make_checkpoint(directory: Path) -> Path:
    """A DNA-Depth-B0 with random weights at the paper's 192x640 (speed does not depend on weights)."""
    path = directory / "b0_random_192x640.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=HEIGHT, width=WIDTH))
    return path


def test_frame(probe: DepthNodeProbe) -> tuple[Image, CameraInfo]:
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([columns * 255 // WIDTH, rows * 255 // HEIGHT, (columns + rows) % 256], axis=2).astype(np.uint8)
    image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=rgb.tobytes())
    image.header.frame_id = "camera_optical"
    info = CameraInfo(height=HEIGHT, width=WIDTH, k=[371.0, 0, 320, 0, 369.0, 96, 0, 0, 1])
    info.header.frame_id = "camera_optical"
    return image, info


def percentiles(values_ms: list[float]) -> str:
    if not values_ms:
        return "-"
    p50, p95 = np.percentile(values_ms, [50, 95])
    return f"{p50:.1f} / {p95:.1f}"


def run_phase(
    name: str, checkpoint: Path, context, frames: int, rate: float | None, torch_threads: int
) -> dict[str, str]:
    namespace = f"/bench_{name}_{os.getpid()}"
    environment = dict(os.environ, OMP_NUM_THREADS=str(torch_threads))
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dna_depth_ros.depth_node",
            "--ros-args",
            "-r",
            f"__ns:={namespace}",
            "-p",
            f"checkpoint:={checkpoint}",
            "-p",
            "device:=cpu",
            "-p",
            "diagnostics_period:=0.5",
            "--log-level",
            "warn",
        ],
        env=environment,
    )
    executor = SingleThreadedExecutor(context=context)
    probe = DepthNodeProbe(name=f"bench_probe_{name}", namespace=namespace, context=context)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        if not probe.wait_for_node(timeout=120):
            raise RuntimeError("the depth node did not come up within 120 s")
        image, info = test_frame(probe)

        def send() -> object:
            image.header.stamp = info.header.stamp = probe.get_clock().now().to_msg()
            probe.camera_info_publisher.publish(info)
            probe.image_publisher.publish(image)
            return image.header.stamp

        # Until the node sees our subscriptions it skips frames; then a few warm frames.
        warm = 0
        while warm < 3:
            warm += probe.wait_for_stamp(OUTPUTS, send(), timeout=5.0) is not None
        probe.clear()
        sent = 0
        started = time.monotonic()
        if rate is None:
            for _ in range(frames):
                stamp = send()
                sent += 1
                if probe.wait_for_stamp(OUTPUTS, stamp, timeout=30.0) is None:
                    raise RuntimeError("a frame got no output within 30 s")
        else:
            for index in range(frames):
                time.sleep(max(0.0, started + index / rate - time.monotonic()))
                last = send()
                sent += 1
            probe.wait_for_stamp(OUTPUTS, last, timeout=30.0)
        elapsed = time.monotonic() - started
        # Diagnostics published after the last output cover every frame of the run.
        done = probe.get_clock().now().nanoseconds
        probe.wait_until(lambda: any(r.receive_time_ns > done + 0.6e9 for r in probe.received["/diagnostics"]), 10.0)
        diagnostics = probe.diagnostics_values()

        def receive_latencies(topic: str) -> list[float]:
            return [
                (r.receive_time_ns - (r.msg.header.stamp.sec * 10**9 + r.msg.header.stamp.nanosec)) / 1e6
                for r in probe.received[topic]
            ]

        outputs = len(probe.received["points"])
        return {
            "run": name if rate is None else f"{name} {rate:g} Hz",
            "frames in/out": f"{sent}/{outputs}",
            "fps out": f"{outputs / elapsed:.2f}",
            "receipt->publish p50/p95 ms": f"{diagnostics['latency_ms_p50']} / {diagnostics['latency_ms_p95']}",
            "stamp->depth recv p50/p95 ms": percentiles(receive_latencies("depth/image")),
            "stamp->cloud recv p50/p95 ms": percentiles(receive_latencies("points")),
            "forward p50 ms": diagnostics["forward_ms_p50"],
            "overhead p50/p95 ms": f"{diagnostics['overhead_ms_p50']} / {diagnostics['overhead_ms_p95']}",
            "overhead/forward": f"{float(diagnostics['overhead_ratio']) * 100:.1f} %",
            "dropped": diagnostics["frames_dropped"],
        }
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
        executor.shutdown()
        probe.destroy_node()


def print_table(rows: list[dict[str, str]]) -> None:
    columns = list(rows[0])
    widths = [max(len(column), *(len(row[column]) for row in rows)) for column in columns]
    print("| " + " | ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        print("| " + " | ".join(row[column].ljust(width) for column, width in zip(columns, widths, strict=True)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to run (default: random-weight B0 at 192x640)")
    parser.add_argument("--frames", type=int, default=40, help="frames per run (default 40)")
    parser.add_argument("--rate", type=float, default=15.0, help="camera rate of the second run, Hz (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the node process (default 2)")
    args = parser.parse_args()
    print(
        f"cpus {os.cpu_count()}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, "
        f"torch {torch.__version__}, node torch threads {args.threads}, input {WIDTH}x{HEIGHT} rgb8, outputs {OUTPUTS}"
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = args.checkpoint or make_checkpoint(Path(directory))
            rows = [
                run_phase("paced", checkpoint, context, args.frames, None, args.threads),
                run_phase("camera", checkpoint, context, int(args.frames * args.rate / 4), args.rate, args.threads),
            ]
    finally:
        rclpy.shutdown(context=context)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
