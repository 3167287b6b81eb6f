"""launch/dna_depth.launch.py and config/dna_depth.rviz: checked statically always, the rviz2
check directly, and the description through launch_ros when a ROS 2 install provides it (see
docs/ros_node.md for the manual check)."""

import ast
import importlib.util
import os
import stat
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


def calls(tree, name):
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def keyword(call, name):
    return next(item.value for item in call.keywords if item.arg == name)


def literal(value, tree):
    """A constant, or the module-level constant a name refers to."""
    if isinstance(value, ast.Name):
        assignment = next(
            node
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == value.id for target in node.targets)
        )
        value = assignment.value
    return ast.literal_eval(value)


def string_constants(node):
    return {item.value for item in ast.walk(node) if isinstance(item, ast.Constant) and isinstance(item.value, str)}


def test_launch_file_declares_the_documented_arguments_and_runs_the_node():
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    compile(source, str(LAUNCH_FILE), "exec")
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    declared = {call.args[0].value for call in calls(tree, "DeclareLaunchArgument")}
    assert declared == DOCUMENTED_ARGUMENTS
    for call in calls(tree, "DeclareLaunchArgument"):
        assert any(item.arg == "description" for item in call.keywords), call.args[0].value

    depth_node, rviz = calls(tree, "Node")
    assert literal(keyword(depth_node, "package"), tree) == "dna_depth_ros"
    assert literal(keyword(depth_node, "executable"), tree) == "depth_node"
    assert "depth_node = dna_depth_ros.depth_node:main" in (ROOT / "setup.py").read_text()
    remapped = {pair.elts[0].value for pair in keyword(depth_node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}
    assert {"checkpoint", "device"} <= string_constants(keyword(depth_node, "parameters"))
    assert (ast.unparse(keyword(rviz, "package")), ast.unparse(keyword(rviz, "executable"))) == (
        "RVIZ_PACKAGE",
        "RVIZ_EXECUTABLE",
    )
    assert (RVIZ_PACKAGE, RVIZ_EXECUTABLE) == ("rviz2", "rviz2")
    assert ast.unparse(keyword(rviz, "condition")) == "rviz_wanted"
    assert "rviz_wanted = IfCondition(LaunchConfiguration('rviz'))" in ast.unparse(tree)
    # The nodes start only from the function that checks rviz2 first, never directly.
    (description,) = calls(tree, "LaunchDescription")
    assert "OpaqueFunction(function=checked_nodes)" in ast.unparse(description)
    assert "depth_node" not in ast.unparse(description).replace("the depth node", "")
    # Files the launch file finds in the package share: present and installed by setup.py.
    assert {"dna_depth.yaml", "dna_depth.rviz"} <= string_constants(tree)
    assert (ROOT / "config" / "dna_depth.yaml").is_file() and RVIZ_FILE.is_file()
    assert 'glob("config/*.yaml") + glob("config/*.rviz")' in (ROOT / "setup.py").read_text()


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


def test_rviz_config_shows_the_node_outputs_with_matching_qos():
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
    launch_tree = ast.parse(LAUNCH_FILE.read_text())
    fixed_frame = next(
        call for call in calls(launch_tree, "DeclareLaunchArgument") if call.args[0].value == "fixed_frame"
    )
    assert manager["Global Options"]["Fixed Frame"] == keyword(fixed_frame, "default_value").value


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
