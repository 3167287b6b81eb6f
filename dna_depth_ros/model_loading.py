"""Finding and loading the node's checkpoint, with one clear error when that fails."""

from __future__ import annotations

from pathlib import Path

from dna_depth_core.checkpoint import shipped_checkpoint_path
from dna_depth_core.errors import UserError
from dna_depth_core.inference import DepthEstimator

from .parameters import SHIPPED_CHECKPOINT, NodeSettings

def resolve_checkpoint(value: str) -> Path:
    """The checkpoint file named by the ``checkpoint`` parameter (empty: the shipped one).

    Raises:
        UserError: the file does not exist, with how to get or choose one.
    """
    if value == SHIPPED_CHECKPOINT:
        path = shipped_checkpoint_path()
        if not path.is_file():
            raise UserError(
                f"no checkpoint given and the shipped one is not installed ({path}). Pass a checkpoint: "
                "'ros2 run dna_depth_ros depth_node --ros-args -p checkpoint:=/path/to/model.safetensors' "
                "(or checkpoint:=... with the launch file); make one with 'dna-depth train' or convert the "
                "published weights with 'dna-depth import-weights'"
            )
        return path
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(
            f"checkpoint {str(path)!r} does not exist; set the checkpoint parameter to a .safetensors file "
            "written by 'dna-depth train' or 'dna-depth import-weights' (empty for the shipped checkpoint)"
        )
    return path


def load_estimator(settings: NodeSettings) -> tuple[DepthEstimator, Path]:
    """Load the checkpoint on the configured device, precision and backend.

    Returns:
        The estimator and the checkpoint path it came from.

    Raises:
        UserError: missing or invalid checkpoint, unavailable device, unknown backend.
    """
    path = resolve_checkpoint(settings.checkpoint)
    try:
        estimator = DepthEstimator.from_checkpoint(
            path, device=settings.device, half=settings.half, backend=settings.backend, precision=settings.precision
        )
    except ValueError as error:  # the estimator's messages for bad device/backend values
        raise UserError(f"cannot run checkpoint {str(path)!r}: {error}") from None
    return estimator, path
