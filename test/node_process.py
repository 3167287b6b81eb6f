"""Test helper: run the depth node as a process, as a user starts it, and check it serves a frame."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_ros.probe import DepthNodeProbe

TIMEOUT = 180
"""Seconds the node may take to come up, serve and stop: a guard against hangs, generous
because start-up imports torch and loads a network on a shared 2-core machine."""


def serve_one_frame_and_stop(
    command: Sequence[str],
    *,
    namespace: str,
    probe_remaps: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    size: tuple[int, int] = (64, 96),
) -> str:
    """Start the node ``command``, offer ``(height, width)`` rgb8 frames with camera info until
    ``depth/image`` and ``points`` come back for one, stop it with SIGINT (Ctrl-C) and return
    its output; fails unless it exits 0 without a traceback.

    The probe lives in ``namespace`` (the node's, given with ``-r __ns:=`` in ``command``);
    ``probe_remaps`` (``FROM:=TO``) move its ``image``/``camera_info`` publishers where the
    command's remappings point the node.
    """
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=os.environ.copy() if env is None else env,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    cli_args = ["--ros-args", *(item for remap in probe_remaps for item in ("-r", remap))] if probe_remaps else None
    probe = DepthNodeProbe(namespace=namespace, context=context, cli_args=cli_args)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        if not probe.wait_for_node(TIMEOUT):
            raise AssertionError(f"the node process did not come up:\n{_stop(process)}")
        height, width = size
        info = CameraInfo(height=height, width=width, k=[50.0, 0, width / 2, 0, 50.0, height / 2, 0, 0, 1])
        image = Image(
            height=height,
            width=width,
            encoding="rgb8",
            step=width * 3,
            data=np.full(height * width * 3, 90, np.uint8).tobytes(),
        )

        def served() -> bool:
            # The node's view of our subscriptions may lag ours: offer frames until one is served.
            image.header.stamp = probe.get_clock().now().to_msg()
            probe.camera_info_publisher.publish(info)
            probe.image_publisher.publish(image)
            return probe.wait_for_stamp(("depth/image", "points"), image.header.stamp, timeout=1.0) is not None

        if not any(served() for _ in range(60)):
            raise AssertionError(f"no output from the node process:\n{_stop(process)}")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, output
        assert "Traceback" not in output, output
        return output
    finally:
        if process.poll() is None:
            _stop(process)
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)


def _stop(process: subprocess.Popen) -> str:
    """Kill ``process`` and return what it printed."""
    process.kill()
    output, _ = process.communicate()
    return output
