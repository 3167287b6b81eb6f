"""The package layers, checked on the source: an import contract the suite enforces.

``dna_depth_core`` is pure PyTorch and rosbags so that training, evaluation and bag
fine-tuning run without a ROS install; ``dna_depth_ros`` sits on top of it. Inside the core
every module belongs to one layer of :data:`LAYERS` and imports only from its own layer or
the layers below, so the dependencies form a stack without cycles between layers:

    cli                                  the dna-depth commands
    evaluation                           the evaluation loop and the precision budget
    inference, export, import_weights    depth from an image; ONNX/TensorRT files; weights in
    training                             the trainer, bag fine-tuning
    checkpoint                           the checkpoint format
    data                                 datasets, camera frames, bags, synthetic scenes
    networks, geometry, losses, metrics  the models and the maths
    errors, paths, devices, config, ...  helpers every layer may use

The check reads every module's syntax tree, so an import inside a function (the lazy
imports of optional extras) counts too; relative imports are resolved. A module that
matches no layer fails the check, so a new package has to be placed in the stack.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import dna_depth_core

CORE_ROOT = Path(dna_depth_core.__file__).parent
FORBIDDEN_IN_CORE = ("dna_depth_ros", "rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces")

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("evaluation",),
    # ONNX export runs the inference backends to check what it wrote, and the backends
    # export on demand: one layer, allowed to import each other.
    ("inference", "export", "import_weights"),
    ("training",),
    ("checkpoint",),
    ("data",),
    ("networks", "geometry", "losses", "metrics"),
    ("errors", "paths", "devices", "config", "allocator", "__init__"),
)
"""Top to bottom; each entry names the subpackages and modules of ``dna_depth_core`` in one layer."""


@dataclass(frozen=True)
class Import:
    """One import statement of a module: where it is and the absolute module it names."""

    path: Path
    line: int
    module: str


def module_name(path: Path, package_root: Path) -> str:
    """Dotted name of a source file under ``package_root`` (whose name is the package's)."""
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package_root: Path | None = None) -> list[tuple[int, str]]:
    """Every module a source file imports, with its line number; relative imports are
    resolved when ``package_root`` (the folder of the top package) is given."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package: list[str] = []
    if package_root is not None:
        package = module_name(path, package_root).split(".")
        if path.name != "__init__.py":
            package.pop()
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.append((node.lineno, node.module))
            elif package_root is not None:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    names.append((node.lineno, ".".join([*base, node.module])))
                else:  # from . import a, b: each name may be a submodule
                    names += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return names


def imports_of_package(package_root: Path) -> dict[str, list[Import]]:
    """Every module of the package in ``package_root`` -> its imports."""
    return {
        module_name(path, package_root): [Import(path, line, name) for line, name in imported_modules(path, package_root)]
        for path in sorted(package_root.rglob("*.py"))
    }


def layer_of(module: str, package: str, layers: tuple[tuple[str, ...], ...]) -> int | None:
    """Index in ``layers`` (0 = top) of a module of ``package``; ``None`` when it is in none."""
    if module == package:
        relative = "__init__"
    elif module.startswith(package + "."):
        relative = module[len(package) + 1:].split(".")[0]
    else:
        return None
    for index, members in enumerate(layers):
        if relative in members:
            return index
    return None


def layer_violations(package_root: Path, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """One line per module outside every layer and per import of a higher layer."""
    package = package_root.name
    problems = []
    for module, imports in imports_of_package(package_root).items():
        own = layer_of(module, package, layers)
        if own is None:
            problems.append(f"{module} belongs to no layer; add it to LAYERS in test/test_layers.py")
            continue
        for item in imports:
            target = layer_of(item.module, package, layers)
            if target is not None and target < own:
                problems.append(
                    f"{item.path.relative_to(package_root.parent)}:{item.line}: {module} ({', '.join(layers[own])}) "
                    f"imports {item.module} from a higher layer ({', '.join(layers[target])})"
                )
    return problems


def test_core_never_imports_ros():
    violations = []
    for path in sorted(CORE_ROOT.rglob("*.py")):
        for line, name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN_IN_CORE:
                violations.append(f"{path.relative_to(CORE_ROOT.parent)}:{line} imports {name}")
    assert not violations, "dna_depth_core must not import ROS packages:\n" + "\n".join(violations)


def test_core_layers_import_only_downwards():
    violations = layer_violations(CORE_ROOT, LAYERS)
    assert not violations, "imports against the layers of dna_depth_core:\n" + "\n".join(violations)


def test_the_check_sees_a_violation(tmp_path):
    """The checker itself finds a lazy import inside a function."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from dna_depth_ros.depth_node import DepthNode\n")
    assert imported_modules(module) == [(2, "dna_depth_ros.depth_node")]


@pytest.fixture()
def fake_package(tmp_path) -> Path:
    """A package ``fake`` with the layers top > middle > bottom, importing only downwards."""
    root = tmp_path / "fake"
    for folder in (root, root / "top", root / "middle", root / "bottom"):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    (root / "top" / "app.py").write_text("from ..middle import work\nimport fake.bottom.maths\n")
    (root / "middle" / "work.py").write_text("from fake.bottom import maths\nfrom . import helpers\n")
    (root / "middle" / "helpers.py").write_text("from ..bottom.maths import add\n")
    (root / "bottom" / "maths.py").write_text("def add(a, b):\n    return a + b\n")
    return root


FAKE_LAYERS = (("top",), ("middle",), ("bottom", "__init__"))


def test_the_layer_check_passes_a_clean_tree(fake_package):
    assert layer_violations(fake_package, FAKE_LAYERS) == []


def test_the_layer_check_sees_an_upward_import(fake_package):
    """An import of a higher layer fails, relative or absolute, at module level or in a function."""
    (fake_package / "bottom" / "late.py").write_text("def f():\n    from ..middle.work import run\n")
    (fake_package / "middle" / "up.py").write_text("import fake.top.app\n")
    assert layer_violations(fake_package, FAKE_LAYERS) == [
        "fake/bottom/late.py:2: fake.bottom.late (bottom, __init__) imports fake.middle.work from a higher layer "
        "(middle)",
        "fake/middle/up.py:1: fake.middle.up (middle) imports fake.top.app from a higher layer (top)",
    ]


def test_the_layer_check_sees_a_module_outside_the_layers(fake_package):
    (fake_package / "stray.py").write_text("")
    assert layer_violations(fake_package, FAKE_LAYERS) == [
        "fake.stray belongs to no layer; add it to LAYERS in test/test_layers.py"
    ]
