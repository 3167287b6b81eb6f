"""The recording platform's odometry from a bag, and the distance it travelled between two times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dna_depth_core.errors import UserError

from .messages import ODOMETRY_TYPE, header_stamp_ns
from .topics import require_topic

if TYPE_CHECKING:  # the reader imports this module to offer its functions
    from .reader import RecordedBag


@dataclass(frozen=True)
class OdometryTrack:
    """Odometry of the recording platform, time-ordered.

    Attributes:
        times: float64 ``(N,)`` header stamps in seconds since the epoch, increasing.
        positions: float64 ``(N, 3)`` positions in metres in the odometry frame.
        speeds: float64 ``(N,)`` linear speed in m/s (norm of ``twist.linear``).
    """

    times: np.ndarray
    positions: np.ndarray
    speeds: np.ndarray

    def distance(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Metres travelled between times ``start`` and ``end`` (arrays of seconds, same shape).

        The straight-line distance between the interpolated positions, which is what the
        pose network's translation measures; when the odometry reports no motion of its
        pose at all (twist-only sources), the speed is integrated instead. Times outside
        the track give NaN. The platform's motion stands in for the camera's: the lever
        arm between them is neglected.
        """
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        outside = (np.minimum(start, end) < self.times[0]) | (np.maximum(start, end) > self.times[-1])
        if np.ptp(self.positions, axis=0).max(initial=0.0) > 0:
            position_start = np.stack([np.interp(start, self.times, axis) for axis in self.positions.T], axis=-1)
            position_end = np.stack([np.interp(end, self.times, axis) for axis in self.positions.T], axis=-1)
            distance = np.linalg.norm(position_end - position_start, axis=-1)
        else:
            steps = np.diff(self.times) * 0.5 * (self.speeds[1:] + self.speeds[:-1])
            travelled = np.concatenate([[0.0], np.cumsum(steps)])
            distance = np.abs(np.interp(end, self.times, travelled) - np.interp(start, self.times, travelled))
        return np.where(outside, np.nan, distance)


def read_odometry(bag: RecordedBag, topic: str) -> OdometryTrack:
    """All ``nav_msgs/Odometry`` messages of ``topic``, sorted by header stamp.

    Raises:
        UserError: the topic is missing, of another type, or has fewer than two messages.
    """
    require_topic(bag, topic, (ODOMETRY_TYPE,), "--odom-topic")
    samples = []
    for message in bag.messages([topic]):
        odometry = message.deserialize()
        position, velocity = odometry.pose.pose.position, odometry.twist.twist.linear
        speed = np.linalg.norm([velocity.x, velocity.y, velocity.z])
        samples.append((header_stamp_ns(message.data) / 1e9, position.x, position.y, position.z, speed))
    if len(samples) < 2:
        raise UserError(f"odometry topic {topic} in {str(bag.path)!r} has {len(samples)} messages; need at least 2")
    table = np.array(sorted(samples), dtype=np.float64)
    return OdometryTrack(times=table[:, 0], positions=table[:, 1:4], speeds=table[:, 4])
