"""TensorBoard logging of a training run (scalars and images), a no-op on non-main processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps


def colorize_disparity(disparity: torch.Tensor, colormap: str = "magma") -> torch.Tensor:
    """Colour a disparity map for display (near = bright).

    Values are scaled by their 95th percentile (so a few near pixels do not wash out the
    rest) and clipped to [0, 1] before the colormap.

    Args:
        disparity: ``(1, H, W)`` or ``(H, W)`` float disparity (any positive scale).
        colormap: matplotlib colormap name.

    Returns:
        ``(3, H, W)`` float32 RGB in [0, 1] on the CPU.
    """
    values = disparity.detach().float().cpu().reshape(disparity.shape[-2:]).numpy()
    scale = float(np.percentile(values, 95)) or 1.0
    rgba = colormaps[colormap](np.clip(values / scale, 0.0, 1.0))
    return torch.from_numpy(rgba[..., :3].astype(np.float32)).permute(2, 0, 1)


class TrainingLogger:
    """Writes TensorBoard events under ``log_dir`` when ``enabled`` (rank 0), else does nothing.

    Scalars are grouped by tag prefix (``train/``, ``val/``, ``lr``...); images show one
    sample: the network input, its coloured disparity and the auto-mask (white = pixels
    the loss uses).
    """

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            # Imported lazily: TensorBoard is slow to import and not needed off rank 0.
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log ``{tag: value}`` at ``step``."""
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def images(self, step: int, image: torch.Tensor, disparity: torch.Tensor, automask: torch.Tensor) -> None:
        """Log one sample's ``(3, H, W)`` input in [0, 1], ``(1, H, W)`` disparity and ``(1, H, W)`` bool mask."""
        if self.writer is None:
            return
        self.writer.add_image("train/input", image.detach().float().cpu().clamp(0, 1), step)
        self.writer.add_image("train/disparity", colorize_disparity(disparity), step)
        self.writer.add_image("train/automask", automask.detach().float().cpu(), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
