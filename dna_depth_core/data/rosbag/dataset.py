"""Training triplets from recorded ROS 2 bags: the configuration, the dataset and its assembly.

:func:`build_bag_datasets` takes each bag's camera frames from the on-disk frame cache
(:mod:`.frame_cache`: decoded once, sorted, subsampled, rectified and resized by the
preparation contract the depth node applies too), picks the training and validation
triplets from them (:mod:`.triplets`: no gaps, no static frames, a time split), and returns
:class:`BagTripletDataset` s, which yield the sample dicts of :mod:`dna_depth_core.data`
with ``source_distance`` from odometry when the bag has it. This module exports the whole
bag-dataset API (``__all__``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dna_depth_core.config import ConfigError
from dna_depth_core.data.camera.preparation import FOCAL_TOLERANCE, FramePreparation
from dna_depth_core.errors import UserError

from .frame_cache import (
    CACHE_FORMAT_VERSION,
    BagFrames,
    camera_image_size,
    default_cache_dir,
    load_bag_frames,
    read_camera_calibration,
    with_training_size,
)
from .odometry import read_odometry
from .reader import RecordedBag
from .topics import select_camera_topics
from .triplets import TripletSelection, select_triplets

__all__ = [
    "CACHE_FORMAT_VERSION",
    "BagDataConfig",
    "BagDatasets",
    "BagFrames",
    "BagSummary",
    "BagTripletDataset",
    "TripletSelection",
    "build_bag_datasets",
    "camera_image_size",
    "default_cache_dir",
    "load_bag_frames",
    "read_camera_calibration",
    "select_triplets",
    "with_training_size",
]


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
            :func:`~dna_depth_core.data.camera.network_size.pick_network_size` (aspect
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
        frame_spacing: kept frames between a triplet's target and each of its sources (1:
            neighbours). The photometric loss sees depth only through the parallax the
            camera's travel between target and source makes, which falls with the square of
            the distance: a slow robot at 10 Hz (8 cm per frame at 0.8 m/s) makes too little
            of it beyond a few metres to pull the depth to the truth. ``None`` (default):
            with odometry, the smallest spacing (up to 4) that puts a median 0.2 m between
            target and sources (:func:`~dna_depth_core.data.rosbag.triplets.automatic_spacing`),
            1 without; give 2-3 for a slow robot recorded without odometry.
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
    frame_spacing: int | None = None
    max_gap_periods: float = 1.5
    val_fraction: float = 0.1
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for key in ("height", "width"):
            value = getattr(self, key)
            if value is not None and (value <= 0 or value % 32):
                raise ConfigError(f"--{key} must be a positive multiple of 32, got {value}")
        if self.rate < 0:
            raise ConfigError(f"--rate must be >= 0 Hz (0 keeps every frame), got {self.rate}")
        if self.static_threshold < 0 or self.min_speed < 0:
            raise ConfigError("--static-threshold and --min-speed must be >= 0")
        spacing = self.frame_spacing
        if spacing is not None and (isinstance(spacing, bool) or not isinstance(spacing, int) or spacing < 1):
            raise ConfigError(f"--frame-spacing must be a whole number >= 1, got {self.frame_spacing!r}")
        if self.max_gap_periods <= 1:
            raise ConfigError(f"max_gap_periods must be > 1, got {self.max_gap_periods}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")



class BagTripletDataset(Dataset):
    """Training samples ``(t-k, t, t+k)`` from one or more bags' cached frames.

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
            distance = self._source_distances(index) / self.depth_unit
            sample["source_distance"] = torch.from_numpy(distance.astype(np.float32))
        return sample

    def _source_distances(self, index: int) -> np.ndarray:
        """float64 ``(2,)`` metres the platform travelled between sample ``index``'s target
        and its previous and next frames, by odometry."""
        sequence_index, *frame_indices = (int(value) for value in self.triplets[index])
        sequence = self.sequences[sequence_index]
        stamps = sequence.stamps[frame_indices]
        return sequence.odometry.distance(np.full(2, stamps[1]), stamps[[0, 2]])

    def median_baseline(self) -> float | None:
        """Median metres between a sample's target and its sources, by odometry; ``None``
        without odometry or samples. What the photometric loss has to see depth with (see
        ``BagDataConfig.frame_spacing``)."""
        if not self.with_distance or len(self) == 0:
            return None
        return float(np.median([self._source_distances(index) for index in range(len(self))]))


@dataclass
class BagSummary:
    """What was taken from one bag (for logs, the report and checkpoint provenance): topics,
    frames decoded (or found in the cache), gap-free segments, static frames dropped,
    triplets per split (``frame_spacing`` kept frames between target and sources), and image
    messages skipped as undecodable. The calibration came
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
    frame_spacing: int
    train_triplets: int
    val_triplets: int
    skipped_images: int


@dataclass
class BagDatasets:
    """Training and validation datasets over all bags, and per-bag summaries.

    ``floor_normal``: the floor's unit normal in the camera's optical frame when the bags'
    camera mount gives it (set by the fine-tune for ``--camera-height``, see
    :func:`~dna_depth_core.data.rosbag.transforms.floor_normal`), ``None`` otherwise.
    """

    train: BagTripletDataset
    val: BagTripletDataset | None
    summaries: list[BagSummary]
    floor_normal: np.ndarray | None = None


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
                frame_spacing=selection.frame_spacing,
                train_triplets=len(selection.train), val_triplets=len(selection.val),
                skipped_images=sequence.skipped_images,
            )
        )
    train = BagTripletDataset(sequences, np.concatenate(train_rows))
    val = BagTripletDataset(sequences, np.concatenate(val_rows))
    if len(train) == 0 or (config.val_fraction > 0 and len(val) == 0):
        counts = "; ".join(
            f"{s.bag}: {s.frames} frames at {config.rate:g} Hz, {s.static_frames} static, {s.segments} segment(s), "
            f"frame spacing {s.frame_spacing}, "
            f"{s.train_triplets} training / {s.val_triplets} validation triplets"
            for s in summaries
        )
        raise UserError(
            f"too few usable frames for fine-tuning ({counts}). A triplet needs 2 x the frame spacing + 1 consecutive "
            "moving frames without a gap; record a longer drive with the camera moving, or lower --static-threshold / "
            "--min-speed, raise --rate, lower --frame-spacing, or set --val-fraction 0"
        )
    return BagDatasets(train=train, val=val if config.val_fraction > 0 else None, summaries=summaries)
