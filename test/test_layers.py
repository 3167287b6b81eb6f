"""The package layers, checked on the source: ``dna_depth_core`` never imports ROS.

``dna_depth_core`` is pure PyTorch and rosbags so that training, evaluation and bag
fine-tuning run without a ROS install; ``dna_depth_ros`` sits on top of it. The check reads
every module's syntax tree, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dna_depth_core

CORE_ROOT = Path(dna_depth_core.__file__).parent
FORBIDDEN_IN_CORE = ("dna_depth_ros", "rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name imported by a source file, with its line number."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def test_core_never_imports_ros():
    violations = []
    for path in sorted(CORE_ROOT.rglob("*.py")):
        for line, name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN_IN_CORE:
                violations.append(f"{path.relative_to(CORE_ROOT.parent)}:{line} imports {name}")
    assert not violations, "dna_depth_core must not import ROS packages:\n" + "\n".join(violations)


def test_the_check_sees_a_violation(tmp_path):
    """The checker itself finds a lazy import inside a function."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from dna_depth_ros.depth_node import DepthNode\n")
    assert imported_modules(module) == [(2, "dna_depth_ros.depth_node")]
