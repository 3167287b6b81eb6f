#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) — safe to run again.
#
# Installs torch 2.14.1 / torchvision 0.29.1, this package (editable) with its test and
# export extras, and the ROS 2 Kilted wheels only when rclpy is not already importable
# (e.g. from a sourced /opt/ros install). Skips everything when nothing changed since the
# last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
ROS_WHEELS="ros-rclpy ros-sensor-msgs ros-std-msgs ros-geometry-msgs ros-nav-msgs ros-diagnostic-msgs ros-rosgraph-msgs ros-rmw-fastrtps-cpp"

stamp_source() { cat setup.py scripts/setup_env.sh | sha256sum | cut -d' ' -f1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

if [ -f "$VENV/.setup-stamp" ] && [ "$(cat "$VENV/.setup-stamp")" = "$(stamp_source)" ]; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

pip_install() {
  local log
  log=$(mktemp)
  if ! python -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "[setup] 'pip install $*' failed (see above)" >&2
    exit 1
  fi
  rm -f "$log"
}

# pip unpacks torch's CUDA build (about 5.5 GB in the venv) before it can say the disk is full.
if ! python -c "import torch" 2>/dev/null; then
  free_gib=$(df -Pk "$VENV" | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free_gib" -lt 8 ]; then
    echo "[setup] torch needs about 8 GiB free on the disk of $VENV, and only $free_gib GiB is free." >&2
    echo "[setup] Free some space (old virtual environments, /tmp/pytest-of-$(id -un)) or set VENV to a folder on a larger disk." >&2
    exit 1
  fi
fi
echo "[setup] installing torch 2.14.1 and torchvision 0.29.1"
pip_install torch==2.14.1 torchvision==0.29.1
python -c "import torch, torchvision" || { echo "[setup] torch failed to install" >&2; exit 1; }

if python -c "import rclpy" 2>/dev/null; then
  echo "[setup] rclpy importable (sourced ROS 2 or wheels already present); not installing ROS wheels"
else
  echo "[setup] installing ROS 2 Kilted wheels"
  pip_install $ROS_WHEELS
  python -c "import rclpy" || { echo "[setup] rclpy still not importable after installing the ROS wheels" >&2; exit 1; }
fi

echo "[setup] installing dna_depth_ros (editable) with test and export extras"
pip_install -e ".[test,export]"
python -c "import dna_depth_core, dna_depth_ros, timm" || { echo "[setup] package import failed" >&2; exit 1; }

stamp_source > "$VENV/.setup-stamp"
echo "[setup] done: activate with '. $VENV/bin/activate'"
