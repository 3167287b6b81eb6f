"""What the depth node adds to the forward pass at camera resolution, over real DDS.

For each camera size (``--sizes``), starts ``python -m dna_depth_ros.depth_node`` as its own
process (``output_resolution: input`` unless told otherwise; a DNA-Depth-B0 with random
weights at the network size a fine-tune for that camera picks, ``pick_network_size``:
384x288 for 4:3, 448x256 for 16:9, unless --checkpoint or --network is given) and feeds
it raw rgb8 frames with a distorted plumb_bob camera info (so the node rectifies, as on a
robot), subscribing to all four outputs (depth, camera info, coloured depth, cloud with
rgb), so the node does all its work. Frames are paced: the next is sent once the previous
one's outputs arrived, so nothing queues.

Figures, from the node's diagnostics on the same frames: the forward pass and the node's
own work (everything else: decode, rectify, resize, depth back onto the camera image,
colouring, cloud, message building and publishing) p50/p95 and their ratio, wall clock;
the CPU time of that work in the node's inference thread (what a loaded machine's wall
clock hides; OpenCV's helper threads not counted); the node process's CPU time per frame
(all its threads, the forward's included); receipt
-> last publish and stamp -> depth received p50/p95; output frames per second. With
--rate, a second run per size sends frames at that rate whatever the node does
(latest-frame-only dropping).

    python benchmarks/node_latency.py                          # 640x480 and 1280x720, ~4 min on 2 cores
    python benchmarks/node_latency.py --sizes 1920x1080 --rate 15
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import torch  # noqa: E402
from node_bench import machine_line, print_table, random_checkpoint, running_node  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from dna_depth_core.data.camera.network_size import pick_network_size  # noqa: E402
from dna_depth_ros.probe import DepthNodeProbe  # noqa: E402
from dna_depth_ros.stand_ins import camera_pattern  # noqa: E402

OUTPUTS = ("depth/image", "depth/camera_info", "depth/colored", "points")
DISTORTION = [-0.28, 0.07, 8e-4, -5e-4, 0.0]
"""plumb_bob coefficients of the robot-style synthetic camera (a wide-angle lens)."""
WARM_FRAMES = 3


def camera_frame(height: int, width: int) -> tuple[Image, CameraInfo]:
    """A raw rgb8 frame and its distorted camera info (90 degrees horizontal field of view)."""
    image = Image(
        height=height, width=width, encoding="rgb8", step=width * 3, data=camera_pattern(height, width).tobytes()
    )
    focal = width / 2
    matrix = [focal, 0.0, width / 2 - 0.5, 0.0, focal, height / 2 - 0.5, 0.0, 0.0, 1.0]
    info = CameraInfo(
        height=height, width=width, distortion_model="plumb_bob", d=DISTORTION, k=matrix,
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=matrix[:3] + [0.0] + matrix[3:6] + [0.0] + matrix[6:] + [0.0],
    )  # fmt: skip
    image.header.frame_id = info.header.frame_id = "camera_optical_frame"
    return image, info


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values_ms: list[float]) -> str:
    if not values_ms:
        return "-"
    p50, p95 = np.percentile(values_ms, [50, 95])
    return f"{p50:.1f} / {p95:.1f}"


def ratio(overhead: str, forward: str) -> str:
    return f"{float(overhead) / max(float(forward), 1e-9) * 100:.1f} %"


def measure(probe: DepthNodeProbe, pid: int, size: tuple[int, int], frames: int, rate: float | None) -> dict[str, str]:
    """Send ``frames`` frames (paced, or at ``rate`` Hz) and gather the figures."""
    image, info = camera_frame(*size)

    def send() -> object:
        image.header.stamp = info.header.stamp = probe.get_clock().now().to_msg()
        probe.camera_info_publisher.publish(info)
        probe.image_publisher.publish(image)
        return image.header.stamp

    # Until the node sees our subscriptions it skips frames; then a few warm frames.
    warm = 0
    while warm < WARM_FRAMES:
        warm += probe.wait_for_stamp(OUTPUTS, send(), timeout=30.0) is not None
    probe.clear()
    cpu_before, started = process_cpu_seconds(pid), time.monotonic()
    if rate is None:
        for _ in range(frames):
            if probe.wait_for_stamp(OUTPUTS, send(), timeout=60.0) is None:
                raise RuntimeError("a frame got no output within 60 s")
    else:
        for index in range(frames):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            last = send()
        probe.wait_for_stamp(OUTPUTS, last, timeout=60.0)
    elapsed, cpu = time.monotonic() - started, process_cpu_seconds(pid) - cpu_before
    # Diagnostics published after the last output cover every frame of the run.
    done = probe.get_clock().now().nanoseconds
    probe.wait_until(lambda: any(r.receive_time_ns > done + 0.6e9 for r in probe.received["/diagnostics"]), 10.0)
    values = probe.diagnostics_values()
    outputs = len(probe.received["points"])
    depth_latencies = [
        (r.receive_time_ns - (r.msg.header.stamp.sec * 10**9 + r.msg.header.stamp.nanosec)) / 1e6
        for r in probe.received["depth/image"]
    ]
    return {
        "frames in/out": f"{frames}/{outputs}",
        "fps out": f"{outputs / elapsed:.2f}",
        "forward p50/p95 ms": f"{float(values['forward_ms_p50']):.1f} / {float(values['forward_ms_p95']):.1f}",
        "overhead p50/p95 ms": f"{float(values['overhead_ms_p50']):.1f} / {float(values['overhead_ms_p95']):.1f}",
        "overhead/forward p50 (p95)": f"{ratio(values['overhead_ms_p50'], values['forward_ms_p50'])} "
        f"({ratio(values['overhead_ms_p95'], values['forward_ms_p95'])})",
        # The node before overhead_cpu_ms existed leaves the column empty.
        "overhead CPU p50/p95 ms": f"{values.get('overhead_cpu_ms_p50', '-')} / "
        f"{values.get('overhead_cpu_ms_p95', '-')}",
        "node CPU/frame ms": f"{cpu / max(outputs, 1) * 1000:.0f}",
        "receipt->publish p50/p95 ms": f"{float(values['latency_ms_p50']):.1f} / {float(values['latency_ms_p95']):.1f}",
        "stamp->depth recv p50/p95 ms": percentiles(depth_latencies),
        "dropped": values["frames_dropped"],
    }


def run_size(size: tuple[int, int], args, context, directory: Path) -> list[dict[str, str]]:
    height, width = size
    if args.checkpoint is not None:
        checkpoint, network = args.checkpoint, "checkpoint's"
    else:
        network_size = pick_network_size(size) if args.network == "auto" else tuple(args.network)
        checkpoint, network = random_checkpoint(directory, *network_size), f"{network_size[1]}x{network_size[0]}"
    parameters = {
        "checkpoint": str(checkpoint), "device": args.device, "diagnostics_period": 0.5,
        "output_resolution": args.output_resolution, "backend": args.backend,
    }  # fmt: skip
    namespace = f"/bench_{width}x{height}_{os.getpid()}"
    rows = []
    runs = [None] if args.rate is None else [None, args.rate]
    for rate in runs:  # a fresh node per run, so its diagnostics cover only that run
        with running_node(namespace, parameters, directory, args.threads, context) as (node, probe):
            row = {"camera": f"{width}x{height}", "network": network}
            row["run"] = "paced" if rate is None else f"{rate:g} Hz"
            row.update(measure(probe, node.pid, size, args.frames if rate is None else int(args.frames * 2), rate))
            print(" | ".join(row.values()), flush=True)
            rows.append(row)
    return rows


def network_size(text: str) -> str | list[int]:
    if text == "auto":
        return text
    width, height = (int(value) for value in text.lower().split("x"))
    return [height, width]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="640x480,1280x720", help="camera sizes WIDTHxHEIGHT (default %(default)s)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to run (default: random-weight B0, see --network)")
    parser.add_argument(
        "--network", type=network_size, default="auto",
        help="network input WIDTHxHEIGHT of the random checkpoint, or auto: what a fine-tune picks for the camera",
    )  # fmt: skip
    parser.add_argument("--output-resolution", choices=("input", "network"), default="input")
    parser.add_argument("--frames", type=int, default=40, help="frames per run (default 40)")
    parser.add_argument("--rate", type=float, help="also run a camera at this rate, Hz (default: paced run only)")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads of the node (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    sizes = [tuple(int(value) for value in size.split("x"))[::-1] for size in args.sizes.split(",")]
    print(
        f"{machine_line()}, "
        f"torch {torch.__version__}, node threads {args.threads}, device {args.device}, backend {args.backend}, "
        f"output_resolution {args.output_resolution}, outputs {', '.join(OUTPUTS)}"
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            for size in sizes:
                rows += run_size(size, args, context, Path(directory))
    finally:
        rclpy.shutdown(context=context)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
