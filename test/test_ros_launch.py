"""launch/dna_depth.launch.py and config/dna_depth.rviz: the launch file run against stand-ins
of the launch API always, the rviz2 check directly, and the description through the real
launch_ros when a ROS 2 install provides it (see docs/ros_node.md for the manual check)."""

import importlib
import importlib.metadata
import importlib.util
import os
import stat
import sys
import types
from pathlib import Path

import pytest
import yaml

from dna_depth_ros.launch_checks import RVIZ_EXECUTABLE, RVIZ_PACKAGE, executable_in_package, rviz_problem

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "dna_depth.launch.py"
RVIZ_FILE = ROOT / "config" / "dna_depth.rviz"
DOCUMENTED_ARGUMENTS = {
    "checkpoint",
    "image",
    "camera_info",
    "namespace",
    "params_file",
    "device",
    "rviz",
    "fixed_frame",
}


class Recorded:
    """What a stand-in launch class was built with: its name, arguments and keywords."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args}{self.kwargs}"


class StandInLaunchConfiguration(Recorded):
    def perform(self, context) -> str:
        return context[self.args[0]]


class StandInIfCondition(Recorded):
    def evaluate(self, context) -> bool:
        return self.args[0].perform(context).lower() in ("true", "1")


def load_launch_file_with_stand_ins(monkeypatch):
    """The launch file executed against stand-ins of the launch and launch_ros modules it
    imports (a ROS 2 install provides the real ones; the pip wheels do not): every class
    records its arguments, conditions and configurations evaluate on a plain dict."""
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "RegisterEventHandler", "Shutdown"],
        "launch.conditions": [],
        "launch.event_handlers": ["OnProcessExit"],
        "launch.substitutions": ["PathJoinSubstitution"],
        "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for name in classes:
            setattr(module, name, type(name, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    sys.modules["launch.conditions"].IfCondition = StandInIfCondition
    sys.modules["launch.substitutions"].LaunchConfiguration = StandInLaunchConfiguration
    monkeypatch.setitem(sys.modules, "launch_ros", types.ModuleType("launch_ros"))
    spec = importlib.util.spec_from_file_location("dna_depth_launch_stand_ins", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def launch_parts(description):
    """``{argument name: DeclareLaunchArgument}``, the exit handler and the node-starting function."""
    (entities,) = description.args
    arguments = {entity.args[0]: entity for entity in entities if type(entity).__name__ == "DeclareLaunchArgument"}
    (handler,) = [entity for entity in entities if type(entity).__name__ == "RegisterEventHandler"]
    (start_nodes,) = [entity for entity in entities if type(entity).__name__ == "OpaqueFunction"]
    return arguments, handler, start_nodes.kwargs["function"]


def test_launch_file_declares_the_documented_arguments_and_runs_the_node(tmp_path, monkeypatch):
    arguments, handler, start_nodes = launch_parts(load_launch_file_with_stand_ins(monkeypatch))
    assert set(arguments) == DOCUMENTED_ARGUMENTS
    assert all(argument.kwargs.get("description") for argument in arguments.values())
    assert arguments["rviz"].kwargs["default_value"] == "false"

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))  # no rviz2 there
    depth_node, rviz = start_nodes({"rviz": "false"})
    assert (depth_node.kwargs["package"], depth_node.kwargs["executable"]) == ("dna_depth_ros", "depth_node")
    # The executable the launch runs is the installed console script of the package.
    (script,) = [entry for entry in importlib.metadata.distribution("dna_depth_ros").entry_points
                 if entry.group == "console_scripts" and entry.name == "depth_node"]
    assert script.load() is importlib.import_module("dna_depth_ros.depth_node").main
    assert {source for source, _ in depth_node.kwargs["remappings"]} == {"image", "image/compressed", "camera_info"}
    overrides = depth_node.kwargs["parameters"][1]
    assert {"checkpoint", "device"} <= set(overrides)
    assert (rviz.kwargs["package"], rviz.kwargs["executable"]) == (RVIZ_PACKAGE, RVIZ_EXECUTABLE) == ("rviz2", "rviz2")
    assert not rviz.kwargs["condition"].evaluate({"rviz": "false"})
    assert rviz.kwargs["condition"].evaluate({"rviz": "true"})
    # The package-share files it points at exist (test_colcon checks that colcon installs them).
    share_files = {tuple(part for part in join.args[0][1:]) for join in
                   (arguments["params_file"].kwargs["default_value"], rviz.kwargs["arguments"][1])}
    assert share_files == {("config", "dna_depth.yaml"), ("config", "dna_depth.rviz")}
    assert all((ROOT.joinpath(*path)).is_file() for path in share_files)
    # The whole launch stops when the depth node exits.
    (exit_handler,) = handler.args
    assert exit_handler.kwargs["target_action"] is depth_node
    assert [type(action).__name__ for action in exit_handler.kwargs["on_exit"]] == ["Shutdown"]
    # rviz:=true without rviz2 stops before any node starts, with the one-line message.
    with pytest.raises(RuntimeError, match="rviz:=true but RViz 2 is not installed"):
        start_nodes({"rviz": "true"})


def rviz_displays():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    return (
        manager,
        {
            display["Class"]: display
            for display in manager["Displays"]
            if display["Class"] != "rviz_default_plugins/Image"
        },
        [display for display in manager["Displays"] if display["Class"] == "rviz_default_plugins/Image"],
    )


def test_rviz_config_shows_the_node_outputs_with_matching_qos(monkeypatch):
    manager, others, images = rviz_displays()
    node_defaults = yaml.safe_load((ROOT / "config" / "dna_depth.yaml").read_text())["/**"]["ros__parameters"]
    from rclpy.qos import ReliabilityPolicy

    from dna_depth_ros.transport import OUTPUT_QOS

    reliability = {ReliabilityPolicy.RELIABLE: "Reliable", ReliabilityPolicy.BEST_EFFORT: "Best Effort"}[
        OUTPUT_QOS.reliability
    ]
    cloud = others["rviz_default_plugins/PointCloud2"]
    topics = [display["Topic"] for display in images] + [cloud["Topic"]]
    assert [topic["Value"] for topic in topics] == ["depth/image", "depth/colored", "points"]
    for topic in topics:
        assert topic["Reliability Policy"] == reliability and topic["Durability Policy"] == "Volatile"
    assert all(display["Enabled"] for display in images + [cloud])
    assert cloud["Color Transformer"] == "RGB8" and node_defaults["points"]["rgb"]
    arguments, _, _ = launch_parts(load_launch_file_with_stand_ins(monkeypatch))
    assert manager["Global Options"]["Fixed Frame"] == arguments["fixed_frame"].kwargs["default_value"]


def install_package(prefix: Path, package: str, executables: tuple[str, ...]) -> None:
    """A package in an ament prefix as colcon installs it: index marker and lib/PACKAGE/ executables."""
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / package
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    (prefix / "lib" / package).mkdir(parents=True, exist_ok=True)
    for name in executables:
        executable = prefix / "lib" / package / name
        executable.write_text("#!/bin/sh\n")
        executable.chmod(executable.stat().st_mode | stat.S_IXUSR)


def test_rviz_check_finds_rviz2_where_ros2_run_looks(tmp_path, monkeypatch):
    with_rviz, without_rviz, without_executable = tmp_path / "with", tmp_path / "without", tmp_path / "broken"
    install_package(with_rviz, RVIZ_PACKAGE, (RVIZ_EXECUTABLE,))
    install_package(without_rviz, "dna_depth_ros", ("depth_node",))
    install_package(without_executable, RVIZ_PACKAGE, ())
    monkeypatch.setenv("ROS_DISTRO", "kilted")

    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join([str(without_rviz), str(with_rviz)]))
    assert executable_in_package(RVIZ_PACKAGE, RVIZ_EXECUTABLE) == with_rviz / "lib" / "rviz2" / "rviz2"
    assert rviz_problem(True) is None and rviz_problem(False) is None

    for prefixes in ([without_rviz], [without_executable]):
        monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(map(str, prefixes)))
        problem = rviz_problem(True)
        assert problem.startswith("rviz:=true but RViz 2 is not installed") and "\n" not in problem
        assert "install ros-kilted-rviz2" in problem and "rviz:=false" in problem
        assert rviz_problem(False) is None
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert rviz_problem(True) is not None


def load_launch_ros():
    """Skip (with the reason) unless launch and launch_ros, and the message packages they
    import, are installed."""
    reason = "launch_ros and its message packages need a ROS 2 install (see docs/ros_node.md)"
    for module in ("launch", "launch.actions", "launch_ros", "launch_ros.actions"):
        pytest.importorskip(module, reason=reason)


def test_launch_description_builds_with_launch_ros(tmp_path, monkeypatch):
    load_launch_ros()
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    from launch import LaunchContext, LaunchDescription

    spec = importlib.util.spec_from_file_location("dna_depth_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    arguments = {entity.name: entity for entity in description.entities if isinstance(entity, DeclareLaunchArgument)}
    assert set(arguments) == DOCUMENTED_ARGUMENTS
    assert arguments["rviz"].default_value[0].text == "false"
    (start_nodes,) = [entity for entity in description.entities if isinstance(entity, OpaqueFunction)]

    context = LaunchContext()
    context.launch_configurations["rviz"] = "false"
    nodes = start_nodes.execute(context)
    assert [type(node) for node in nodes] == [Node, Node] and nodes[1].condition is not None
    install_package(tmp_path, "dna_depth_ros", ("depth_node",))
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))  # no rviz2 there
    context.launch_configurations["rviz"] = "true"
    with pytest.raises(RuntimeError, match="rviz:=true but RViz 2 is not installed"):
        start_nodes.execute(context)
