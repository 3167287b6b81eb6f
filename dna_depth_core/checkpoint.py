"""The project's checkpoint format: one ``.safetensors`` file, never unpickled.

Tensors are stored under ``depth.`` (the :class:`DepthNet` state dict) and, optionally,
``pose.`` (the :class:`PoseNet`). The safetensors header metadata holds one JSON entry,
``dna_depth``, with a :class:`ModelMetadata`: everything needed to rebuild the network and
turn its output into depth (architecture, input size, how the training frames were
prepared, depth range, scale, provenance).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import load_config
from .data.camera.preparation import FramePreparation
from .errors import UserError
from .networks import DepthNet, DepthNetConfig, PoseNet
from .paths import atomic_write

FORMAT_NAME = "dna-depth-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "dna_depth"
CHECKPOINT_WRITERS = "'dna-depth train', 'dna-depth finetune-bag' or 'dna-depth import-weights'"
"""The tools that write checkpoints, as error messages name them."""


SHIPPED_CHECKPOINT_NAME = "dna_depth_synthetic.safetensors"
"""File name of the checkpoint shipped in ``dna_depth_core/assets``."""


def shipped_checkpoint_path() -> Path:
    """Where the checkpoint shipped inside ``dna_depth_core`` is installed (pip or colcon)."""
    return Path(str(importlib.resources.files("dna_depth_core") / "assets" / SHIPPED_CHECKPOINT_NAME))


@dataclass
class ModelMetadata:
    """What a checkpoint says about its depth network.

    Attributes:
        network: the depth network's architecture.
        height: network input height in pixels (multiple of 32) the model was trained at.
        width: network input width in pixels (multiple of 32).
        preparation: how the training frames were made from camera images (rectified or
            not, crop policy, the training camera's normalised intrinsics at the network
            input); every consumer prepares its frames the same way (see
            :mod:`dna_depth_core.data.camera.preparation`). Checkpoints written without it
            load with :class:`FramePreparation`'s defaults, the KITTI recipe's camera.
        min_depth: depth of disparity 1, in network depth units (0.1 in the recipe).
        max_depth: depth of disparity 0, in network depth units (100 in the recipe).
        depth_scale: metres per network depth unit. 1.0 with ``metric`` false means the
            depth is only known up to scale (self-supervised without metric supervision).
        metric: whether ``depth_scale * depth`` is in metres (trained with speed
            supervision, stereo, or scaled against ground truth).
        pose_encoder: timm name of the pose network's encoder, when pose weights are stored.
        provenance: free-form record of how the weights were made (data, steps, source...).
    """

    network: DepthNetConfig = field(default_factory=DepthNetConfig)
    height: int = 192
    width: int = 640
    preparation: FramePreparation = field(default_factory=FramePreparation)
    min_depth: float = 0.1
    max_depth: float = 100.0
    depth_scale: float = 1.0
    metric: bool = False
    pose_encoder: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """A loaded checkpoint: metadata, the depth network and, if stored and asked for, the pose network."""

    metadata: ModelMetadata
    depth_net: DepthNet
    pose_net: PoseNet | None = None


class CheckpointError(UserError):
    """A file that is not a valid checkpoint, or that does not fit the network it describes."""


def save_checkpoint(
    path: str | Path,
    depth_net: DepthNet,
    metadata: ModelMetadata,
    pose_net: PoseNet | None = None,
    storage_dtype: torch.dtype | None = None,
) -> None:
    """Write ``depth_net`` (and ``pose_net``) with ``metadata`` to ``path`` atomically.

    ``metadata.network`` is taken from ``depth_net.config`` so the two cannot disagree.
    Unwrap DistributedDataParallel/compiled modules before saving.

    Args:
        storage_dtype: store floating-point tensors in this dtype (``torch.float16``
            halves the file for distribution); loading casts back to the network's dtype.
    """
    metadata = dataclasses.replace(metadata, network=depth_net.config)
    if pose_net is not None and metadata.pose_encoder is None:
        raise ValueError("metadata.pose_encoder must name the pose encoder when pose weights are saved")

    def stored(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.detach().cpu()
        if storage_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(storage_dtype)
        return tensor.contiguous()

    tensors = {f"depth.{k}": stored(v) for k, v in depth_net.state_dict().items()}
    if pose_net is not None:
        tensors.update({f"pose.{k}": stored(v) for k, v in pose_net.state_dict().items()})
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        METADATA_KEY: json.dumps(dataclasses.asdict(metadata)),
    }
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata=header))


def _open(path: Path):
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{str(path)!r} is not a DNA-Depth checkpoint (not a readable .safetensors file: {error}). "
            f"Use a file written by {CHECKPOINT_WRITERS}."
        ) from None


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read only the metadata of a checkpoint (cheap: tensors are not loaded)."""
    path = Path(path)
    with _open(path) as handle:
        header = handle.metadata() or {}
    if header.get("format") != FORMAT_NAME or METADATA_KEY not in header:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a DNA-Depth checkpoint (no '{METADATA_KEY}' metadata). "
            f"Use a file written by {CHECKPOINT_WRITERS} (import-weights converts the authors' weights)."
        )
    if int(header.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} uses checkpoint format {header['format_version']}, newer than this "
            f"version of dna_depth understands ({FORMAT_VERSION}); upgrade the package"
        )
    try:
        data = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{str(path)!r} has corrupted metadata: {error}") from None
    try:
        return load_config(ModelMetadata, data)
    except UserError as error:
        raise CheckpointError(f"{str(path)!r} has invalid metadata: {error}") from None


def read_tensors(path: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors stored under ``prefix`` (``"depth."`` or ``"pose."``), prefix removed."""
    path = Path(path)
    with _open(path) as handle:
        return {key[len(prefix):]: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module``, raising one :class:`CheckpointError` that lists every
    missing, unexpected and mis-shaped tensor instead of failing on the first one."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{key}: file {tuple(state[key].shape)} vs network {tuple(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    if missing or unexpected or misshaped:
        lines = [f"{what} does not match the network it describes:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if items:
                shown = ", ".join(items[:20]) + (f" ... ({len(items) - 20} more)" if len(items) > 20 else "")
                lines.append(f"  {title} ({len(items)}): {shown}")
        lines.append("  Was it written for another encoder or by an incompatible version?")
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, with_pose: bool = False) -> Checkpoint:
    """Rebuild the networks stored in ``path`` (on the CPU, in eval mode).

    Args:
        path: a ``.safetensors`` file written by :func:`save_checkpoint`.
        with_pose: also rebuild the pose network (error if the file has none).

    Raises:
        CheckpointError: not a checkpoint, corrupted, or tensors that do not fit.
    """
    metadata = read_metadata(path)
    depth_net = DepthNet(metadata.network)
    load_state_strict(depth_net, read_tensors(path, "depth."), f"checkpoint {str(path)!r}")
    pose_net = None
    if with_pose:
        if metadata.pose_encoder is None:
            raise CheckpointError(f"checkpoint {str(path)!r} holds no pose network; train or fine-tune from scratch")
        pose_net = PoseNet(metadata.pose_encoder)
        load_state_strict(pose_net, read_tensors(path, "pose."), f"pose network in {str(path)!r}")
        pose_net.eval()
    return Checkpoint(metadata=metadata, depth_net=depth_net.eval(), pose_net=pose_net)


def check_checkpoint(path: str | Path) -> ModelMetadata:
    """Load every network ``path`` stores (the pose network too, when it has one), so that
    a damaged or mismatched file is reported before any work starts; returns its metadata.

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    metadata = read_metadata(path)
    load_checkpoint(path, with_pose=metadata.pose_encoder is not None)
    return metadata
