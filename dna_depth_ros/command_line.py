"""The depth node's command line: ``--help`` generated from the parameter table, and ROS
argument mistakes reported as one line saying what to write instead of an rcl traceback.

The node takes no options of its own besides ``-h``/``--help``; everything else is a ROS
argument after ``--ros-args`` (``-p NAME:=VALUE``, ``--params-file FILE``, ``-r FROM:=TO``...).
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import rclpy
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.utilities import remove_ros_args

from dna_depth_core.errors import UserError

from .parameters import PARAMETERS, ParameterSpec, ParameterValue

PROGRAM = "depth_node"
HELP_FLAGS = ("-h", "--help")
WIDTH = 100
"""Columns of the ``--help`` text."""


@dataclass(frozen=True)
class TopicDoc:
    """One topic of the node for ``--help``: relative name, message type, what it carries."""

    name: str
    message_type: str
    meaning: str


def wants_help(argv: Sequence[str]) -> bool:
    """Whether ``-h`` or ``--help`` is anywhere on the command line ``argv`` (program name first)."""
    return any(argument in HELP_FLAGS for argument in argv[1:])


def node_help(inputs: Sequence[TopicDoc], outputs: Sequence[TopicDoc]) -> str:
    """The ``depth_node --help`` text: usage, topics and every parameter of :data:`PARAMETERS`
    with its type, default, allowed values and meaning."""
    lines = [
        f"usage: {PROGRAM} [-h] [--ros-args [-p NAME:=VALUE] [--params-file FILE] [-r FROM:=TO] ...]",
        "",
        "DNA-Depth monocular depth as a ROS 2 node: camera image in; depth in metres, coloured depth",
        "and an organised point cloud out. Installed as 'depth_node' in the virtual environment and",
        "run as 'ros2 run dna_depth_ros depth_node' in a ROS 2 workspace; the arguments are the same.",
        "",
        "example:",
        f"  {PROGRAM} --ros-args --params-file config/dna_depth.yaml -p checkpoint:=model.safetensors \\",
        "    -r image:=/camera/image_raw -r camera_info:=/camera/camera_info",
        "",
        "topics (relative: remap each with -r NAME:=/your/topic, move all with -r __ns:=/robot):",
    ]
    name_width = max(len(topic.name) for topic in (*inputs, *outputs)) + 2
    type_width = max(len(topic.message_type) for topic in (*inputs, *outputs)) + 2
    for heading, topics in (("subscribes", inputs), ("publishes", outputs)):
        for index, topic in enumerate(topics):
            label = heading if index == 0 else ""
            lines.append(f"  {label:<12}{topic.name:<{name_width}}{topic.message_type:<{type_width}}{topic.meaning}")
    lines += [
        "",
        "parameters (-p NAME:=VALUE or --params-file FILE; 'fixed' ones are read at start, the others",
        "can also be changed while the node runs with 'ros2 param set'):",
    ]
    for spec in PARAMETERS:
        summary = f"{spec.name} ({_parameter_summary(spec)})"
        lines += textwrap.wrap(summary, WIDTH, initial_indent="  ", subsequent_indent=" " * 6)
        lines += textwrap.wrap(spec.description, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6)
    lines += [
        "",
        "The same defaults, as a parameters file to copy: config/dna_depth.yaml (installed to",
        "share/dna_depth_ros/config/). Start-up problems give one error line and exit code 1.",
    ]
    return "\n".join(lines) + "\n"


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "double", str: "string"}


def _parameter_summary(spec: ParameterSpec) -> str:
    parts = [_TYPE_NAMES[type(spec.default)], f"default {ros_literal(spec.default)}"]
    if spec.choices is not None:
        parts.append("one of " + ", ".join(spec.choices))
    if spec.value_range is not None:
        low, high = (ros_literal(type(spec.default)(bound)) for bound in spec.value_range)
        parts.append(f"{low} to {high}")
    if spec.read_only:
        parts.append("fixed")
    return "; ".join(parts)


def ros_literal(value: ParameterValue) -> str:
    """``value`` as written after ``-p NAME:=`` (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def init_ros(argv: Sequence[str]) -> None:
    """``rclpy.init`` with the command line ``argv`` (program name first), after checking that
    everything on it is a ROS argument that rcl can parse.

    Raises:
        UserError: one line naming the argument (or the environment variable rcl rejected)
            and what to write instead.
    """
    if plain := plain_arguments(argv):
        raise UserError(_plain_argument_problem(plain))
    try:
        remove_ros_args(list(argv))
    except _rclpy.UnknownROSArgsError as error:
        unknown = " ".join(ast.literal_eval(str(error)))
        raise UserError(
            f"unknown ROS argument(s) {unknown}; ROS arguments are -p NAME:=VALUE, --params-file FILE, "
            f"-r FROM:=TO, --log-level LEVEL (see {PROGRAM} --help)"
        ) from None
    except _rclpy.RCLError as error:
        raise UserError(ros_argument_problem(str(error))) from None
    try:
        rclpy.init(args=list(argv))
    except _rclpy.RCLError as error:  # what rcl checks at start: ROS_DOMAIN_ID and the like
        raise UserError(ros_argument_problem(str(error))) from None


def plain_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments of ``argv`` (program name first) outside ``--ros-args ... [--]`` sections."""
    plain, in_ros_section = [], False
    for argument in argv[1:]:
        if argument == "--ros-args":
            in_ros_section = True
        elif argument == "--" and in_ros_section:
            in_ros_section = False
        elif not in_ros_section:
            plain.append(argument)
    return plain


def _plain_argument_problem(plain: list[str]) -> str:
    """What to write instead of ``plain[0]``, the first argument outside ``--ros-args``."""
    # rcl would take a bare NAME:=VALUE as a (deprecated) topic remapping: never what a
    # user who wrote checkpoint:=... meant.
    argument = plain[0]
    name, assigns, value = argument.lstrip("-").partition(":=")
    if not assigns:
        name, _, value = argument.lstrip("-").partition("=")
    if not value and argument.startswith("--") and len(plain) > 1 and not plain[1].startswith("-"):
        argument, value = f"{argument} {plain[1]}", plain[1]  # --device cpu
    if name in {spec.name for spec in PARAMETERS}:
        hint = f"set parameters after --ros-args: {PROGRAM} --ros-args -p {name}:={value or 'VALUE'}"
    elif assigns:
        hint = f"remap topics after --ros-args: {PROGRAM} --ros-args -r {argument}"
    else:
        hint = "the node takes ROS arguments only, after --ros-args (-p NAME:=VALUE, --params-file FILE, -r FROM:=TO)"
    return f"unexpected argument {argument}: {hint} (see {PROGRAM} --help)"


_SOURCE_LOCATION = re.compile(r",? at /\S+:\d+")
_PARAMS_FILE = re.compile(r"Couldn't parse params file: '--params-file (?P<path>.*)'\. Error: (?P<reason>.*)")
_RULE = re.compile(r"Couldn't parse (?P<kind>parameter override|remap) rule: '(?P<rule>.*)'\.")
_TRAILING_FLAG = re.compile(r"Couldn't parse trailing (?P<flag>\S+) flag\. (?P<reason>.*?)\.?$")
_RULE_FORMS = {
    "parameter override": "-p NAME:=VALUE, e.g. -p device:=cpu",
    "remap": "-r FROM:=TO, e.g. -r image:=/camera/image_raw",
}


def ros_argument_problem(rcl_message: str) -> str:
    """One line saying what is wrong with the ROS arguments, from rcl's error message (which
    ends in C source locations)."""
    message = _SOURCE_LOCATION.sub("", rcl_message)
    for prefix in ("Failed to parse ROS arguments: ", "failed to initialize rcl: "):
        message = message.removeprefix(prefix)
    if match := _PARAMS_FILE.fullmatch(message):
        return _params_file_problem(match["path"], match["reason"])
    if match := _RULE.match(message):
        return f"cannot parse '{match['rule']}': write {_RULE_FORMS[match['kind']]}"
    if match := _TRAILING_FLAG.fullmatch(message):
        return f"{match['flag']} at the end of the line needs a value ({match['reason'].lower()})"
    return f"invalid ROS arguments: {message}"


def _params_file_problem(path: str, reason: str) -> str:
    if not os.path.exists(path):
        return (
            f"params file {path} does not exist (relative to {os.getcwd()}); --params-file takes a YAML file "
            "like config/dna_depth.yaml, installed to share/dna_depth_ros/config/"
        )
    if os.path.isdir(path):
        return f"params file {path} is a folder; --params-file takes a YAML file like config/dna_depth.yaml"
    if not os.access(path, os.R_OK):
        return f"params file {path} cannot be read (permission denied)"
    return f"params file {path} is not a ROS 2 parameters file ({reason}); see config/dna_depth.yaml for the format"
