"""Guardrails of a fine-tune: never silently worse, never silently implausible.

:func:`scale_problems` says, in one line each, what is wrong with a result's unit: a
nearest possible depth beyond :data:`NEAREST_DEPTH_WARNING`, or a unit that makes the
platform move implausibly (against the odometry when the bag has it, else outside
:data:`PLAUSIBLE_SPEED`). The fine-tune warns with them whatever route produced the unit.
"""

from __future__ import annotations

import math

import numpy as np

from .calibration import calibration_subset, frame_intervals

NEAREST_DEPTH_WARNING = 1.0
"""Metres; a model whose nearest possible depth (``min_depth x depth_scale``) is beyond
this cannot see a robot's obstacles."""

PLAUSIBLE_SPEED = (0.02, 40.0)
"""m/s; without odometry, a unit that makes the camera move slower or faster than this
between frames (a creeping robot to a motorway) is implausible."""

ODOMETRY_SPEED_FACTOR = 2.0
"""With odometry, a unit whose implied speed is off the odometry's by more than this factor
is implausible."""


def odometry_speed(dataset, max_samples: int = 64) -> float:
    """Median camera speed in m/s by the odometry over up to ``max_samples`` evenly spread
    triplets of a bag dataset with odometry (NaN when it has none)."""
    if not dataset.with_distance:
        return float("nan")
    indices = calibration_subset(dataset, max_samples).indices
    stamps, seconds = frame_intervals(dataset, indices)
    metres = np.array([dataset.sequences[int(row[0])].odometry.distance(np.full(2, stamp[1]), stamp[[0, 2]])
                       for row, stamp in zip(dataset.triplets[indices], stamps)])
    moving = seconds > 0
    return float(np.nanmedian(metres[moving] / seconds[moving])) if moving.any() else float("nan")


def scale_problems(metres_per_unit: float | None, min_depth: float, implied: float, odometry: float) -> list[str]:
    """One line per problem with a result's unit; empty when there is none (or it is relative).

    Args:
        metres_per_unit: the result's unit, ``None`` for relative depth.
        min_depth: depth of disparity 1, network units.
        implied: the speed its pose network implies with that unit, m/s (NaN: unknown).
        odometry: the odometry's speed, m/s (NaN: no odometry).
    """
    if metres_per_unit is None:
        return []
    problems = []
    nearest = min_depth * metres_per_unit
    if nearest > NEAREST_DEPTH_WARNING:
        problems.append(
            f"the depth unit is {metres_per_unit:.3g} m, so the model cannot predict depth nearer than {nearest:.2g} m "
            "(loss.min_depth units); start from a metric model with a close range, or train from scratch on the bags")
    if math.isfinite(implied) and math.isfinite(odometry) and odometry > 0:
        if not 1 / ODOMETRY_SPEED_FACTOR <= implied / odometry <= ODOMETRY_SPEED_FACTOR:
            problems.append(f"the depth unit ({metres_per_unit:.3g} m) makes the camera move at {implied:.3g} m/s, "
                            f"the odometry says {odometry:.3g} m/s: the unit is implausible for the bag's motion")
    elif math.isfinite(implied) and not PLAUSIBLE_SPEED[0] <= implied <= PLAUSIBLE_SPEED[1]:
        problems.append(f"the depth unit ({metres_per_unit:.3g} m) makes the camera move at {implied:.3g} m/s, "
                        f"outside {PLAUSIBLE_SPEED[0]:g}-{PLAUSIBLE_SPEED[1]:g} m/s: the unit is implausible for the "
                        "bag's motion")
    return problems
