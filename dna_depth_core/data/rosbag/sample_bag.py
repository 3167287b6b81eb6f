"""Writing ROS 2 bags without a ROS install: a small camera-bag writer and the sample bag.

:class:`CameraBagWriter` writes camera images (raw in any encoding, or JPEG/PNG
compressed), camera info, odometry and depth images with proper headers to a new
rosbag2 bag (sqlite3 ``.db3`` or ``.mcap``) through ``rosbags``. :func:`make_sample_bag`
renders a synthetic sequence (:mod:`dna_depth_core.data.synthetic`) and records it like a
robot would:

======================================  ==================================================
``/camera/image_raw``                   ``sensor_msgs/Image`` rgb8
``/camera/image_raw/compressed``        ``sensor_msgs/CompressedImage`` jpeg
``/camera/camera_info``                 ``sensor_msgs/CameraInfo`` plumb_bob, zero distortion
``/odom``                               ``nav_msgs/Odometry`` camera motion, with twist
``/camera/depth_gt``                    ``sensor_msgs/Image`` 32FC1 metres, NaN where unknown
======================================  ==================================================

Image headers carry the render time and ``camera_optical_frame``; odometry is in
``odom`` (x forward, y left, z up, REP 103) for a ``base_link`` placed at the camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from tqdm import tqdm

from dna_depth_core.errors import UserError

from .reader import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, ODOMETRY_TYPE, TYPESTORE

CAMERA_FRAME = "camera_optical_frame"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
SAMPLE_START_TIME = 1_700_000_000.0
"""Epoch seconds of the sample bag's first frame (fixed, so the same seed gives the same bag)."""

STORAGE_FORMATS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

# Synthetic world (x right, y down, z forward) -> odom (x forward, y left, z up); its
# transpose maps base_link (x forward, y left, z up) axes to the optical frame's.
_WORLD_TO_ODOM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

_RAW_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
                 "rgb16": 3, "bgr16": 3, "rgba16": 4, "bgra16": 4, "mono16": 1, "32FC1": 1}


def _types():
    return TYPESTORE.types


def _header(stamp: float, frame_id: str):
    types = _types()
    seconds = int(np.floor(stamp))
    nanoseconds = min(int(round((stamp - seconds) * 1e9)), 999_999_999)
    time = types["builtin_interfaces/msg/Time"](sec=seconds, nanosec=nanoseconds)
    return types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)`` with ``w >= 0`` of a ``(3, 3)`` rotation matrix."""
    axis_angle, _ = cv2.Rodrigues(np.asarray(rotation, dtype=np.float64))
    angle = float(np.linalg.norm(axis_angle))
    axis = axis_angle[:, 0] / angle if angle > 0 else np.zeros(3)
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


class CameraBagWriter:
    """Writes camera data to a new ROS 2 bag; use as a context manager.

    Args:
        path: bag folder to create (must not exist).
        storage: ``"sqlite3"`` (``.db3``) or ``"mcap"``.

    Raises:
        UserError: ``path`` exists or ``storage`` is unknown.
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        if storage not in STORAGE_FORMATS:
            raise UserError(f"bag format must be one of {sorted(STORAGE_FORMATS)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise UserError(f"{str(self.path)!r} exists already; choose a new bag path or delete it")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGE_FORMATS[storage])
        self._connections = {}

    def __enter__(self) -> CameraBagWriter:
        try:
            self._writer.open()
        except WriterError as error:
            raise UserError(f"cannot create bag {str(self.path)!r}: {error}") from None
        return self

    def __exit__(self, *exc_info) -> None:
        self._writer.close()

    def write_message(self, topic: str, msgtype: str, message, stamp: float) -> None:
        """Any message built from :data:`~dna_depth_core.data.rosbag.reader.TYPESTORE` types, recorded
        at ``stamp`` seconds since the epoch."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        data = TYPESTORE.serialize_cdr(message, msgtype)
        self._writer.write(self._connections[topic], int(round(stamp * 1e9)), data)

    def write_image(
        self,
        topic: str,
        stamp: float,
        pixels: np.ndarray,
        encoding: str,
        frame_id: str = CAMERA_FRAME,
        is_bigendian: bool = False,
        row_padding: int = 0,
    ) -> None:
        """A ``sensor_msgs/Image`` holding ``pixels`` as they are.

        Args:
            topic: topic name.
            stamp: header stamp in seconds since the epoch (also the recording time).
            pixels: ``(H, W)`` or ``(H, W, C)`` array already in ``encoding``'s channel
                order and type (uint8, uint16 or float32).
            encoding: REP 104 encoding name written to the message.
            frame_id: header frame.
            is_bigendian: store multi-byte values big-endian.
            row_padding: extra bytes at the end of each row (``step`` > row size).
        """
        if encoding not in _RAW_CHANNELS:
            raise ValueError(f"encoding must be one of {sorted(_RAW_CHANNELS)}, got {encoding!r}")
        pixels = np.asarray(pixels)
        height, width = pixels.shape[:2]
        if pixels.size != height * width * _RAW_CHANNELS[encoding]:
            raise ValueError(f"{encoding} needs {_RAW_CHANNELS[encoding]} channels, got pixels of shape {pixels.shape}")
        values = pixels.astype(pixels.dtype.newbyteorder(">" if is_bigendian else "<"))
        rows = values.reshape(height, -1).view(np.uint8)
        if row_padding:
            rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
        message = _types()[IMAGE_TYPE](
            header=_header(stamp, frame_id), height=height, width=width, encoding=encoding,
            is_bigendian=int(is_bigendian), step=rows.shape[1], data=np.ascontiguousarray(rows).reshape(-1),
        )
        self.write_message(topic, IMAGE_TYPE, message, stamp)

    def write_compressed_image(
        self, topic: str, stamp: float, rgb: np.ndarray, image_format: str = "jpeg", frame_id: str = CAMERA_FRAME
    ) -> None:
        """A ``sensor_msgs/CompressedImage`` of uint8 ``(H, W, 3)`` RGB, as image_transport's
        compressed plugin writes it (``format`` ``"rgb8; jpeg compressed bgr8"``)."""
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
        ok, encoded = cv2.imencode(".jpg" if image_format == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {image_format}")
        message = _types()[COMPRESSED_IMAGE_TYPE](
            header=_header(stamp, frame_id), format=f"rgb8; {image_format} compressed bgr8", data=encoded.reshape(-1)
        )
        self.write_message(topic, COMPRESSED_IMAGE_TYPE, message, stamp)

    def write_camera_info(
        self,
        topic: str,
        stamp: float,
        height: int,
        width: int,
        camera_matrix: np.ndarray,
        distortion_model: str = "plumb_bob",
        distortion: np.ndarray | None = None,
        projection: np.ndarray | None = None,
        frame_id: str = CAMERA_FRAME,
    ) -> None:
        """A ``sensor_msgs/CameraInfo``: K = ``camera_matrix`` (3, 3) pixels, D =
        ``distortion`` (zeros(5) by default), R = identity, P = ``[projection | 0]`` with
        ``projection`` defaulting to K."""
        types = _types()
        camera_matrix = np.asarray(camera_matrix, dtype=np.float64).reshape(3, 3)
        projection = camera_matrix if projection is None else np.asarray(projection, dtype=np.float64).reshape(3, 3)
        message = types[CAMERA_INFO_TYPE](
            header=_header(stamp, frame_id), height=height, width=width, distortion_model=distortion_model,
            d=np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64),
            k=camera_matrix.reshape(-1), r=np.eye(3).reshape(-1),
            p=np.concatenate([projection, np.zeros((3, 1))], axis=1).reshape(-1),
            binning_x=0, binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        self.write_message(topic, CAMERA_INFO_TYPE, message, stamp)

    def write_odometry(
        self,
        topic: str,
        stamp: float,
        position: np.ndarray,
        orientation: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        frame_id: str = ODOM_FRAME,
        child_frame_id: str = BASE_FRAME,
    ) -> None:
        """A ``nav_msgs/Odometry``: pose (position m, quaternion xyzw) in ``frame_id``,
        twist (m/s, rad/s) in ``child_frame_id``; covariances zero."""
        types = _types()
        vector = types["geometry_msgs/msg/Vector3"]
        point = types["geometry_msgs/msg/Point"](x=float(position[0]), y=float(position[1]), z=float(position[2]))
        quaternion = types["geometry_msgs/msg/Quaternion"](*(float(value) for value in orientation))
        message = types[ODOMETRY_TYPE](
            header=_header(stamp, frame_id),
            child_frame_id=child_frame_id,
            pose=types["geometry_msgs/msg/PoseWithCovariance"](
                pose=types["geometry_msgs/msg/Pose"](position=point, orientation=quaternion), covariance=np.zeros(36)
            ),
            twist=types["geometry_msgs/msg/TwistWithCovariance"](
                twist=types["geometry_msgs/msg/Twist"](
                    linear=vector(*(float(v) for v in linear_velocity)),
                    angular=vector(*(float(v) for v in angular_velocity)),
                ),
                covariance=np.zeros(36),
            ),
        )
        self.write_message(topic, ODOMETRY_TYPE, message, stamp)


def odometry_from_camera_poses(poses: np.ndarray, timestamps: np.ndarray) -> dict[str, np.ndarray]:
    """Odometry of a ``base_link`` at the camera from synthetic camera-to-world poses.

    Args:
        poses: ``(N, 4, 4)`` camera-to-world transforms in the synthetic world frame.
        timestamps: ``(N,)`` seconds, increasing.

    Returns:
        ``positions`` ``(N, 3)`` m and ``orientations`` ``(N, 4)`` xyzw in ``odom``;
        ``linear`` ``(N, 3)`` m/s and ``angular`` ``(N, 3)`` rad/s in ``base_link``
        (central differences; one-sided at the ends).
    """
    poses = np.asarray(poses, dtype=np.float64)
    rotations = _WORLD_TO_ODOM @ poses[:, :3, :3] @ _WORLD_TO_ODOM.T
    positions = poses[:, :3, 3] @ _WORLD_TO_ODOM.T
    world_velocity = np.gradient(positions, timestamps, axis=0)
    linear = np.einsum("nji,nj->ni", rotations, world_velocity)
    angular = np.zeros_like(linear)
    for index in range(len(poses)):
        before, after = max(index - 1, 0), min(index + 1, len(poses) - 1)
        relative, _ = cv2.Rodrigues(rotations[before].T @ rotations[after])
        angular[index] = relative[:, 0] / (timestamps[after] - timestamps[before])
    orientations = np.stack([quaternion_xyzw(rotation) for rotation in rotations])
    return {"positions": positions, "orientations": orientations, "linear": linear, "angular": angular}


def write_synthetic_bag(
    path: str | Path,
    sequence,
    storage: str = "sqlite3",
    start_time: float = SAMPLE_START_TIME,
    progress: bool = False,
) -> Path:
    """Record a :class:`~dna_depth_core.data.synthetic.SyntheticSequence` as a bag with the
    five topics of the module docstring; frame ``i`` is stamped ``start_time + timestamps[i]``.

    Returns:
        The bag folder.
    """
    odometry = odometry_from_camera_poses(sequence.poses, sequence.timestamps)
    height, width = sequence.images.shape[1:3]
    with CameraBagWriter(path, storage) as writer:
        for index in tqdm(range(len(sequence.images)), desc="writing bag", unit="frame", disable=not progress):
            stamp = start_time + float(sequence.timestamps[index])
            image = sequence.images[index]
            writer.write_camera_info("/camera/camera_info", stamp, height, width, sequence.intrinsics)
            writer.write_image("/camera/image_raw", stamp, image, "rgb8")
            writer.write_compressed_image("/camera/image_raw/compressed", stamp, image, "jpeg")
            depth = np.where(sequence.depths[index] > 0, sequence.depths[index], np.nan).astype(np.float32)
            writer.write_image("/camera/depth_gt", stamp, depth, "32FC1")
            writer.write_odometry(
                "/odom", stamp, odometry["positions"][index], odometry["orientations"][index],
                odometry["linear"][index], odometry["angular"][index],
            )
    return Path(path)


def make_sample_bag(
    path: str | Path,
    storage: str = "sqlite3",
    style: str = "street",
    frames: int = 60,
    height: int = 192,
    width: int = 640,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Render ``frames`` synthetic frames of ``style`` at 10 Hz and record them as a bag.

    Raises:
        UserError: the path exists, or invalid style/size/frame count.
    """
    from dna_depth_core.data.synthetic import SyntheticSceneConfig, generate_sequence

    if Path(path).exists():
        raise UserError(f"{str(path)!r} exists already; choose a new bag path or delete it")
    try:
        config = SyntheticSceneConfig(style=style, height=height, width=width, frames_per_sequence=frames)
    except ValueError as error:
        raise UserError(str(error)) from None
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if progress:
        print(f"rendering {frames} {style} frames of {width}x{height} ...", flush=True)
    sequence = generate_sequence(config, seed)
    return write_synthetic_bag(path, sequence, storage, progress=progress)
