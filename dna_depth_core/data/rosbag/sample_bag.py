"""Writing ROS 2 bags without a ROS install: a small camera-bag writer and the sample bag.

:class:`CameraBagWriter` writes camera images (raw in any encoding, or JPEG/PNG
compressed), camera info, odometry, transforms and depth images with proper headers to a
new rosbag2 bag (sqlite3 ``.db3`` or ``.mcap``) through ``rosbags``. :func:`make_sample_bag`
renders a synthetic sequence and records it like a robot would. The street and corridor
styles (:mod:`dna_depth_core.data.synthetic`, :func:`write_synthetic_bag`):

======================================  ==================================================
``/camera/image_raw``                   ``sensor_msgs/Image`` rgb8
``/camera/image_raw/compressed``        ``sensor_msgs/CompressedImage`` jpeg
``/camera/camera_info``                 ``sensor_msgs/CameraInfo`` plumb_bob, zero distortion
``/odom``                               ``nav_msgs/Odometry`` camera motion, with twist
``/camera/depth_gt``                    ``sensor_msgs/Image`` 32FC1 metres, NaN where unknown
======================================  ==================================================

Image headers carry the render time and ``camera_optical_frame``; odometry is in
``odom`` (x forward, y left, z up, REP 103) for a ``base_link`` placed at the camera.

The ground-robot style (:mod:`dna_depth_core.data.synthetic.robot`, :func:`write_robot_bag`)
records what a wheeled robot with a wide-angle camera records:

======================================  ==================================================
``/camera/image_raw``                   ``sensor_msgs/Image`` rgb8, raw: *distorted*
``/camera/image_raw/compressed``        ``sensor_msgs/CompressedImage`` jpeg of the same
``/camera/camera_info``                 ``sensor_msgs/CameraInfo`` plumb_bob, D non-zero,
                                        K of the raw camera, R = I, P = K
``/camera/depth_gt``                    ``sensor_msgs/Image`` 32FC1 metres in the
                                        *rectified* geometry (P), exact
``/camera/depth_gt_raw``                ``sensor_msgs/Image`` 32FC1 metres in the raw
                                        geometry (nearest rectified ray, for overlays)
``/odom``                               ``nav_msgs/Odometry`` of ``base_link`` (on the
                                        floor), from the identity at the first frame
``/tf``                                 ``tf2_msgs/TFMessage`` ``odom`` -> ``base_link``
``/tf_static``                          ``tf2_msgs/TFMessage`` (transient local, once):
                                        ``base_link`` -> ``camera_link`` (the mount: ahead,
                                        up, pitched down) -> ``camera_optical_frame``
======================================  ==================================================

Evaluate predictions against ``/camera/depth_gt`` after rectifying the raw frames with the
camera info (as the project's preparation does): both are then P's pinhole image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from tqdm import tqdm

from dna_depth_core.errors import UserError

from dna_depth_core.data.camera.encodings import COMPRESSED_FORMATS, ENCODINGS

from .messages import CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, ODOMETRY_TYPE, TYPESTORE

CAMERA_FRAME = "camera_optical_frame"
CAMERA_LINK_FRAME = "camera_link"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
TF_TYPE = "tf2_msgs/msg/TFMessage"
SAMPLE_START_TIME = 1_700_000_000.0
"""Epoch seconds of the sample bag's first frame (fixed, so the same seed gives the same bag)."""

STORAGE_FORMATS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

# Synthetic world (x right, y down, z forward) -> odom (x forward, y left, z up); its
# transpose maps base_link (x forward, y left, z up) axes to the optical frame's.
_WORLD_TO_ODOM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

_NO_TIME = QosTime(sec=0, nsec=0)
_LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, _NO_TIME, _NO_TIME,
               QosLiveliness.AUTOMATIC, _NO_TIME, False)
"""The QoS ``/tf_static`` is published with (``ros2 bag play`` offers it again to late joiners)."""

_RAW_CHANNELS = {name: layout.channels for name, layout in ENCODINGS.items()} | {"32FC1": 1}
"""Channels of every encoding :meth:`CameraBagWriter.write_image` writes: the camera
encodings the reader and the node decode, plus depth (32FC1, ground truth)."""


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

    def write_message(self, topic: str, msgtype: str, message, stamp: float, qos: tuple[Qos, ...] = ()) -> None:
        """Any message built from :data:`~dna_depth_core.data.rosbag.messages.TYPESTORE` types, recorded
        at ``stamp`` seconds since the epoch; ``qos``: the offered QoS recorded with a new topic."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=qos
            )
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
        if image_format not in COMPRESSED_FORMATS:
            raise ValueError(f"image_format must be one of {COMPRESSED_FORMATS}, got {image_format!r}")
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


    def write_transforms(
        self, topic: str, stamp: float, transforms: list[tuple[str, str, np.ndarray]], static: bool = False
    ) -> None:
        """A ``tf2_msgs/TFMessage`` of ``(parent frame, child frame, (4, 4) child-to-parent
        transform in metres)`` entries, all stamped ``stamp``; ``static``: recorded with
        ``/tf_static``'s transient-local QoS."""
        types = _types()
        entries = []
        for parent, child, transform in transforms:
            translation, rotation = transform[:3, 3], quaternion_xyzw(transform[:3, :3])
            entries.append(types["geometry_msgs/msg/TransformStamped"](
                header=_header(stamp, parent), child_frame_id=child,
                transform=types["geometry_msgs/msg/Transform"](
                    translation=types["geometry_msgs/msg/Vector3"](*(float(v) for v in translation)),
                    rotation=types["geometry_msgs/msg/Quaternion"](*(float(v) for v in rotation)),
                ),
            ))
        self.write_message(topic, TF_TYPE, types[TF_TYPE](transforms=entries), stamp, (_LATCHED,) if static else ())


def odometry_from_poses(poses: np.ndarray, timestamps: np.ndarray) -> dict[str, np.ndarray]:
    """Odometry of a ``base_link`` from body-to-world poses in the generator's axes.

    Args:
        poses: ``(N, 4, 4)`` body-to-world transforms, both frames with the synthetic
            generator's axes (x right, y down, z forward); the street's camera poses, or
            a robot's base poses.
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
    odometry = odometry_from_poses(sequence.poses, sequence.timestamps)
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


def robot_transforms(sequence) -> dict[str, np.ndarray]:
    """The frames of a :class:`~dna_depth_core.data.synthetic.robot.RobotSequence` in ROS terms.

    Returns:
        ``base_to_camera_link`` and ``camera_link_to_optical``: float64 ``(4, 4)``
        child-to-parent transforms of ``/tf_static`` (REP 103 axes: ``camera_link`` x
        forward, y left, z up; the optical frame x right, y down, z forward); and
        ``base_poses``: ``(N, 4, 4)`` ``base_link`` poses relative to the first frame's,
        in the generator's axes (the ``odom`` frame starts at the robot), and
        ``odom_poses``: the same as ``base_link``-to-``odom`` transforms in REP 103 axes.
    """
    to_ros = np.eye(4)
    to_ros[:3, :3] = _WORLD_TO_ODOM
    # The optical frame has the generator's camera axes, so the mount maps it to base_link
    # once base_link's axes are turned to REP 103.
    base_to_optical = to_ros @ sequence.camera_mount
    link_to_optical = to_ros.copy()  # optical z = link x, optical x = -link y, optical y = -link z
    base_to_link = base_to_optical @ np.linalg.inv(link_to_optical)
    base_poses = np.linalg.inv(sequence.base_poses[0]) @ sequence.base_poses
    return {
        "base_to_camera_link": base_to_link,
        "camera_link_to_optical": link_to_optical,
        "base_poses": base_poses,
        "odom_poses": to_ros @ base_poses @ to_ros.T,
    }


def write_robot_bag(
    path: str | Path,
    sequence,
    storage: str = "sqlite3",
    start_time: float = SAMPLE_START_TIME,
    progress: bool = False,
) -> Path:
    """Record a :class:`~dna_depth_core.data.synthetic.robot.RobotSequence` as a bag with the
    ground-robot topics of the module docstring; frame ``i`` is stamped
    ``start_time + timestamps[i]``.

    Returns:
        The bag folder.
    """
    frames = robot_transforms(sequence)
    odometry = odometry_from_poses(frames["base_poses"], sequence.timestamps)
    calibration = sequence.calibration
    height, width = sequence.raw_images.shape[1:3]
    with CameraBagWriter(path, storage) as writer:
        writer.write_transforms("/tf_static", start_time, [
            (BASE_FRAME, CAMERA_LINK_FRAME, frames["base_to_camera_link"]),
            (CAMERA_LINK_FRAME, CAMERA_FRAME, frames["camera_link_to_optical"]),
        ], static=True)
        for index in tqdm(range(len(sequence.raw_images)), desc="writing bag", unit="frame", disable=not progress):
            stamp = start_time + float(sequence.timestamps[index])
            image = sequence.raw_images[index]
            writer.write_camera_info(
                "/camera/camera_info", stamp, height, width, calibration.camera_matrix, calibration.distortion_model,
                calibration.distortion, calibration.projection[:, :3],
            )
            writer.write_image("/camera/image_raw", stamp, image, "rgb8")
            writer.write_compressed_image("/camera/image_raw/compressed", stamp, image, "jpeg")
            for topic, depth in (("/camera/depth_gt", sequence.depths), ("/camera/depth_gt_raw", sequence.raw_depths)):
                writer.write_image(topic, stamp, np.where(depth[index] > 0, depth[index], np.nan).astype(np.float32),
                                   "32FC1")
            writer.write_transforms("/tf", stamp, [(ODOM_FRAME, BASE_FRAME, frames["odom_poses"][index])])
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
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    progress: bool = True,
    camera_height: float | None = None,
    horizontal_fov_deg: float | None = None,
    distortion: bool | None = None,
) -> Path:
    """Render ``frames`` synthetic frames of ``style`` at 10 Hz and record them as a bag.

    Args:
        path: bag folder to create.
        storage: ``"sqlite3"`` or ``"mcap"``.
        style: a style of :data:`dna_depth_core.data.synthetic.STYLES`.
        frames: number of frames.
        height, width: image size in pixels; ``None``: the style's (640x192 for street
            and corridor, 640x480 for robot and warehouse).
        seed: scene seed.
        progress: print progress.
        camera_height, horizontal_fov_deg, distortion: the camera, as
            :func:`~dna_depth_core.data.synthetic.scene_config` takes them
            (``None``: the style's).

    Raises:
        UserError: the path exists, or invalid style/size/frame count/camera.
    """
    from dna_depth_core.data.synthetic import GROUND_ROBOT_STYLES, generate_sequence, scene_config

    if Path(path).exists():
        raise UserError(f"{str(path)!r} exists already; choose a new bag path or delete it")
    default_height, default_width = (480, 640) if style in GROUND_ROBOT_STYLES else (192, 640)
    height, width = height or default_height, width or default_width
    try:
        config = scene_config(style, height, width, frames_per_sequence=frames, camera_height=camera_height,
                              horizontal_fov_deg=horizontal_fov_deg, distortion=distortion)
    except ValueError as error:
        raise UserError(str(error)) from None
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if progress:
        print(f"rendering {frames} {style} frames of {width}x{height} ...", flush=True)
    sequence = generate_sequence(config, seed)
    write = write_robot_bag if style in GROUND_ROBOT_STYLES else write_synthetic_bag
    return write(path, sequence, storage, progress=progress)
