"""A bag's camera frames decoded once at training size, and cached on disk.

For each bag, :func:`load_bag_frames` decodes the camera's frames once: sorted by header
stamp, subsampled to ``rate``, rectified, centre-cropped and resized to the training size
by the preparation contract the depth node applies too
(:func:`~dna_depth_core.data.camera.preparation.plan_training_frames`), and stored as one
``.npy`` array in a cache folder named after the bag files' identity (path, size, mtime),
the calibration and these settings; later epochs and later runs memory-map it instead of
decoding again. The training size defaults to one picked from the camera
(:func:`~dna_depth_core.data.camera.network_size.pick_network_size`), so a 4:3 or 16:9
camera keeps its field of view.

The camera's calibration and size come from the bag too (:func:`read_camera_calibration`,
:func:`camera_image_size`, :func:`with_training_size`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.camera.network_size import pick_network_size
from dna_depth_core.data.camera.preparation import FramePreparation, is_rectified_topic, plan_training_frames
from dna_depth_core.errors import UserError
from dna_depth_core.paths import cache_dir, current_umask

from .camera_info import read_calibration
from .images import CorruptImageError, decode_image
from .messages import header_stamp_ns
from .odometry import OdometryTrack
from .reader import RecordedBag
from .topics import CameraTopics, select_camera_topics

if TYPE_CHECKING:  # the dataset module imports this one to build its samples
    from .dataset import BagDataConfig

CACHE_FORMAT_VERSION = 4
"""Bumped whenever the cached arrays change meaning, so stale caches are not reused."""


def default_cache_dir() -> Path:
    """``bag_frames`` in the dna_depth cache (``~/.cache/dna_depth/bag_frames``; see
    :func:`dna_depth_core.paths.cache_dir`), or a temporary folder, with a warning, when
    that cannot be written."""
    return cache_dir("bag_frames")


@dataclass
class BagFrames:
    """One bag's decoded camera frames at training size.

    Attributes:
        bag_path: the bag as given.
        topics: the camera topics the frames came from.
        frames_path: ``.npy`` file of uint8 ``(N, H, W, 3)`` RGB frames, time-ordered.
        stamps: float64 ``(N,)`` header stamps in seconds.
        intrinsics: float32 ``(3, 3)`` pinhole matrix in pixels of the training frames.
        preparation: how the frames were made (what a checkpoint trained on them records).
        frame_period: nominal seconds between kept frames (``1 / rate``, or the camera's
            median period when that is longer).
        from_cache: whether the frames were found in the cache (nothing decoded).
        skipped_images: image messages that could not be decoded (skipped).
        odometry: the bag's odometry when an odometry topic is used.
    """

    bag_path: str
    topics: CameraTopics
    frames_path: Path
    stamps: np.ndarray
    intrinsics: np.ndarray
    preparation: FramePreparation
    frame_period: float
    from_cache: bool
    skipped_images: int = 0
    odometry: OdometryTrack | None = None
    _frames: np.ndarray | None = field(default=None, repr=False)

    @property
    def frames(self) -> np.ndarray:
        """uint8 ``(N, H, W, 3)`` frames, memory-mapped read-only (opened lazily per process)."""
        if self._frames is None:
            self._frames = np.load(self.frames_path, mmap_mode="r")
        return self._frames

    def __getstate__(self) -> dict:
        # Data-loader workers re-open the memory map instead of receiving a copy of it.
        return {**self.__dict__, "_frames": None}


def _cache_key(
    bag: RecordedBag, topics: CameraTopics, calibration: CameraCalibration, config: BagDataConfig
) -> str:
    settings = {
        "version": CACHE_FORMAT_VERSION,
        "files": bag.identity(),
        "image_topic": topics.image,
        "calibration": repr(calibration.key),
        "size": [config.height, config.width],
        "rate": config.rate,
        "undistort": config.undistort,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def _subsample(stamps: np.ndarray, rate: float) -> tuple[np.ndarray, float]:
    """Indices of the frames nearest to a ``rate`` Hz time grid, and the nominal period.

    Grid points with no frame within half a period (the camera dropped frames there)
    get none, which later shows up as a gap.
    """
    camera_period = float(np.median(np.diff(stamps))) if stamps.size > 1 else 0.0
    # A camera at (or within timing jitter of) the target rate keeps every frame.
    if rate <= 0 or 1.0 / rate <= 1.05 * camera_period:
        return np.arange(stamps.size), camera_period
    period = 1.0 / rate
    grid = stamps[0] + period * np.arange(int((stamps[-1] - stamps[0]) / period + 1e-3) + 1)
    right = np.clip(np.searchsorted(stamps, grid), 1, stamps.size - 1)
    nearest = np.where(grid - stamps[right - 1] <= stamps[right] - grid, right - 1, right)
    nearest = nearest[np.abs(stamps[nearest] - grid) <= period / 2]
    return np.unique(nearest), period


def _frame_stamps(bag: RecordedBag, image_topic: str) -> np.ndarray:
    """Stamp in ns of every image message, in storage order; the recording time replaces
    header stamps when the camera driver leaves them unset."""
    header, logged = [], []
    for message in bag.messages([image_topic]):
        header.append(header_stamp_ns(message.data))
        logged.append(message.log_time)
    if not header:
        raise UserError(f"image topic {image_topic} in {str(bag.path)!r} has no messages")
    if not any(header):
        warnings.warn(
            f"{image_topic} in {str(bag.path)!r} has no header stamps; ordering frames by recording time",
            stacklevel=3,
        )
        return np.array(logged, dtype=np.int64)
    return np.array(header, dtype=np.int64)


def read_camera_calibration(bag: RecordedBag, topics: CameraTopics, config: BagDataConfig) -> CameraCalibration:
    """The calibration of ``bag``'s camera: ``config.camera_info_file``, else its CameraInfo topic.

    Raises:
        CalibrationError: an unreadable file, or a topic without a usable camera info.
    """
    if config.camera_info_file is not None:
        return CameraCalibration.from_yaml(config.camera_info_file)
    return read_calibration(bag, topics.camera_info)


def camera_image_size(bag: RecordedBag, image_topic: str) -> tuple[int, int]:
    """``(height, width)`` of the first decodable image on ``image_topic``.

    Raises:
        UserError: no image of the topic can be decoded.
    """
    for message in bag.messages([image_topic]):
        try:
            return decode_image(message).shape[:2]
        except CorruptImageError:
            continue
    raise UserError(f"no frame of {image_topic} in {str(bag.path)!r} could be decoded")


def with_training_size(bag_paths: list[str | Path], config: BagDataConfig) -> BagDataConfig:
    """``config`` with ``height`` and ``width`` set: as given, or picked from the first bag's
    camera (see :class:`BagDataConfig`)."""
    if config.height is not None and config.width is not None:
        return config
    if not bag_paths:
        raise UserError("give at least one bag")
    bag = RecordedBag(bag_paths[0])
    topics = select_camera_topics(bag, config.image_topic, config.camera_info_topic,
                                  need_camera_info=config.camera_info_file is None)
    height, width = pick_network_size(camera_image_size(bag, topics.image), height=config.height, width=config.width)
    return replace(config, height=height, width=width)


def _decode_to_cache(
    bag: RecordedBag, topics: CameraTopics, calibration: CameraCalibration, config: BagDataConfig, folder: Path
) -> None:
    """Decode the subsampled frames of ``bag`` into ``folder`` (``frames.npy`` + ``meta.json``)."""
    image_rectified = not config.undistort or is_rectified_topic(topics.image)
    stamps_ns = _frame_stamps(bag, topics.image)
    # Sorted by stamp; duplicates (re-sent frames) keep their first message.
    unique_stamps, first_ordinals = np.unique(stamps_ns, return_index=True)
    chosen, frame_period = _subsample(unique_stamps / 1e9, config.rate)
    ordinals = first_ordinals[chosen]
    slot_of_ordinal = {int(ordinal): slot for slot, ordinal in enumerate(ordinals)}
    size = (config.height, config.width)
    frames = np.lib.format.open_memmap(
        folder / "frames.npy", mode="w+", dtype=np.uint8, shape=(len(ordinals), *size, 3)
    )
    decoded = np.zeros(len(ordinals), dtype=bool)
    plan = None
    progress = tqdm(total=len(ordinals), desc=f"decoding {Path(bag.path).name}", unit="frame", leave=False)
    with progress:
        for ordinal, message in enumerate(bag.messages([topics.image])):
            slot = slot_of_ordinal.get(ordinal)
            if slot is None:
                continue
            try:
                image = decode_image(message)
                if plan is None:
                    plan = plan_training_frames(image.shape[:2], size, calibration, image_rectified)
                    if plan.notice:
                        warnings.warn(f"{topics.image} in {str(bag.path)!r}: {plan.notice}", stacklevel=2)
                elif image.shape[:2] != plan.image_size:
                    raise CorruptImageError(f"{image.shape[1]}x{image.shape[0]} instead of the camera's size")
            except CorruptImageError as error:
                warnings.warn(f"skipping an undecodable frame of {topics.image}: {error}", stacklevel=2)
                continue
            frames[slot] = plan.apply(image)
            decoded[slot] = True
            progress.update()
    if plan is None:
        raise UserError(f"no frame of {topics.image} in {str(bag.path)!r} could be decoded")
    frames.flush()
    if not decoded.all():
        kept = np.flatnonzero(decoded)
        np.save(folder / "compact.npy", np.asarray(frames[kept]))
        del frames
        os.replace(folder / "compact.npy", folder / "frames.npy")
    meta = {
        "stamps": (unique_stamps[chosen][decoded] / 1e9).tolist(),
        "intrinsics": plan.network_intrinsics.tolist(),
        "preparation": asdict(plan.record()),
        "frame_period": frame_period,
        "skipped_images": int((~decoded).sum()),
        "topics": asdict(topics),
    }
    (folder / "meta.json").write_text(json.dumps(meta))


def load_bag_frames(bag: RecordedBag, topics: CameraTopics, config: BagDataConfig) -> BagFrames:
    """The decoded frames of ``bag``, from the cache or decoded into it.

    The cache entry is written to a temporary folder and renamed into place, so an
    interrupted run never leaves a half-written entry behind.
    """
    if config.height is None or config.width is None:
        raise ValueError("resolve the training size first (with_training_size)")
    calibration = read_camera_calibration(bag, topics, config)
    cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    entry = cache_root / _cache_key(bag, topics, calibration, config)
    from_cache = (entry / "meta.json").exists()
    if not from_cache:
        cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=cache_root))
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's folder is private
        try:
            _decode_to_cache(bag, topics, calibration, config, staging)
            try:
                os.replace(staging, entry)
            except OSError:  # another run finished the same entry first
                shutil.rmtree(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    meta = json.loads((entry / "meta.json").read_text())
    return BagFrames(
        bag_path=str(bag.path),
        topics=topics,
        frames_path=entry / "frames.npy",
        stamps=np.asarray(meta["stamps"], dtype=np.float64),
        intrinsics=np.asarray(meta["intrinsics"], dtype=np.float32),
        preparation=FramePreparation(**meta["preparation"]),
        frame_period=float(meta["frame_period"]),
        from_cache=from_cache,
        skipped_images=int(meta["skipped_images"]),
    )
