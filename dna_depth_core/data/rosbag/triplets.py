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
3. *Spacing*: a triplet is a kept frame and the kept frames ``k`` before and after it.
   ``k`` is ``frame_spacing``, or, when that is ``None`` and the bag has odometry, the
   smallest ``k`` (at most :data:`MAX_AUTO_SPACING`) that puts a median
   :data:`MIN_BASELINE` metres between a target and its sources; 1 without odometry.
4. *Split*: the last ``val_fraction`` of each bag's time span is for validation; a
   triplet lies in one segment on one side of the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .frame_cache import BagFrames

MIN_BASELINE = 0.2
"""Metres between a target and its sources that an automatic frame spacing reaches.

The photometric loss sees depth through parallax, which falls with the square of the
distance. Warped with the true motion, held-out warehouse frames at 224x160 (a robot at
0.8 m/s, 10 Hz) are best explained by their true depth up to 4 m with 0.08 m between
target and source, but up to 8 m with 0.24 m. Fine-tuned there from the shipped model
with odometry, 0.24 m brought the 4-8 and 8-15 m bins nearer the truth on all three
seeds, and the overall ratio within 10 % on all three, against two with 0.08 m
(``benchmarks/finetune_synthetic.py --frame-spacing``)."""

MAX_AUTO_SPACING = 4
"""The widest automatic spacing: wider ones lose overlap and frames at each segment end."""

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
        frame_spacing: kept frames between a triplet's target and each source.
    """

    train: np.ndarray
    val: np.ndarray
    segments: int
    static_frames: int
    frame_spacing: int


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


def _spaced_triplets(frames: np.ndarray, spacing: int) -> np.ndarray:
    """int64 ``(max(n - 2 k, 0), 3)`` rows ``(frames[i - k], frames[i], frames[i + k])``
    for ``k = spacing``."""
    if frames.size < 2 * spacing + 1:
        return np.zeros((0, 3), dtype=np.int64)
    return np.stack([frames[: -2 * spacing], frames[spacing:-spacing], frames[2 * spacing:]], axis=1)


def automatic_spacing(kept_segments: list[np.ndarray], sequence: BagFrames) -> int:
    """The spacing ``k`` of the module docstring's step 3 for a bag whose moving frames
    are ``kept_segments`` (frame indices, one array per segment)."""
    if sequence.odometry is None:
        return 1
    steps = [sequence.odometry.distance(sequence.stamps[kept[:-1]], sequence.stamps[kept[1:]])
             for kept in kept_segments if kept.size > 1]
    steps = np.concatenate(steps) if steps else np.zeros(0)
    steps = steps[np.isfinite(steps)]
    if steps.size == 0 or np.median(steps) <= 0:
        return 1
    return int(np.clip(np.ceil(MIN_BASELINE / np.median(steps) - 1e-9), 1, MAX_AUTO_SPACING))


def select_triplets(sequence: BagFrames, config: BagDataConfig) -> TripletSelection:
    """Segments, static-frame removal, the spacing and the time split of one bag's frames
    (module docstring)."""
    stamps = sequence.stamps
    breaks = np.flatnonzero(np.diff(stamps) > config.max_gap_periods * sequence.frame_period) + 1
    segments = np.split(np.arange(stamps.size), breaks)
    kept_segments = [_moving_frames(segment, sequence, config) for segment in segments]
    spacing = config.frame_spacing or automatic_spacing(kept_segments, sequence)
    split_time = stamps[0] + (1.0 - config.val_fraction) * (stamps[-1] - stamps[0])
    train, val = [], []
    for kept in kept_segments:
        if config.val_fraction > 0:
            train.append(_spaced_triplets(kept[stamps[kept] < split_time], spacing))
            val.append(_spaced_triplets(kept[stamps[kept] >= split_time], spacing))
        else:
            train.append(_spaced_triplets(kept, spacing))
    return TripletSelection(
        train=np.concatenate(train),
        val=np.concatenate(val) if val else np.zeros((0, 3), dtype=np.int64),
        segments=len(segments),
        static_frames=stamps.size - sum(kept.size for kept in kept_segments),
        frame_spacing=spacing,
    )
