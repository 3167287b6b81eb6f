"""The node as a process: --help, one clear error for a bad command line, checkpoint or
parameter; the README's command serves frames and stops cleanly."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
import torch
from rclpy.parameter import Parameter

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.command_line import ros_literal, init_ros
from dna_depth_ros.depth_node import PUBLISHED_TOPICS, SUBSCRIBED_TOPICS
from dna_depth_ros.node import DepthNode
from dna_depth_ros.parameters import PARAMETERS

from node_process import TIMEOUT, serve_one_frame_and_stop

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]


def depth_node_command() -> list[str]:
    """The node's command as a user runs it: ``depth_node`` beside this Python (venv) or on PATH
    (sourced workspace); ``colcon test``, whose environment holds only the dependencies, runs the
    same main() as ``python -m dna_depth_ros.depth_node``."""
    beside = Path(sys.executable).with_name("depth_node")
    if beside.is_file():
        return [str(beside)]
    on_path = shutil.which("depth_node")
    return [on_path] if on_path else [sys.executable, "-m", "dna_depth_ros.depth_node"]


def run_node(*arguments, timeout=TIMEOUT):
    return subprocess.run(
        [*depth_node_command(), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=os.environ.copy(),
    )


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "FATAL" in line or "ERROR" in line or "error:" in line]


def test_missing_checkpoint_gives_one_error_line_and_exit_1(tmp_path):
    result = run_node("--ros-args", "-p", f"checkpoint:={tmp_path / 'model.safetensors'}")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "does not exist" in output and "Traceback" not in output
    assert len(error_lines(output)) == 1


def test_help_loads_no_network_code():
    """--help answers at once: torch and timm (seconds to import on a loaded machine) stay unloaded."""
    code = (
        "import contextlib, io, sys\n"
        "from dna_depth_ros.depth_node import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['depth_node', '--help'])\n"
        "print(sorted(name for name in ('torch', 'timm', 'dna_depth_core.inference') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["depth_node"], [sys.executable, "-m", "dna_depth_ros.depth_node"]])
def test_help_lists_every_parameter_and_topic_without_starting_ros(command):
    if command == ["depth_node"]:
        command = depth_node_command()
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "[INFO]" not in result.stdout  # no node, no ROS logging
    help_text = result.stdout
    assert help_text.startswith("usage: depth_node")
    for spec in PARAMETERS:
        line = next(line for line in help_text.splitlines() if line.startswith(f"  {spec.name} ("))
        assert f"default {ros_literal(spec.default)}" in line
        assert spec.description.split()[0] in help_text
    for topic in (*SUBSCRIBED_TOPICS, *PUBLISHED_TOPICS):
        assert re.search(rf"\s{re.escape(topic.name)}\s+{re.escape(topic.message_type)}\s", help_text), topic


def test_missing_params_file_gives_one_error_line_and_exit_1(tmp_path):
    missing = tmp_path / "dna_depth.yaml"
    result = run_node("--ros-args", "--params-file", str(missing))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert error_lines(output) == [line for line in output.splitlines() if line.strip()]
    assert len(error_lines(output)) == 1 and f"params file {missing} does not exist" in output


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--ros-args", "--params-file"], "--params-file at the end of the line needs a value"),
        (["--ros-args", "--params-file", "CONFIG_FOLDER"], "is a folder"),
        (["--ros-args", "--params-file", "NOT_YAML"], "is not a ROS 2 parameters file"),
        (["--ros-args", "-p", "checkpoint"], "cannot parse '-p checkpoint': write -p NAME:=VALUE"),
        (["--ros-args", "-p", "device:=[cpu"], "cannot parse '-p device:=[cpu': write -p NAME:=VALUE"),
        (["--ros-args", "-p"], "-p at the end of the line needs a value"),
        (["--ros-args", "-r", "image"], "cannot parse '-r image': write -r FROM:=TO"),
        (["--ros-args", "--log-level", "loud"], "--log-level loud"),
        (["--ros-args", "--checkpoint", "x"], "unknown ROS argument(s) --checkpoint x"),
        (["checkpoint:=model.safetensors"], "depth_node --ros-args -p checkpoint:=model.safetensors"),
        (["--device", "cpu"], "depth_node --ros-args -p device:=cpu"),
        (["image:=/camera/image_raw"], "depth_node --ros-args -r image:=/camera/image_raw"),
        (["--ros-args", "-p", "device:=cpu", "--", "extra"], "unexpected argument extra"),
    ],
)
def test_command_line_mistakes_are_one_line_user_errors(tmp_path, arguments, expected):
    not_yaml = tmp_path / "params.yaml"
    not_yaml.write_text("/**:\n  ros__parameters: [unclosed\n")
    replacements = {"CONFIG_FOLDER": str(ROOT / "config"), "NOT_YAML": str(not_yaml)}
    with pytest.raises(UserError) as error:
        init_ros(["depth_node", *(replacements.get(argument, argument) for argument in arguments)])
    message = str(error.value)
    assert expected in message and "\n" not in message and " at /" not in message
    assert not rclpy.ok()  # nothing was initialised


def test_command_line_mistake_in_the_environment_is_one_line(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "robot")
    with pytest.raises(UserError, match="ROS_DOMAIN_ID is not an integral number"):
        init_ros(["depth_node"])


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


def test_help_names_the_topics_the_node_uses(ros_context, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=32, width=32))
    values = {"checkpoint": str(checkpoint), "warmup_iterations": 0, "backend": "eager"}
    node = DepthNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    try:
        ros_infrastructure = {"/rosout", "/parameter_events"}
        published = {publisher.topic_name for publisher in node.publishers} - ros_infrastructure
        subscribed = {subscription.topic_name for subscription in node.subscriptions} - ros_infrastructure
    finally:
        node.destroy_node()
    assert published == {"/" + topic.name.lstrip("/") for topic in PUBLISHED_TOPICS}
    # image_transport: raw (the default); compressed swaps image for image/compressed.
    assert subscribed == {"/" + topic.name for topic in SUBSCRIBED_TOPICS} - {"/image/compressed"}
    compressed = next(spec for spec in PARAMETERS if spec.name == "image_transport")
    assert "'image/compressed'" in compressed.description


def readme_node_command() -> list[str]:
    """The README's venv command line that starts the node (``depth_node --ros-args ...``)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it on a robot") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    command = next(line for line in block.replace("\\\n", " ").splitlines() if line.startswith("depth_node --ros-args"))
    return shlex.split(command.split("#")[0])


def test_readme_command_serves_frames_with_the_params_file_and_stops_on_ctrl_c(tmp_path):
    command = readme_node_command()
    assert command[:4] == ["depth_node", "--ros-args", "--params-file", "config/dna_depth.yaml"], command
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=64, width=96))
    command[:1] = depth_node_command()
    command[command.index("checkpoint:=model.safetensors")] = f"checkpoint:={checkpoint}"
    remaps = [command[index + 1] for index, argument in enumerate(command) if argument == "-r"]
    assert remaps == ["image:=/camera/image_raw", "camera_info:=/camera/camera_info"]
    unconfigured = {name: value for name, value in os.environ.items() if "PROFILES_FILE" not in name}
    output = serve_one_frame_and_stop(
        # eager: an ONNX Runtime or OpenVINO conversion of the random network would only add minutes
        [*command, "-p", "device:=cpu", "-p", "backend:=eager", "-r", "__ns:=/startup"],
        namespace="/startup",
        probe_remaps=remaps,
        env=unconfigured,
        cwd=ROOT,
    )
    assert "ready: /camera/image_raw + /camera/camera_info -> /startup/depth/image" in output
    # The node ran on its large-image Fast DDS profile and served a stock Fast DDS probe.
    assert "Fast DDS: fastdds_large_images.xml" in output
