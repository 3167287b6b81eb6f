"""Rendering whole sequences of any style, and the training dataset of triplets built on them."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .config import PINHOLE_STYLES, SyntheticSceneConfig, SyntheticSequence
from .corridor import _build_corridor
from .renderer import _render
from .robot import RobotSceneConfig, generate_robot_sequence
from .street import _build_street
from .trajectory import _trajectory

_BUILDERS = {"street": _build_street, "corridor": _build_corridor}


def generate_sequence(config: SyntheticSceneConfig | RobotSceneConfig, seed: int) -> SyntheticSequence:
    """Render one sequence of ``config.frames_per_sequence`` frames of a new random scene.

    The scene layout, textures, lighting and camera path all follow from ``seed``: the
    same config and seed give bit-identical arrays, different seeds different scenes.

    Args:
        config: scene style, image size, frame count and camera motion; a
            :class:`~dna_depth_core.data.synthetic.robot.RobotSceneConfig` renders the
            ground-robot style (a :class:`~dna_depth_core.data.synthetic.robot.RobotSequence`).
        seed: non-negative integer.

    Returns:
        A :class:`SyntheticSequence` (uint8 images, float32 metric depths with 0 for sky,
        float32 intrinsics and camera-to-world poses, float64 timestamps).
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not isinstance(config, SyntheticSceneConfig):
        return generate_robot_sequence(config, seed)
    rng = np.random.default_rng([seed, PINHOLE_STYLES.index(config.style)])
    travel = config.speed * 1.15 * (config.frames_per_sequence - 1) / config.fps
    scene, lane_x = _BUILDERS[config.style](rng, travel, seed)
    poses = _trajectory(rng, config, lane_x)
    intrinsics = config.intrinsics()
    count = config.frames_per_sequence
    images = np.empty((count, config.height, config.width, 3), np.uint8)
    depths = np.empty((count, config.height, config.width), np.float32)
    for i in range(count):
        images[i], depths[i] = _render(scene, poses[i], intrinsics, config.height, config.width)
    return SyntheticSequence(
        images=images,
        depths=depths,
        intrinsics=intrinsics,
        poses=poses.astype(np.float32),
        timestamps=np.arange(count, dtype=np.float64) / config.fps,
    )


class SyntheticTripletDataset(Dataset):
    """Training triplets ``(t-k, t, t+k)`` from freshly generated synthetic sequences.

    Sequence ``i`` is generated with seed ``seed + i``; every frame that has both
    sources is a sample, so each sequence gives ``frames_per_sequence - 2 k`` samples.
    All sequences are held in memory (about 0.8 MB per 192 x 640 frame with its depth).

    Each sample is the dict described in :mod:`dna_depth_core.data`: ``frames`` float32
    (3, 3, H, W) in [0, 1], ``intrinsics`` float32 (3, 3), ``depth_gt`` float32
    (1, H, W) metres with 0 for sky, ``source_distance`` float32 (2,) metres from the
    target camera centre to the t-k and t+k camera centres, and ``target_to_source``
    float32 (2, 4, 4), the true rigid transforms mapping target-camera points (metres) to
    the t-k and t+k cameras (what the pose network estimates).

    Args:
        config: scene style and camera of every sequence.
        num_sequences: sequences to render.
        seed: seed of the first sequence.
        progress: show a progress bar while rendering.
        frame_spacing: ``k``, frames between the target and each source (1: neighbours);
            a wider spacing gives a slow camera (a robot indoors) a longer baseline.

    Attributes:
        sequences: the generated :class:`SyntheticSequence` list, for ground-truth
            evaluation.
    """

    def __init__(self, config: SyntheticSceneConfig | RobotSceneConfig, num_sequences: int, seed: int = 0,
                 progress: bool = False, frame_spacing: int = 1) -> None:
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be >= 1, got {num_sequences}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if not 1 <= frame_spacing <= (config.frames_per_sequence - 1) // 2:
            raise ValueError(f"frame_spacing must be in [1, {(config.frames_per_sequence - 1) // 2}] for "
                             f"{config.frames_per_sequence} frames per sequence, got {frame_spacing}")
        self.config = config
        self.frame_spacing = frame_spacing
        seeds = range(seed, seed + num_sequences)
        self.sequences: list[SyntheticSequence] = [
            generate_sequence(config, s)
            for s in tqdm(seeds, desc=f"rendering {config.style} sequences", unit="seq", disable=not progress)
        ]
        self._index = [
            (sequence, frame) for sequence in range(num_sequences)
            for frame in range(frame_spacing, config.frames_per_sequence - frame_spacing)
        ]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sequence_index, frame = self._index[index]
        sequence = self.sequences[sequence_index]
        triplet = [frame - self.frame_spacing, frame, frame + self.frame_spacing]
        frames = torch.from_numpy(sequence.images[triplet]).permute(0, 3, 1, 2).float().div_(255.0)
        camera_to_world = sequence.poses[triplet].astype(np.float64)
        distance = np.linalg.norm(camera_to_world[[0, 2], :3, 3] - camera_to_world[1, :3, 3], axis=1)
        # source <- world <- target, for each source.
        target_to_source = np.linalg.inv(camera_to_world[[0, 2]]) @ camera_to_world[1]
        return {
            "frames": frames.contiguous(),
            "intrinsics": torch.from_numpy(sequence.intrinsics.copy()),
            "depth_gt": torch.from_numpy(sequence.depths[frame][None].copy()),
            "source_distance": torch.from_numpy(distance.astype(np.float32)),
            "target_to_source": torch.from_numpy(target_to_source.astype(np.float32)),
        }
