"""Depth from a single uint8 image: the one inference API the node and the CLI use."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint import ModelMetadata, load_checkpoint
from ..geometry import disp_to_depth
from ..networks import DepthNet


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return resolved


class DepthEstimator:
    """Runs a DNA-Depth network on single images.

    Images of any size are resized to the network input (``metadata.height`` x
    ``metadata.width``); the result is depth in metres-convention units
    (``depth_scale * network depth``, clipped to the network's depth range), at network
    size or resized back to the input size.

    Args:
        depth_net: the network (moved to ``device`` and put in eval mode).
        metadata: the checkpoint metadata describing it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        half: run in float16 (CUDA only).
        channels_last: use the channels-last memory format.
        backend: inference backend name; ``"auto"`` picks the fastest available.
    """

    def __init__(
        self,
        depth_net: DepthNet,
        metadata: ModelMetadata,
        device: str = "auto",
        half: bool = False,
        channels_last: bool = True,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "eager"):
            raise ValueError(f"unknown inference backend {backend!r}; choose 'auto' or 'eager'")
        self.backend = "eager"
        self.metadata = metadata
        self.device = resolve_device(device)
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.depth_net = depth_net.eval().to(self.device, self.dtype, memory_format=memory_format)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> DepthEstimator:
        """Load a checkpoint file (see :func:`dna_depth_core.checkpoint.load_checkpoint`)."""
        checkpoint = load_checkpoint(path)
        return cls(checkpoint.depth_net, checkpoint.metadata, **kwargs)

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        return self.metadata.height, self.metadata.width

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` RGB -> ``(1, 3, h, w)`` float in [0, 1] at network size on the device."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
        height, width = self.input_size
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        tensor = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None]
        return tensor.to(self.dtype, memory_format=self.memory_format).div_(255.0)

    @torch.inference_mode()
    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` network-size batch -> ``(B, 1, h, w)`` float32 disparity in (0, 1)."""
        return self.depth_net(images, multiscale=False).float()

    def estimate(self, image: np.ndarray, output_size: tuple[int, int] | None = None) -> np.ndarray:
        """Depth for one image.

        Args:
            image: uint8 ``(H, W, 3)`` RGB, any size.
            output_size: ``(height, width)`` of the returned map; ``None`` for network size.

        Returns:
            float32 ``(height, width)`` depth, ``depth_scale`` times network depth (metres
            when ``metadata.metric``), within ``[min_depth, max_depth] * depth_scale``.
        """
        disparity = self.predict_disparity(self.preprocess(image))
        depth = disp_to_depth(disparity, self.metadata.min_depth, self.metadata.max_depth)
        depth = depth[0, 0].cpu().numpy() * np.float32(self.metadata.depth_scale)
        if output_size is not None and tuple(output_size) != depth.shape:
            depth = cv2.resize(depth, (output_size[1], output_size[0]), interpolation=cv2.INTER_NEAREST)
        return depth
