"""Training triplets from recorded ROS 2 bags: frame selection, an on-disk frame cache, the dataset.

For each bag, :func:`load_bag_frames` decodes the camera's frames once: sorted by header
stamp, subsampled to ``rate``, rectified, centre-cropped and resized to the training size
by the preparation contract the depth node applies too
(:func:`~dna_depth_core.data.camera.preparation.plan_training_frames`), and stored as one
``.npy`` array in a cache folder named after the bag files' identity (path, size, mtime),
the calibration and these settings; later epochs and later runs memory-map it instead of
decoding again. The training size defaults to one picked from the camera
(:func:`~dna_depth_core.data.camera.preparation.pick_network_size`), so a 4:3 or 16:9
camera keeps its field of view.

:func:`select_triplets` then chooses the training samples from the cached frames, cheaply
and afresh on every run:

1. *Segments*: the recording is cut wherever two consecutive frames are more than
   ``max_gap_periods`` nominal frame periods apart (dropped messages, a paused recorder),
   so no triplet spans a gap.
2. *Static frames*: within a segment a frame is kept only if the camera moved enough
   since the last kept frame: a mean absolute image difference of at least
   ``static_threshold`` grey levels, or, with odometry, a distance of at least
   ``min_speed`` times the frame period.
3. *Split*: the last ``val_fraction`` of each bag's time span is for validation; a
   triplet is three consecutive kept frames of one segment on one side of the split.

:class:`BagTripletDataset` yields the sample dicts of :mod:`dna_depth_core.data`, with
``source_distance`` from odometry when the bag has it.
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

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.camera.preparation import (
    FOCAL_TOLERANCE,
    FramePreparation,
    is_rectified_topic,
    pick_network_size,
    plan_training_frames,
)
from dna_depth_core.errors import UserError
from dna_depth_core.paths import cache_dir, current_umask

from .camera_info import read_calibration
from .images import CorruptImageError, decode_image
from .messages import header_stamp_ns
from .odometry import OdometryTrack, read_odometry
from .reader import RecordedBag
from .topics import CameraTopics, select_camera_topics

CACHE_FORMAT_VERSION = 2
"""Bumped whenever the cached arrays change meaning, so stale caches are not reused."""


def default_cache_dir() -> Path:
    """``bag_frames`` in the dna_depth cache (``~/.cache/dna_depth/bag_frames``; see
    :func:`dna_depth_core.paths.cache_dir`), or a temporary folder, with a warning, when
    that cannot be written."""
    return cache_dir("bag_frames")


@dataclass
class BagDataConfig:
    """How training frames are taken from recorded bags.

    Attributes:
        image_topic: camera image topic (Image or CompressedImage); ``None`` picks the one
            camera topic of each bag (see :func:`~dna_depth_core.data.rosbag.topics.select_camera_topics`).
        camera_info_topic: CameraInfo topic; ``None`` picks the image's ``camera_info`` sibling.
        camera_info_file: the camera's calibration YAML (what ``camera_calibration``
            writes), used instead of any CameraInfo topic: for bags recorded without one.
        odom_topic: ``nav_msgs/Odometry`` topic; when set, static frames are detected by
            speed and samples carry ``source_distance`` (metric fine-tuning). ``None``: no
            odometry.
        height: training frame height in pixels (multiple of 32); ``None`` picks the
            size from the first bag's camera with
            :func:`~dna_depth_core.data.camera.preparation.pick_network_size` (aspect
            ratio as close as possible within 640x192 pixels: 384x288 for 4:3, 448x256
            for 16:9); with only one of height/width given, the other follows the
            camera's aspect ratio.
        width: training frame width in pixels (multiple of 32); ``None`` as ``height``.
        rate: frames per second kept from the camera stream (10 Hz, as KITTI); 0 keeps
            every frame.
        undistort: undistort/rectify with the calibration (plumb_bob, rational_polynomial,
            equidistant), as the depth node does with its ``undistort`` parameter. Topics
            named ``image_rect*`` (image_proc's output) are already rectified and never
            undistorted again; turn this off for other rectified topics. Rectified images
            use the calibration's P.
        static_threshold: without odometry, a frame is static (dropped) when its mean
            absolute difference from the last kept frame is below this many grey levels
            (0-255) at training size (2.0).
        min_speed: with odometry, a frame is static when the platform moved less than
            ``min_speed`` times the frame period since the last kept frame (m/s, 0.2).
        max_gap_periods: consecutive frames more than this many frame periods apart start
            a new segment; triplets never span two segments (1.5).
        val_fraction: the last fraction of each bag's duration used for validation
            (0.1); 0 for no validation.
        cache_dir: folder of the decoded-frame cache; ``None`` for :func:`default_cache_dir`.
    """

    image_topic: str | None = None
    camera_info_topic: str | None = None
    camera_info_file: str | None = None
    odom_topic: str | None = None
    height: int | None = None
    width: int | None = None
    rate: float = 10.0
    undistort: bool = True
    static_threshold: float = 2.0
    min_speed: float = 0.2
    max_gap_periods: float = 1.5
    val_fraction: float = 0.1
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for key in ("height", "width"):
            value = getattr(self, key)
            if value is not None and (value <= 0 or value % 32):
                raise UserError(f"--{key} must be a positive multiple of 32, got {value}")
        if self.rate < 0:
            raise UserError(f"--rate must be >= 0 Hz (0 keeps every frame), got {self.rate}")
        if self.static_threshold < 0 or self.min_speed < 0:
            raise UserError("--static-threshold and --min-speed must be >= 0")
        if self.max_gap_periods <= 1:
            raise UserError(f"max_gap_periods must be > 1, got {self.max_gap_periods}")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


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


@dataclass
class TripletSelection:
    """Which cached frames form training and validation triplets.

    Attributes:
        train: int64 ``(M, 3)`` frame indices (previous, target, next) for training.
        val: int64 ``(K, 3)`` frame indices for validation.
        segments: number of gap-free segments the recording was cut into.
        static_frames: frames dropped as static (or, with odometry, outside its time span).
    """

    train: np.ndarray
    val: np.ndarray
    segments: int
    static_frames: int


def _moving_frames(segment: np.ndarray, sequence: BagFrames, config: BagDataConfig) -> np.ndarray:
    """The frames of one segment that are not static (see the module docstring); with
    odometry, frames outside the odometry's time span are dropped too."""
    stamps, odometry = sequence.stamps, sequence.odometry
    if odometry is not None:
        segment = segment[(stamps[segment] >= odometry.times[0]) & (stamps[segment] <= odometry.times[-1])]
    if segment.size == 0:
        return segment
    kept = [int(segment[0])]
    if odometry is not None:
        needed = config.min_speed * sequence.frame_period
        for index in segment[1:]:
            if odometry.distance(stamps[kept[-1]], stamps[index]) >= needed:
                kept.append(int(index))
        return np.array(kept, dtype=np.int64)
    previous = sequence.frames[kept[0]].astype(np.int16)
    for index in segment[1:]:
        current = sequence.frames[index].astype(np.int16)
        if np.abs(current - previous).mean() >= config.static_threshold:
            kept.append(int(index))
            previous = current
    return np.array(kept, dtype=np.int64)


def _consecutive_triplets(frames: np.ndarray) -> np.ndarray:
    """int64 ``(max(n - 2, 0), 3)`` rows of three consecutive entries of ``frames``."""
    if frames.size < 3:
        return np.zeros((0, 3), dtype=np.int64)
    return np.stack([frames[:-2], frames[1:-1], frames[2:]], axis=1)


def select_triplets(sequence: BagFrames, config: BagDataConfig) -> TripletSelection:
    """Segments, static-frame removal and the time split of one bag's frames (module docstring)."""
    stamps = sequence.stamps
    breaks = np.flatnonzero(np.diff(stamps) > config.max_gap_periods * sequence.frame_period) + 1
    segments = np.split(np.arange(stamps.size), breaks)
    split_time = stamps[0] + (1.0 - config.val_fraction) * (stamps[-1] - stamps[0])
    train, val, static = [], [], 0
    for segment in segments:
        kept = _moving_frames(segment, sequence, config)
        static += segment.size - kept.size
        if config.val_fraction > 0:
            train.append(_consecutive_triplets(kept[stamps[kept] < split_time]))
            val.append(_consecutive_triplets(kept[stamps[kept] >= split_time]))
        else:
            train.append(_consecutive_triplets(kept))
    return TripletSelection(
        train=np.concatenate(train),
        val=np.concatenate(val) if val else np.zeros((0, 3), dtype=np.int64),
        segments=len(segments),
        static_frames=static,
    )


class BagTripletDataset(Dataset):
    """Training samples ``(t-1, t, t+1)`` from one or more bags' cached frames.

    Each sample is the dict of :mod:`dna_depth_core.data`: ``frames`` float32
    ``(3, 3, H, W)`` RGB in [0, 1], ``intrinsics`` float32 ``(3, 3)`` pixels, and, when
    the bag has odometry, ``source_distance`` float32 ``(2,)``: the distance from the
    target frame's position to the previous and next frames' (see
    :meth:`~dna_depth_core.data.rosbag.odometry.OdometryTrack.distance`), in metres divided by
    :attr:`depth_unit`.

    Args:
        sequences: the bags' frames.
        triplets: int64 ``(M, 4)`` rows ``(sequence index, previous, target, next)``.

    Attributes:
        depth_unit: metres per depth unit of the model being trained (1.0: it predicts
            metres). Fine-tuning a model with another unit supervises its speed in that
            unit, so a metre-scale correction need not be learnt (see
            :func:`dna_depth_core.training.finetune.calibrate_depth_unit`).
    """

    def __init__(self, sequences: list[BagFrames], triplets: np.ndarray) -> None:
        triplets = np.asarray(triplets, dtype=np.int64).reshape(-1, 4)
        self.sequences = sequences
        self.triplets = triplets
        self.with_distance = bool(sequences) and all(sequence.odometry is not None for sequence in sequences)
        self.depth_unit = 1.0

    @property
    def preparation(self) -> FramePreparation:
        """How the frames were prepared, for the checkpoint trained on them: the bags'
        records, their normalised intrinsics averaged over the training samples when the
        bags come from different cameras (with a warning when their focal lengths differ)."""
        records = [sequence.preparation for sequence in self.sequences]
        counts = np.bincount(self.triplets[:, 0], minlength=len(records)).astype(np.float64)
        if not counts.any():
            counts[:] = 1.0
        weights = counts / counts.sum()
        mean = {key: float(sum(weight * getattr(record, key) for weight, record in zip(weights, records)))
                for key in ("fx", "fy", "cx", "cy")}
        spread = max(abs(getattr(r, key) / mean[key] - 1) for r in records for key in ("fx", "fy"))
        if spread > FOCAL_TOLERANCE:
            warnings.warn(
                f"the bags' cameras differ in focal length by up to {spread:.0%} at the training size; the checkpoint "
                "records their average, so the depth node rescales depth relative to it",
                stacklevel=2,
            )
        return replace(records[0], **mean)

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sequence_index, *frame_indices = (int(value) for value in self.triplets[index])
        sequence = self.sequences[sequence_index]
        frames = torch.from_numpy(np.stack([sequence.frames[i] for i in frame_indices]))
        sample = {
            "frames": frames.permute(0, 3, 1, 2).float().div_(255.0).contiguous(),
            "intrinsics": torch.from_numpy(sequence.intrinsics.copy()),
        }
        if self.with_distance:
            stamps = sequence.stamps[frame_indices]
            distance = sequence.odometry.distance(np.full(2, stamps[1]), stamps[[0, 2]]) / self.depth_unit
            sample["source_distance"] = torch.from_numpy(distance.astype(np.float32))
        return sample


@dataclass
class BagSummary:
    """What was taken from one bag (for logs, the report and checkpoint provenance): topics,
    frames decoded (or found in the cache), gap-free segments, static frames dropped,
    triplets per split, and image messages skipped as undecodable. The calibration came
    from ``camera_info_topic``, or from ``camera_info_file`` when that is set."""

    bag: str
    image_topic: str
    camera_info_topic: str | None
    camera_info_file: str | None
    odom_topic: str | None
    frames: int
    from_cache: bool
    segments: int
    static_frames: int
    train_triplets: int
    val_triplets: int
    skipped_images: int


@dataclass
class BagDatasets:
    """Training and validation datasets over all bags, and per-bag summaries."""

    train: BagTripletDataset
    val: BagTripletDataset | None
    summaries: list[BagSummary]


def build_bag_datasets(bag_paths: list[str | Path], config: BagDataConfig) -> BagDatasets:
    """Decode (or load from the cache) every bag and select its triplets.

    Raises:
        UserError: a bad bag, topic or calibration (see :mod:`dna_depth_core.data.rosbag.reader`),
            or too few usable frames for one training (and, with ``val_fraction > 0``,
            one validation) triplet.
    """
    if not bag_paths:
        raise UserError("give at least one bag")
    config = with_training_size(bag_paths, config)
    sequences, train_rows, val_rows, summaries = [], [], [], []
    for index, path in enumerate(bag_paths):
        bag = RecordedBag(path)
        topics = select_camera_topics(bag, config.image_topic, config.camera_info_topic,
                                      need_camera_info=config.camera_info_file is None)
        sequence = load_bag_frames(bag, topics, config)
        if config.odom_topic is not None:
            sequence.odometry = read_odometry(bag, config.odom_topic)
        selection = select_triplets(sequence, config)
        sequences.append(sequence)
        for rows, triplets in ((train_rows, selection.train), (val_rows, selection.val)):
            rows.append(np.concatenate([np.full((len(triplets), 1), index), triplets], axis=1))
        summaries.append(
            BagSummary(
                bag=str(path), image_topic=topics.image, camera_info_topic=topics.camera_info,
                camera_info_file=config.camera_info_file, odom_topic=config.odom_topic,
                frames=len(sequence.stamps), from_cache=sequence.from_cache,
                segments=selection.segments, static_frames=selection.static_frames,
                train_triplets=len(selection.train), val_triplets=len(selection.val),
                skipped_images=sequence.skipped_images,
            )
        )
    train = BagTripletDataset(sequences, np.concatenate(train_rows))
    val = BagTripletDataset(sequences, np.concatenate(val_rows))
    if len(train) == 0 or (config.val_fraction > 0 and len(val) == 0):
        counts = "; ".join(
            f"{s.bag}: {s.frames} frames at {config.rate:g} Hz, {s.static_frames} static, {s.segments} segment(s), "
            f"{s.train_triplets} training / {s.val_triplets} validation triplets"
            for s in summaries
        )
        raise UserError(
            f"too few usable frames for fine-tuning ({counts}). A triplet needs three consecutive moving frames "
            "without a gap; record a longer drive with the camera moving, or lower --static-threshold / "
            "--min-speed, raise --rate, or set --val-fraction 0"
        )
    return BagDatasets(train=train, val=val if config.val_fraction > 0 else None, summaries=summaries)
