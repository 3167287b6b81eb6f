"""How many camera frames reach the depth node and come back as depth, per resolution and QoS.

Three processes, as on a robot: the depth node (``python -m dna_depth_ros.depth_node``, a
tiny random-weight network unless --checkpoint is given, so that inference keeps up with
the camera and the figures are about transport), a plain rclpy camera
(``python -m dna_depth_ros.probe camera``: synthetic rgb8 frames at --rate Hz) and this
script subscribing to ``depth/image`` and ``/diagnostics``. Stock Fast DDS on loopback, no
DDS XML. Setups:

- ``old default``: the node's subscription as it was, best effort keep-last 5 (sensor-data
  QoS), against a camera with the ROS default QoS (reliable keep-last 10);
- ``new default``: the node's defaults (reliable keep-last 5), same camera;
- ``best-effort camera + override``: a sensor-data (best effort) camera and the node with
  ``qos_overrides.<image>.subscription.reliability: best_effort``.

Columns: frames published; received by the node's subscription callback; back as depth;
what the node's diagnostics counted as lost (``frames_lost_in_transport``: DDS's
sample-lost count; ``frames_missed``: gaps in the publisher's sequence numbers) and as
dropped (latest-frame-only, while inference was busy).

    python benchmarks/delivery.py                       # ~2 minutes on 2 CPU cores
    python benchmarks/delivery.py --sizes 460x360,500x360 --setups "old default"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy  # noqa: E402
from node_bench import machine_line, print_table, random_checkpoint, running_node  # noqa: E402

from dna_depth_ros.probe import DepthNodeProbe  # noqa: E402
from dna_depth_ros.stand_ins import PublisherProcess  # noqa: E402

SETUPS = {
    # name: (camera QoS preset, node image subscription overrides)
    "old default": ("default", {"reliability": "best_effort", "depth": 5}),
    "new default": ("default", {}),
    "best-effort camera + override": ("sensor_data", {"reliability": "best_effort"}),
}
COUNTERS = ("frames_received", "frames_processed", "frames_lost_in_transport", "frames_missed", "frames_dropped")


def counters(probe: DepthNodeProbe, after_ns: int) -> dict[str, int]:
    """The node's counters from a diagnostics message received after ``after_ns``, once every
    frame it received is processed or dropped."""

    def settled(values: dict[str, str]) -> bool:
        return "frames_received" in values and int(values["frames_received"]) == int(values["frames_processed"]) + int(
            values["frames_dropped"]
        ) + int(values["frames_skipped_no_subscribers"])

    values = probe.wait_for_diagnostics(settled, timeout=15.0, received_after_ns=after_ns)
    return {key: int(values.get(key, 0)) for key in COUNTERS}


def run_setup(name: str, checkpoint: Path, context, sizes, frames: int, rate: float, directory: Path) -> list[dict]:
    camera_qos, overrides = SETUPS[name]
    namespace = f"/delivery_{name.split()[0].replace('-', '_')}_{os.getpid()}"
    parameters = {"checkpoint": str(checkpoint), "device": "cpu", "diagnostics_period": 0.2}
    if overrides:
        parameters["qos_overrides"] = {f"{namespace}/image": {"subscription": overrides}}
    rows = []
    probe_options = {"name": "delivery_probe", "outputs": ("depth/image", "/diagnostics"), "publish_inputs": False}
    with running_node(namespace, parameters, directory, 1, context, **probe_options) as (_, probe):
        for width, height in sizes:
            before = counters(probe, probe.get_clock().now().nanoseconds)
            depth_before = probe.count("depth/image")
            args = ["--namespace", namespace, "--qos", camera_qos, "camera", "--size", f"{width}x{height}"]
            args += ["--rate", str(rate), "--frames", str(frames)]
            with PublisherProcess(args, timeout=120) as camera:
                camera.wait_until_subscribed()
                probe.wait_for_diagnostics(lambda v: int(v.get("image_publishers", 0)) >= 1, timeout=30.0)
                camera.start()
                published = camera.finish()
            time.sleep(1.0)  # the last frames' depth
            after = counters(probe, probe.get_clock().now().nanoseconds)
            delta = {key: after[key] - before[key] for key in COUNTERS}
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "setup": name,
                    "published": str(published),
                    "received": f"{delta['frames_received']} ({delta['frames_received'] / published:.0%})",
                    "back as depth": str(probe.count("depth/image") - depth_before),
                    "lost (DDS)": str(delta["frames_lost_in_transport"]),
                    "missed (seq)": str(delta["frames_missed"]),
                    "dropped": str(delta["frames_dropped"]),
                }
            )
            print(" | ".join(rows[-1].values()), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint the node runs (default: random-weight B0 at 64x96)")
    parser.add_argument(
        "--sizes", default="640x480,1280x720,1920x1080", help="comma-separated WIDTHxHEIGHT (default %(default)s)"
    )
    parser.add_argument(
        "--setups", default=",".join(SETUPS), help=f"comma-separated, of: {', '.join(SETUPS)} (default: all)"
    )
    parser.add_argument("--frames", type=int, default=30, help="frames per run (default 30)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz (default 10)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    setups = [setup.strip() for setup in args.setups.split(",")]
    if unknown := [setup for setup in setups if setup not in SETUPS]:
        parser.error(f"unknown setup(s) {unknown}; choose from {list(SETUPS)}")
    print(
        f"{machine_line()}, "
        f"rmw {os.environ.get('RMW_IMPLEMENTATION', 'default (rmw_fastrtps_cpp)')}, "
        f"{args.frames} rgb8 frames at {args.rate:g} Hz per run"
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            # A B0 at 64x96: inference keeps up with a 10 Hz camera on a busy CPU.
            checkpoint = args.checkpoint or random_checkpoint(Path(directory), 64, 96)
            for setup in setups:
                rows += run_setup(setup, checkpoint, context, sizes, args.frames, args.rate, Path(directory))
    finally:
        rclpy.shutdown(context=context)
    print_table(sorted(rows, key=lambda row: (int(row["size"].split("x")[0]), list(SETUPS).index(row["setup"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
