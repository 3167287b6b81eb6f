"""launch/dna_depth.launch.py and config/dna_depth.rviz: checked statically always, and through
launch_ros when a ROS 2 install provides it (see docs/ros_node.md for the manual check)."""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

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
    assert literal(keyword(rviz, "package"), tree) == "rviz2" and "IfCondition" in ast.unparse(
        keyword(rviz, "condition")
    )
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
    reliability = {"reliable": "Reliable", "best_effort": "Best Effort"}[node_defaults["publisher_reliability"]]
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


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None, reason="launch_ros needs a ROS 2 install (see docs/ros_node.md)"
)
def test_launch_description_builds_with_launch_ros():
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("dna_depth_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    arguments = {entity.name: entity for entity in description.entities if isinstance(entity, DeclareLaunchArgument)}
    assert set(arguments) == DOCUMENTED_ARGUMENTS
    assert arguments["rviz"].default_value[0].text == "false"
    nodes = [entity for entity in description.entities if isinstance(entity, Node)]
    assert len(nodes) == 2 and nodes[1].condition is not None
