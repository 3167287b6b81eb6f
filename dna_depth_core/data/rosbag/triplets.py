"""Which cached bag frames make training and validation triplets.

:func:`select_triplets` chooses the training samples from the cached frames
(:mod:`.frame_cache`), cheaply and afresh on every run:

1. *Segments*: the recording is cut wherever two consecutive frames are more than
   ``max_gap_periods`` nominal frame periods apart (dropped messages, a paused recorder),
   so no triplet spans a gap.
2. *Static frames*: within a segment a frame is kept only if the camera moved enough
   since the last kept frame: a mean absolute image difference of at least
   ``static_threshold`` grey levels, or, with odometry, a distance of at least
   ``min_speed`` times the frame period.
3. *Split*: the last ``val_fraction`` of each bag's time span is for validation; a
   triplet is three consecutive kept frames of one segment on one side of the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .frame_cache import BagFrames

if TYPE_CHECKING:  # the dataset module imports this one to build its samples
    from .dataset import BagDataConfig


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
