"""Checks ``launch/dna_depth.launch.py`` makes before it starts anything, importable without
``launch`` or ``launch_ros`` so they are tested directly."""

from __future__ import annotations

import os
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix

RVIZ_PACKAGE = "rviz2"
RVIZ_EXECUTABLE = "rviz2"


def executable_in_package(package: str, executable: str) -> Path | None:
    """``lib/PACKAGE/EXECUTABLE`` under the package's prefix in the ament index
    (``AMENT_PREFIX_PATH``), where ``ros2 run`` and launch_ros's ``Node`` look; ``None``
    when the package is not installed or has no such executable."""
    try:
        prefix = get_package_prefix(package)
    except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset, no ROS sourced
        return None
    path = Path(prefix) / "lib" / package / executable
    return path if path.is_file() and os.access(path, os.X_OK) else None


def rviz_problem(rviz_wanted: bool) -> str | None:
    """Why ``rviz:=true`` cannot be honoured (one line saying what to do), or ``None``."""
    if not rviz_wanted or executable_in_package(RVIZ_PACKAGE, RVIZ_EXECUTABLE) is not None:
        return None
    distro = os.environ.get("ROS_DISTRO", "<distro>")
    return (
        f"rviz:=true but RViz 2 is not installed (no {RVIZ_PACKAGE} package with a {RVIZ_EXECUTABLE} executable "
        f"on AMENT_PREFIX_PATH): install ros-{distro}-rviz2 and source it, or launch with rviz:=false; "
        "nothing was started"
    )
