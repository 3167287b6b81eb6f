"""The ROS 2 workspace route as the README documents it, with real colcon from the package
index (scripts/setup_colcon.sh): the package builds in a fresh workspace; after sourcing
install/setup.bash the tools are on PATH, the node starts from lib/dna_depth_ros/ as
``ros2 run`` starts it and publishes depth for a frame, and ``colcon test`` runs the tests."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from node_process import serve_one_frame_and_stop

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dna_depth_ros"
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "install", "log", "__pycache__", "*.egg-info", "demo_output", "runs", "outputs"
)
TOOLS = ("depth_node", "bag_finetune", "dna-depth")
"""The package's executables: in lib/dna_depth_ros/ for ros2 run, and on PATH."""


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def sourced(workspace: Path, script: str) -> list[str]:
    """A bash command line that sources the workspace, then runs ``script``."""
    return ["bash", "-c", f"source {workspace}/install/setup.bash && {script}"]


@pytest.fixture(scope="module")
def colcon() -> str:
    """The colcon command, installed for this Python (cached under build/colcon)."""
    result = subprocess.run(
        ["bash", "scripts/setup_colcon.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "VENV": sys.prefix},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def workspace(colcon, tmp_path_factory) -> Path:
    """A workspace with this package (as cloned) in src/, built with ``colcon build``."""
    workspace = tmp_path_factory.mktemp("ros2_ws")
    shutil.copytree(ROOT, workspace / "src" / PACKAGE, ignore=NOT_IN_A_CLONE)
    result = run([colcon, "build"], cwd=workspace)
    assert "1 package finished" in result.stdout, result.stdout
    return workspace


def test_build_installs_the_executables_where_ros2_run_looks_and_on_path(workspace):
    prefix = workspace / "install" / PACKAGE
    for tool in TOOLS:
        assert os.access(prefix / "lib" / PACKAGE / tool, os.X_OK), tool
    for installed in ("package.xml", "launch/dna_depth.launch.py", "config/dna_depth.yaml", "config/dna_depth.rviz"):
        assert (prefix / "share" / PACKAGE / installed).is_file(), installed
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()

    found = run(sourced(workspace, f"command -v {' '.join(TOOLS)}"), cwd=workspace).stdout.split()
    assert found == [str(prefix / "lib" / PACKAGE / tool) for tool in TOOLS]
    # The tools start from the workspace's copy of the package, whoever else is installed.
    script = (
        "dna-depth --help >/dev/null && bag_finetune --help >/dev/null && "
        "python=$(head -1 \"$(command -v depth_node)\" | cut -c3-) && "
        '"$python" -c "import dna_depth_core, dna_depth_ros; print(dna_depth_core.__file__, dna_depth_ros.__file__)"'
    )
    modules = run(sourced(workspace, script), cwd=Path("/")).stdout.split()
    assert all(module.startswith(str(prefix / "lib")) for module in modules), modules


def test_node_started_as_ros2_run_does_publishes_depth(workspace):
    prefix = workspace / "install" / PACKAGE
    # ros2 run dna_depth_ros depth_node --ros-args --params-file <installed config> executes this:
    executable = prefix / "lib" / PACKAGE / "depth_node"
    params_file = prefix / "share" / PACKAGE / "config" / "dna_depth.yaml"
    # eager: an OpenVINO conversion of the shipped network would only add minutes here
    arguments = f"--ros-args --params-file {params_file} -p device:=cpu -p backend:=eager -r __ns:=/colcon"
    output = serve_one_frame_and_stop(
        sourced(workspace, f"exec {executable} {arguments}"), namespace="/colcon", cwd=workspace
    )
    # The shipped checkpoint (the params file's checkpoint: "") comes from the installed package.
    assert f"checkpoint {prefix / 'lib'}" in output and "dna_depth_synthetic.safetensors" in output


def test_colcon_test_runs_the_package_tests(colcon, workspace):
    result = run(
        [colcon, "test", "--packages-select", PACKAGE, "--pytest-args", "test/test_ros_launch.py"], cwd=workspace
    )
    assert "1 package finished" in result.stdout, result.stdout
    summary = run([colcon, "test-result", "--all"], cwd=workspace).stdout
    counts = re.search(r"Summary: (\d+) tests, 0 errors, 0 failures", summary)
    assert counts and int(counts[1]) > 0, summary


ROSDEP_PYTHON_KEYS = {
    "python3-numpy": "numpy",
    "python3-opencv": "opencv-python-headless",
    "python3-yaml": "pyyaml",
    "python3-tqdm": "tqdm",
    "python3-matplotlib": "matplotlib",
    "python3-pil": "pillow",
}
"""package.xml's rosdep keys for Python packages -> the setup.py requirement each one provides."""


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def runtime_requirements(tmp_path: Path) -> set[str]:
    """The names setup.py declares as runtime requirements (no extras), read from the
    package metadata that running ``setup.py egg_info`` writes, as pip would see them."""
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    (egg_info,) = tmp_path.glob("*.egg-info")
    requirements = importlib.metadata.PathDistribution(egg_info).requires or []
    return {requirement_name(requirement) for requirement in requirements if "extra ==" not in requirement}


def test_readme_colcon_route_installs_every_runtime_requirement(tmp_path):
    required = runtime_requirements(tmp_path)
    assert {"torch", "rosbags", "omegaconf"} <= required  # the metadata was read

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The colcon route") :]
    block = section[section.index("```bash") : section.index("```", section.index("```bash") + 7)]
    pip_line = next(line for line in block.splitlines() if line.startswith("python3 -m pip install "))
    from_pip = {requirement_name(name) for name in pip_line.split()[4:]}

    manifest = ElementTree.parse(ROOT / "package.xml").getroot()
    python_keys = {element.text for element in manifest.iter("exec_depend") if element.text.startswith("python3-")}
    assert python_keys <= set(ROSDEP_PYTHON_KEYS), python_keys - set(ROSDEP_PYTHON_KEYS)
    from_rosdep = {ROSDEP_PYTHON_KEYS[key] for key in python_keys}
    missing = required - from_pip - from_rosdep
    assert not missing, f"neither rosdep nor the README's pip line installs {missing}"
