"""The ground-robot synthetic style: a wheeled robot's camera driving through furnished rooms.

A differential-drive robot follows the route of a random indoor floor plan
(:mod:`.rooms`): forward through rooms and corridors, turning
through doorways, slowing down in the turns, passing tables, chairs, cartons and door
jambs at 0.3 m and more. Its camera is mounted ``camera_height`` above the floor (0.5 m),
``camera_forward`` ahead of ``base_link`` and pitched down ``camera_pitch_deg``, and sees
through a plumb_bob lens (:mod:`.lens`): a 640 x 480 camera
with 90 degrees of pinhole field of view and barrel distortion by default. The motion is
planar and exact, so odometry, the static mount and the camera poses agree exactly.

What a frame holds (see :class:`RobotSequence`):

- the *raw* frame, distorted as the camera driver publishes it (``raw_images``);
- the *rectified* frame, what a consumer gets by rectifying the raw frame with the camera
  info (K, D, R = I, P = K) through the project's preparation
  (:func:`~dna_depth_core.data.camera.preparation.plan_training_frames`) (``images``);
- depth in the rectified geometry (``depths``), exact for every pixel (the renderer casts
  exactly those rays): the ground truth to evaluate rectified predictions against;
- depth in the raw geometry (``raw_depths``), the depth of the rectified-canvas ray
  nearest each raw pixel's ray (within half a pixel): for overlays on raw frames.

With ``distortion`` all zero the camera is an ideal pinhole and raw and rectified agree.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from dna_depth_core.config import ConfigError

from ..camera.calibration import CameraCalibration
from ..camera.preparation import plan_training_frames
from .config import SyntheticSequence, check_frames
from .lens import PlumbBobLens, pinhole_matrix
from .renderer import _render
from .room_layout import route_samples
from .rooms import FloorPlan, build_floor_plan
from .trajectory import _rotation

ROBOT_STYLE = "robot"
"""Style name of the ground-robot scenes (``--style robot``, ``data.synthetic.style: robot``)."""

DEFAULT_DISTORTION = (-0.28, 0.07, 8e-4, -5e-4, 0.0)
"""plumb_bob ``k1, k2, p1, p2, k3`` of the default robot camera: a wide-angle lens with
strong barrel distortion (its raw image spans about 108 degrees across at a 90-degree
pinhole field of view)."""

_ROUTE_MARGIN = 6.0
"""Metres of route generated beyond the distance driven, so the drive can start anywhere
before the first turn."""


@dataclass
class RobotSceneConfig:
    """How ground-robot sequences look and how the robot and its camera move.

    Attributes:
        height: image height in pixels (480).
        width: image width in pixels (640).
        frames_per_sequence: frames rendered per sequence (30; at least 3).
        fps: frame rate in Hz; timestamps are ``i / fps`` seconds (10).
        speed: cruising speed of the robot in m/s on straight stretches (1.0; it slows
            to about 60 % in turns). Driven distance per sequence at most 100 m.
        camera_height: height of the camera's optical centre above the floor in metres
            (0.5).
        camera_forward: metres from ``base_link`` (on the floor, at the robot's centre of
            rotation) forwards to the camera (0.15).
        camera_pitch_deg: downward tilt of the optical axis in degrees (5).
        horizontal_fov_deg: horizontal field of view of the pinhole matrix K (also the
            rectified camera P) in degrees (90); square pixels, ``fx = fy``.
        cx_ratio: principal point column as a fraction of the width (0.505).
        cy_ratio: principal point row as a fraction of the height (0.49).
        distortion: plumb_bob ``(k1, k2, p1, p2, k3)`` of the lens
            (:data:`DEFAULT_DISTORTION`); all zeros for an ideal pinhole camera.
    """

    height: int = 480
    width: int = 640
    frames_per_sequence: int = 30
    fps: float = 10.0
    speed: float = 1.0
    camera_height: float = 0.5
    camera_forward: float = 0.15
    camera_pitch_deg: float = 5.0
    horizontal_fov_deg: float = 90.0
    cx_ratio: float = 0.505
    cy_ratio: float = 0.49
    distortion: tuple[float, float, float, float, float] = DEFAULT_DISTORTION

    def __post_init__(self) -> None:
        self.distortion = tuple(float(value) for value in self.distortion)
        if len(self.distortion) != 5:
            raise ConfigError(f"distortion must be the 5 plumb_bob coefficients k1 k2 p1 p2 k3, got {self.distortion}")
        check_frames(self.height, self.width, self.frames_per_sequence, self.fps)
        if not 0 < self.speed <= 3:
            raise ConfigError(f"speed must be in (0, 3] m/s for a ground robot indoors, got {self.speed}")
        if self.speed * (self.frames_per_sequence - 1) / self.fps > 100:
            raise ConfigError("a sequence may drive at most 100 m: fewer frames_per_sequence, a lower speed or more fps")
        if not 0.1 <= self.camera_height <= 2.0:
            raise ConfigError(f"camera_height must be in [0.1, 2.0] m (below the ceiling), got {self.camera_height}")
        if not 0 <= self.camera_forward <= 0.5:
            raise ConfigError(f"camera_forward must be in [0, 0.5] m, got {self.camera_forward}")
        if not -30 <= self.camera_pitch_deg <= 30:
            raise ConfigError(f"camera_pitch_deg must be in [-30, 30] degrees, got {self.camera_pitch_deg}")
        if not 30 <= self.horizontal_fov_deg <= 130:
            raise ConfigError(f"horizontal_fov_deg must be in [30, 130] degrees, got {self.horizontal_fov_deg}")
        if not (0.3 <= self.cx_ratio <= 0.7 and 0.3 <= self.cy_ratio <= 0.7):
            raise ConfigError(f"cx_ratio and cy_ratio must be in [0.3, 0.7], got {self.cx_ratio} and {self.cy_ratio}")
        self.lens()  # raises ValueError for a lens that cannot be rendered

    @property
    def style(self) -> str:
        """Always :data:`ROBOT_STYLE`."""
        return ROBOT_STYLE

    def camera_matrix(self) -> np.ndarray:
        """float64 ``(3, 3)`` K of the raw camera in pixels (also P, the rectified camera)."""
        return pinhole_matrix(self.height, self.width, self.horizontal_fov_deg, self.cx_ratio, self.cy_ratio)

    def intrinsics(self) -> np.ndarray:
        """float32 ``(3, 3)`` pinhole matrix of the rectified frames and depths (P = K)."""
        return self.camera_matrix().astype(np.float32)

    def calibration(self) -> CameraCalibration:
        """What the camera's ``sensor_msgs/CameraInfo`` says: plumb_bob K and D, R = I, P = K."""
        return CameraCalibration(
            width=self.width, height=self.height, camera_matrix=self.camera_matrix(), distortion_model="plumb_bob",
            distortion=np.asarray(self.distortion), source="synthetic robot camera",
        )

    def lens(self) -> PlumbBobLens:
        """The camera's lens model (cached: it inverts the distortion at every pixel)."""
        return _lens(self.height, self.width, tuple(self.camera_matrix().ravel()), self.distortion)

    def floor_plan(self, rng: np.random.Generator, route_length: float, seed: int) -> FloorPlan:
        """The world the robot drives through, with a route of at least ``route_length``
        metres: a random furnished floor plan (:func:`~.rooms.build_floor_plan`); styles
        that share the robot's camera and motion in another world override it."""
        return build_floor_plan(rng, route_length, seed)

    def camera_mount(self) -> np.ndarray:
        """float64 ``(4, 4)`` camera-to-``base_link`` transform, both in the generator's
        axes (x right, y down, z forward; ``base_link`` on the floor)."""
        mount = np.eye(4)
        # The generator's pitch turns the optical axis up (towards -y) when positive.
        mount[:3, :3] = _rotation(0.0, -math.radians(self.camera_pitch_deg), 0.0)
        mount[:3, 3] = (0.0, -self.camera_height, self.camera_forward)
        return mount


@functools.lru_cache(maxsize=8)
def _lens(height: int, width: int, camera_matrix: tuple[float, ...], distortion: tuple[float, ...]) -> PlumbBobLens:
    return PlumbBobLens(height, width, np.reshape(camera_matrix, (3, 3)), np.asarray(distortion))


@dataclass
class RobotSequence(SyntheticSequence):
    """One ground-robot sequence; the inherited fields are in the rectified geometry.

    Attributes:
        images: uint8 ``(N, H, W, 3)`` rectified frames (the raw frames rectified with
            the camera info; the ideal pinhole render when there is no distortion).
        depths: float32 ``(N, H, W)`` exact depth along the optical axis in metres for
            the rectified frames (intrinsics P); 0 where a rectified pixel sees past the
            raw image (never with barrel distortion).
        intrinsics: float32 ``(3, 3)`` P = K.
        poses: float32 ``(N, 4, 4)`` camera-to-world (``base_poses @ camera_mount``).
        timestamps: float64 ``(N,)`` seconds since the first frame.
        raw_images: uint8 ``(N, H, W, 3)`` distorted frames as the camera publishes them.
        raw_depths: float32 ``(N, H, W)`` depth for the raw pixels (nearest canvas ray).
        calibration: the camera info of the raw frames (plumb_bob K, D; R = I; P = K).
        base_poses: float64 ``(N, 4, 4)`` ``base_link``-to-world: planar, on the floor.
        camera_mount: float64 ``(4, 4)`` camera-to-``base_link``.
    """

    raw_images: np.ndarray
    raw_depths: np.ndarray
    calibration: CameraCalibration
    base_poses: np.ndarray
    camera_mount: np.ndarray


def _base_poses(rng: np.random.Generator, config: RobotSceneConfig, route: np.ndarray) -> np.ndarray:
    """float64 ``(N, 4, 4)`` ``base_link``-to-world poses at the frame times.

    The speed along the route is the cruising speed, +-8 % over a few metres, eased down
    to 60 % around the turns; the drive starts so that the first turn of 30 degrees or more
    falls in the middle part of the sequence when the route has one.
    """
    xy, heading, on_arc = route_samples(route)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    arc_length = np.concatenate([[0.0], np.cumsum(step)])
    # Ease in and out of turns over about a metre (samples are 1 cm apart).
    kernel = np.hanning(101)
    turning = np.convolve(on_arc.astype(np.float64), kernel / kernel.sum(), mode="same")
    variation = 1.0 + 0.08 * np.sin(2 * math.pi * arc_length / rng.uniform(3.0, 6.0) + rng.uniform(0, 2 * math.pi))
    speed = config.speed * variation * (1.0 - 0.4 * np.clip(turning * 2.0, 0.0, 1.0))
    time = np.concatenate([[0.0], np.cumsum(step / (0.5 * (speed[1:] + speed[:-1])))])
    duration = (config.frames_per_sequence - 1) / config.fps
    latest_start = time[-1] - duration - 0.05
    if latest_start < 0:
        raise RuntimeError(f"the floor plan's route is {arc_length[-1]:.1f} m long, too short for this drive")
    start = rng.uniform(0.0, latest_start)
    turns = _turn_middles(heading, on_arc)
    if len(turns):
        first_turn = time[turns[0]]
        start = float(np.clip(first_turn - rng.uniform(0.25, 0.6) * duration, 0.0, latest_start))
    times = start + np.arange(config.frames_per_sequence) / config.fps
    x, z, yaw = (np.interp(times, time, values) for values in (xy[:, 0], xy[:, 1], heading))
    poses = np.tile(np.eye(4), (len(times), 1, 1))
    for index in range(len(times)):
        poses[index, :3, :3] = _rotation(yaw[index], 0.0, 0.0)
        poses[index, :3, 3] = (x[index], 0.0, z[index])
    return poses


def _turn_middles(heading: np.ndarray, on_arc: np.ndarray, min_angle_deg: float = 30.0) -> np.ndarray:
    """Sample indices of the middles of the route's arcs that turn by ``min_angle_deg`` or more."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on_arc.astype(np.int8), [0]])))
    middles = [
        (start + end) // 2
        for start, end in zip(edges[::2], edges[1::2], strict=True)
        if abs(heading[end - 1] - heading[start]) >= math.radians(min_angle_deg)
    ]
    return np.asarray(middles, dtype=np.int64)


def generate_robot_sequence(config: RobotSceneConfig, seed: int) -> RobotSequence:
    """Render one ground-robot sequence of a new random floor plan (``config.floor_plan``:
    the robot's rooms, or another world such as the warehouse aisle of :mod:`.warehouse`).

    The floor plan, furniture, textures, light and route follow from ``seed``; the same
    config and seed give bit-identical arrays. The lens does not change the scene or the
    motion: the same seed with and without distortion gives the same drive.

    Args:
        config: camera, image size, frame count and motion.
        seed: non-negative integer.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng([seed, 7919])
    travel = config.speed * 1.1 * (config.frames_per_sequence - 1) / config.fps
    floor_plan = config.floor_plan(rng, travel + _ROUTE_MARGIN, seed)
    base_poses = _base_poses(rng, config, floor_plan.route)
    mount = config.camera_mount()
    poses = base_poses @ mount
    lens = config.lens()
    canvas_intrinsics = lens.canvas_intrinsics.astype(np.float32)
    count, height, width = config.frames_per_sequence, config.height, config.width
    images = np.empty((count, height, width, 3), np.uint8)
    depths = np.empty((count, height, width), np.float32)
    raw_images = np.empty_like(images)
    raw_depths = np.empty_like(depths)
    # Rectified frames are what the project's preparation makes of the raw ones.
    calibration = config.calibration()
    rectification = plan_training_frames((height, width), (height, width), calibration)
    if lens.is_distorted:
        map_x, map_y = rectification.rectify_maps
        seen_by_raw = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    for index in range(count):
        canvas_image, canvas_depth = _render(floor_plan.scene, poses[index], canvas_intrinsics, *lens.canvas_size)
        depths[index] = lens.rectified_window(canvas_depth)
        if lens.is_distorted:
            raw_images[index], raw_depths[index] = lens.distort(canvas_image, canvas_depth)
            images[index] = rectification.rectify(raw_images[index])
            depths[index][~seen_by_raw] = 0.0
        else:
            images[index] = raw_images[index] = canvas_image
            raw_depths[index] = canvas_depth
    return RobotSequence(
        images=images,
        depths=depths,
        intrinsics=config.intrinsics(),
        poses=poses.astype(np.float32),
        timestamps=np.arange(count, dtype=np.float64) / config.fps,
        raw_images=raw_images,
        raw_depths=raw_depths,
        calibration=calibration,
        base_poses=base_poses,
        camera_mount=mount,
    )
