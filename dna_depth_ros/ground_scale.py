"""Runtime depth scale from the floor: the node's ``ground_plane_scale.*`` parameters.

Each frame's depth (at network size, in the unit the node would publish without this) is
back-projected and the floor or road plane fitted in its lower half
(:func:`dna_depth_core.geometry.ground_plane.ground_plane_scale`); the camera's known
height over the plane's distance is that frame's metres per depth unit. One frame's fit
wobbles with what the network sees, and some frames show no floor (a wall, an obstacle
close ahead), so the applied factor is the median of the last ``window`` fits that had a
floor in view; before the first one, depth is published unscaled and diagnostics say so.
A fit costs about 30 ms at 384x288 while that median moves slowly, so the floor is fitted
on every ``every``-th frame only (every frame until the first fit); the frames between use
the current median.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

import numpy as np

from dna_depth_core.geometry.ground_plane import NoGroundPlaneError, floor_normal_of_pitch, ground_plane_scale


class GroundPlaneScaler:
    """Smoothed metres-per-depth-unit estimates from the floor plane, thread-safe.

    :meth:`update` runs in the inference thread, :meth:`notes` in the diagnostics timer.
    The estimates start over when the camera height, the window or the floor direction changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._estimates: deque[float] = deque(maxlen=1)
        self._settings: tuple[float, int, float | None] | None = None
        self._fits = 0
        self._failures = 0
        self._frames_since_fit = 0
        self._last: str = "no frame yet"

    def update(
        self, depth: np.ndarray, intrinsics: np.ndarray | None, camera_height: float, window: int, every: int = 1,
        mount_pitch_deg: float | None = None,
    ) -> float | None:
        """Fit this frame's floor when it is due and return the factor to multiply its depth by
        (``None`` while no frame had a floor in view).

        Args:
            depth: float ``(H, W)`` depth of the network's view, any unit; NaN, zero and
                negative pixels are ignored.
            intrinsics: ``(3, 3)`` pinhole matrix of ``depth``, pixels; ``None`` without
                camera info (nothing can be fitted).
            camera_height: the optical centre's height above the floor, metres.
            window: fits whose estimates the median takes.
            every: fit on every this-many-th frame (>= 1), and on every frame while there
                is no estimate yet.
            mount_pitch_deg: with ``ground_plane_scale.floor_tilt: mount``, the degrees the
                camera is pitched down over a level floor, which fixes the floor's direction;
                ``None``: its tilt is fitted per frame.
        """
        with self._lock:
            settings = (camera_height, window, mount_pitch_deg)
            if self._settings != settings:
                self._settings = settings
                self._estimates = deque(maxlen=window)
            self._frames_since_fit += 1
            if self._estimates and self._frames_since_fit < every:
                return statistics.median(self._estimates)
            self._frames_since_fit = 0
        if intrinsics is None:
            note = "no camera info: the floor cannot be back-projected"
        else:
            try:
                normal = None if mount_pitch_deg is None else floor_normal_of_pitch(mount_pitch_deg)
                fit = ground_plane_scale(depth, intrinsics, camera_height, floor_normal=normal)
            except NoGroundPlaneError as error:
                note = f"no floor in view ({error})"
            else:
                tilt = "from the mount" if mount_pitch_deg is not None else "fitted"
                note = (f"{fit.scale:.4g} m/unit, floor tilt {fit.tilt_deg:.1f} deg ({tilt}), "
                        f"{fit.inlier_fraction:.0%} of {fit.num_points} points on it")
                with self._lock:
                    self._estimates.append(fit.scale)
                    self._fits += 1
                    self._last = note
                    return statistics.median(self._estimates)
        with self._lock:
            self._failures += 1
            self._last = note
            return statistics.median(self._estimates) if self._estimates else None

    def notes(self) -> dict[str, str]:
        """Diagnostics values: the applied factor, fit counts and the last frame's result."""
        with self._lock:
            applied = f"{statistics.median(self._estimates):.4g}" if self._estimates else "none yet (depth unscaled)"
            height = "" if self._settings is None else f"{self._settings[0]:g}"
            return {
                "ground_plane_scale": applied,
                "ground_plane_camera_height_m": height,
                "ground_plane_fits": f"{self._fits} with a floor, {self._failures} without",
                "ground_plane_last": self._last,
            }
