"""The suite with the runtime dependencies only (what ``colcon test`` sees after rosdep and the
README's pip line): every module collects, and the tests that need an optional extra skip with
a reason. The extras are hidden from a pytest subprocess by a plugin that blocks their import."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("onnx", "onnxruntime", "onnxscript", "openvino", "fvcore", "hypothesis", "launch", "launch_ros")
"""The export and test extras, and launch_ros (a ROS 2 install's, not the venv's)."""
NEEDS_EXTRAS = [
    "test/test_export.py",
    "test/test_inference.py::test_backend_depth_agrees_with_eager_float32",
    "test/test_inference.py::test_onnx_export_is_cached_per_weights_and_size",
    "test/test_networks.py::test_multiply_adds_at_640x192_match_the_paper",
    "test/test_ros_launch.py::test_launch_description_builds_with_launch_ros",
]
"""Tests that use an optional extra."""
RUN_ELSEWHERE = [
    "test/test_inference.py::test_backend_depth_agrees_with_eager_float32[eager-random]",
    "test/test_inference.py::test_backend_depth_agrees_with_eager_float32[eager-trained]",
]
"""Cases among them that need no extra (they run with the rest of the suite)."""


def run_pytest_without_extras(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    plugin = tmp_path / "hide_optional_extras.py"
    # None in sys.modules makes `import name` raise ImportError and find_spec(name) return None.
    plugin.write_text(f"import sys\nfor name in {OPTIONAL!r}:\n    sys.modules[name] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hide_optional_extras", "-q", "-rs", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


def test_every_module_collects_without_the_optional_extras(tmp_path):
    result = run_pytest_without_extras(tmp_path, "--collect-only", "test")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\d+ tests? collected", result.stdout) and not re.search(r"ERROR|\d+ errors?", result.stdout)


def test_tests_that_need_an_extra_skip_with_what_to_install(tmp_path):
    deselect = [argument for node in RUN_ELSEWHERE for argument in ("--deselect", node)]
    result = run_pytest_without_extras(tmp_path, *NEEDS_EXTRAS, *deselect)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert re.match(r"\d+ skipped", summary) and not re.search("failed|error", summary), summary
    reasons = "\n".join(line for line in output.splitlines() if line.startswith("SKIPPED"))
    assert "test_export.py" in reasons and "pip install -e '.[export]'" in reasons
    assert "'openvino' is not available on cpu: pip install openvino" in reasons
    assert "'onnxruntime' is not available on cpu: pip install onnxruntime" in reasons
    assert "fvcore" in reasons and "launch_ros and its message packages need a ROS 2 install" in reasons
