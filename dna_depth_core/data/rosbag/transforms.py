"""The camera's motion from a bag's odometry and its ``/tf_static`` mount.

Odometry reports the motion of the robot's base (``child_frame_id``, usually
``base_link``), not the camera's. A camera mounted ahead of the base's origin travels
further than the base when the robot turns on the spot, so speed supervision in metres
wants the camera's displacement: the base pose composed with the static
base-to-camera transform that ``robot_state_publisher`` records on ``/tf_static``.

:func:`camera_odometry` reads both and gives a :class:`CameraOdometryTrack` that measures
camera distances; without a usable ``/tf_static`` chain the camera is taken to move
as the odometry's frame does (the lever arm is neglected), and its ``description`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dna_depth_core.errors import UserError

from .reader import ODOMETRY_TYPE, OdometryTrack, RecordedBag, header_stamp_ns, require_topic

TF_STATIC_TOPIC = "/tf_static"
TF_MESSAGE_TYPE = "tf2_msgs/msg/TFMessage"


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """float64 ``(3, 3)`` rotation of a quaternion ``(x, y, z, w)`` (normalised here)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = np.linalg.norm(q)
    if norm == 0:
        raise ValueError("a zero quaternion is no rotation")
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _transform(translation, rotation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_matrix(rotation.x, rotation.y, rotation.z, rotation.w)
    matrix[:3, 3] = (translation.x, translation.y, translation.z)
    return matrix


def read_static_transforms(bag: RecordedBag) -> dict[str, tuple[str, np.ndarray]]:
    """Every ``/tf_static`` transform of the bag: child frame -> ``(parent frame, (4, 4)
    child-to-parent transform, metres)``; empty when the bag has no ``/tf_static``. Frame
    names lose a leading ``/`` (tf2's convention)."""
    if bag.topics.get(TF_STATIC_TOPIC) != TF_MESSAGE_TYPE:
        return {}
    transforms = {}
    for message in bag.messages([TF_STATIC_TOPIC]):
        for entry in message.deserialize().transforms:
            transforms[entry.child_frame_id.lstrip("/")] = (
                entry.header.frame_id.lstrip("/"), _transform(entry.transform.translation, entry.transform.rotation))
    return transforms


def chain_transform(transforms: dict[str, tuple[str, np.ndarray]], child: str, ancestor: str) -> np.ndarray | None:
    """The ``(4, 4)`` ``child``-to-``ancestor`` transform through the tree of ``transforms``
    (as :func:`read_static_transforms` gives it); ``None`` when ``ancestor`` is not above ``child``."""
    child, ancestor = child.lstrip("/"), ancestor.lstrip("/")
    matrix, frame, seen = np.eye(4), child, set()
    while frame != ancestor:
        if frame not in transforms or frame in seen:
            return None
        seen.add(frame)
        parent, transform = transforms[frame]
        matrix = transform @ matrix
        frame = parent
    return matrix


@dataclass(frozen=True)
class CameraOdometryTrack(OdometryTrack):
    """Odometry of the base with the camera's lever arm: distances are the camera's.

    Attributes:
        orientations: float64 ``(N, 3, 3)`` base-to-odometry-frame rotations.
        camera_offset: float64 ``(3,)`` the camera's optical centre in the base frame, metres.
    """

    orientations: np.ndarray = None
    camera_offset: np.ndarray = None

    def distance(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Metres the camera's optical centre moved between times ``start`` and ``end``
        (arrays of seconds, same shape): base positions interpolated linearly, the lever
        arm turned by the nearest base orientation (odometry runs at tens of Hz, so the
        rotation between neighbouring messages is small). NaN outside the track."""
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        outside = (np.minimum(start, end) < self.times[0]) | (np.maximum(start, end) > self.times[-1])

        def camera_position(times: np.ndarray) -> np.ndarray:
            base = np.stack([np.interp(times, self.times, axis) for axis in self.positions.T], axis=-1)
            nearest = np.clip(np.searchsorted(self.times, times), 0, len(self.times) - 1)
            before = np.clip(nearest - 1, 0, len(self.times) - 1)
            earlier_is_closer = np.abs(self.times[before] - times) < np.abs(self.times[nearest] - times)
            closer = np.where(earlier_is_closer, before, nearest)
            return base + self.orientations[closer] @ self.camera_offset

        distance = np.linalg.norm(camera_position(end) - camera_position(start), axis=-1)
        return np.where(outside, np.nan, distance)


@dataclass(frozen=True)
class CameraMotion:
    """The odometry that stands for the camera's motion, and how it was made.

    Attributes:
        track: the odometry; a :class:`CameraOdometryTrack` when the mount is known.
        camera_offset: the optical centre in the odometry's child frame, metres; ``None``
            when the bag gives no transform from that frame to the camera.
        description: one line for logs and provenance.
    """

    track: OdometryTrack
    camera_offset: np.ndarray | None
    description: str


def camera_odometry(bag: RecordedBag, odom_topic: str, camera_frame: str) -> CameraMotion:
    """The camera's motion from ``odom_topic`` and the bag's ``/tf_static`` mount.

    Args:
        bag: the bag.
        odom_topic: a ``nav_msgs/Odometry`` topic (its ``child_frame_id`` is the base).
        camera_frame: the images' ``header.frame_id`` (e.g. ``camera_optical_frame``).

    Raises:
        UserError: the topic is missing, of another type, or has fewer than two messages.
    """
    require_topic(bag, odom_topic, (ODOMETRY_TYPE,), "--odom-topic")
    rows, base_frame = [], None
    for message in bag.messages([odom_topic]):
        odometry = message.deserialize()
        base_frame = base_frame or odometry.child_frame_id.lstrip("/")
        pose, velocity = odometry.pose.pose, odometry.twist.twist.linear
        q = pose.orientation
        rotation = quaternion_matrix(q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (0, 0, 0, 0) else np.eye(3)
        rows.append((header_stamp_ns(message.data) / 1e9, (pose.position.x, pose.position.y, pose.position.z),
                     rotation, float(np.linalg.norm([velocity.x, velocity.y, velocity.z]))))
    if len(rows) < 2:
        raise UserError(f"odometry topic {odom_topic} in {str(bag.path)!r} has {len(rows)} messages; need at least 2")
    rows.sort(key=lambda row: row[0])
    times = np.array([row[0] for row in rows])
    positions = np.array([row[1] for row in rows], dtype=np.float64)
    speeds = np.array([row[3] for row in rows])
    base_track = OdometryTrack(times=times, positions=positions, speeds=speeds)
    mount = chain_transform(read_static_transforms(bag), camera_frame, base_frame or "")
    if mount is None:
        missing = (f"no {TF_STATIC_TOPIC}" if TF_STATIC_TOPIC not in bag.topics
                   else f"no {TF_STATIC_TOPIC} chain {base_frame} -> {camera_frame}")
        return CameraMotion(base_track, None, f"{missing} in the bag: the camera is assumed to move as "
                                              f"{base_frame or odom_topic} does (its lever arm is neglected)")
    offset = mount[:3, 3].copy()
    track = CameraOdometryTrack(times=times, positions=positions, speeds=speeds,
                                orientations=np.stack([row[2] for row in rows]), camera_offset=offset)
    return CameraMotion(track, offset, f"camera motion: {odom_topic} ({base_frame}) with the /tf_static mount "
                                       f"{base_frame} -> {camera_frame}, optical centre at "
                                       f"({offset[0]:.3g}, {offset[1]:.3g}, {offset[2]:.3g}) m")


BASE_FRAMES = ("base_footprint", "base_link")
"""Frames a camera's static mount is looked up on for the floor's direction: REP 105's robot
base, whose z axis is up (normal to the floor the robot stands on)."""


def floor_normal(bag: RecordedBag, camera_frame: str) -> tuple[np.ndarray | None, str]:
    """The floor's unit normal in the camera's optical frame, from the bag's ``/tf_static``.

    Args:
        bag: the bag.
        camera_frame: the images' ``header.frame_id`` (x right, y down, z forward).

    Returns:
        ``(normal, description)``: float64 ``(3,)`` pointing from the camera to the floor,
        or ``None`` when no static chain joins ``camera_frame`` to one of
        :data:`BASE_FRAMES` (or it puts the floor above the camera); one line for logs.
    """
    transforms = read_static_transforms(bag)
    for base in BASE_FRAMES:
        mount = chain_transform(transforms, camera_frame, base)
        if mount is None:
            continue
        normal = mount[:3, :3].T @ np.array([0.0, 0.0, -1.0])  # the base's down axis, in camera axes
        tilt = math.degrees(math.acos(float(np.clip(normal[1], -1.0, 1.0))))
        if normal[1] <= 0:
            return None, (f"/tf_static puts the floor of {base} above {camera_frame} ({tilt:.0f} degrees from the "
                          "camera's down axis): the floor's tilt is fitted in each frame")
        return normal, (f"floor normal from the /tf_static mount {base} -> {camera_frame}: {tilt:.1f} degrees from "
                        "the camera's down axis")
    return None, (f"no /tf_static chain from {' or '.join(BASE_FRAMES)} to {camera_frame or 'the images frame'}: "
                  "the floor's tilt is fitted in each frame")


def image_frame_id(bag: RecordedBag, image_topic: str) -> str:
    """The ``header.frame_id`` of the first message of ``image_topic`` ("" when it is empty)."""
    for message in bag.messages([image_topic]):
        return message.deserialize().header.frame_id.lstrip("/")
    return ""
