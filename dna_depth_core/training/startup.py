"""What a training run starts from: its random seeds and its networks."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint, read_metadata
from ..errors import UserError
from ..networks import DepthNet, PoseNet, create_depth_net
from .config import TrainConfig


def derived_seed(seed: int, rank: int, purpose: int) -> int:
    """An independent 63-bit seed for one purpose (augmentation, data loading...) of one process."""
    return int(np.random.SeedSequence([seed, rank, purpose]).generate_state(2, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """Data-loader workers: seed numpy and python from the per-worker torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)

def build_networks(
    config: TrainConfig, init_checkpoint: str | Path | Checkpoint | None
) -> tuple[DepthNet, PoseNet, str]:
    """Depth and pose networks from the config, or from ``init_checkpoint`` where it has them.

    With an initial checkpoint its depth network (architecture and weights) replaces
    ``model.variant``/``model.encoder``, and its pose network, if stored, replaces a
    fresh ``model.pose_encoder`` one. A :class:`Checkpoint` already loaded is used as is.

    Returns:
        ``(depth_net, pose_net, pose_encoder_name)``, in train mode on the CPU.

    Raises:
        UserError: unknown encoder, missing weight file, weights not downloadable, bad checkpoint.
    """
    model = config.model
    try:
        if init_checkpoint is not None:
            loaded = init_checkpoint
            if not isinstance(loaded, Checkpoint):
                with_pose = read_metadata(init_checkpoint).pose_encoder is not None
                loaded = load_checkpoint(init_checkpoint, with_pose=with_pose)
            depth_net = loaded.depth_net
            pose_encoder = loaded.metadata.pose_encoder or model.pose_encoder
            pose_net = loaded.pose_net or PoseNet(pose_encoder, pretrained=model.pose_pretrained)
        else:
            overrides = {"encoder": model.encoder} if model.encoder else {}
            depth_net = create_depth_net(model.variant, pretrained=model.pretrained, **overrides)
            pose_encoder = model.pose_encoder
            pose_net = PoseNet(pose_encoder, pretrained=model.pose_pretrained)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise UserError(f"cannot build the networks: {error}") from None
    return depth_net.train(), pose_net.train(), pose_encoder

