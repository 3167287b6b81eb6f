"""The node as a process: one clear error for a bad checkpoint or parameter; clean serve and stop."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.depth_node import DepthNode
from dna_depth_ros.probe import DepthNodeProbe

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def run_node(*ros_args, timeout=TIMEOUT):
    return subprocess.run(
        [sys.executable, "-m", "dna_depth_ros.depth_node", "--ros-args", *ros_args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=os.environ.copy(),
    )


def test_missing_checkpoint_gives_one_error_line_and_exit_1(tmp_path):
    result = run_node("-p", f"checkpoint:={tmp_path / 'model.safetensors'}")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "does not exist" in output and "Traceback" not in output
    assert len([line for line in output.splitlines() if "FATAL" in line or "ERROR" in line]) == 1


@pytest.fixture(scope="module")
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.mark.parametrize(
    "parameters, expected",
    [
        ({"checkpoint": "INVALID_FILE"}, "is not a DNA-Depth checkpoint"),
        ({"points.stride": 0}, "invalid value for parameter points.stride"),
        ({"depth_scale": 1}, "write floats with a decimal point"),
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"device": "cuda:7"}, "CUDA is not available" if not torch.cuda.is_available() else "cuda"),
        ({"min_depth": 500.0}, "must be smaller than max_depth"),
    ],
)
def test_start_up_problems_are_user_errors(ros_context, tmp_path, parameters, expected):
    invalid = tmp_path / "invalid.safetensors"
    invalid.write_bytes(b"this is not a safetensors file")
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=32, width=32))
    values = {"checkpoint": str(checkpoint), "warmup_iterations": 0, **parameters}
    if values["checkpoint"] == "INVALID_FILE":
        values["checkpoint"] = str(invalid)
    with pytest.raises(UserError) as error:
        DepthNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    assert expected in str(error.value)


def test_entry_point_serves_frames_with_the_params_file_and_stops_on_ctrl_c(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=64, width=96))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dna_depth_ros.depth_node",
            "--ros-args",
            "--params-file",
            str(ROOT / "config" / "dna_depth.yaml"),
            "-p",
            f"checkpoint:={checkpoint}",
            "-p",
            "device:=cpu",
            "-r",
            "__ns:=/startup",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    probe = DepthNodeProbe(namespace="/startup", context=context)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert probe.wait_for_node(TIMEOUT), "the node process did not come up"
        info = CameraInfo(height=64, width=96, k=[50.0, 0, 48, 0, 50.0, 32, 0, 0, 1])
        image = Image(
            height=64, width=96, encoding="rgb8", step=96 * 3, data=np.full(64 * 96 * 3, 90, np.uint8).tobytes()
        )

        def served() -> bool:
            # The node's view of our subscriptions may lag ours: offer frames until one is served.
            image.header.stamp = probe.get_clock().now().to_msg()
            probe.camera_info_publisher.publish(info)
            probe.image_publisher.publish(image)
            return probe.wait_for_stamp(("depth/image", "points"), image.header.stamp, timeout=1.0) is not None

        assert any(served() for _ in range(TIMEOUT)), "no output from the node process"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)
