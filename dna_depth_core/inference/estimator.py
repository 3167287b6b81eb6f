"""Depth from a single uint8 image: the one inference API the node and the CLI use."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint import ModelMetadata, load_checkpoint
from ..geometry import disp_to_depth
from ..networks import DepthNet, check_image_batch
from .backends import create_runner, resolve_backend


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
        depth_net: the network (not modified; backends run their own fused copy or export).
        metadata: the checkpoint metadata describing it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        half: run in float16 (CUDA with the eager backend only; ignored on the CPU).
        channels_last: use the channels-last memory format (eager backend).
        backend: ``"auto"`` (the fastest available for the device, see
            :data:`~dna_depth_core.inference.backends.AUTO_PREFERENCE`), ``"eager"``,
            ``"onnxruntime"`` or ``"openvino"``. The resolved name is ``self.backend``.
        cache_dir: where ONNX-based backends keep exported models (default
            ``$DNA_DEPTH_CACHE_DIR/onnx`` or ``~/.cache/dna_depth/onnx``).

    Raises:
        ValueError: unknown or unavailable device or backend (the message says what to do).
            With ``"auto"``, a backend that fails to start (export or compilation error)
            falls back to ``"eager"`` with a ``RuntimeWarning`` instead.
    """

    def __init__(
        self,
        depth_net: DepthNet,
        metadata: ModelMetadata,
        device: str = "auto",
        half: bool = False,
        channels_last: bool = True,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.metadata = metadata
        self.device = resolve_device(device)
        self.backend = resolve_backend(backend, self.device)
        dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        cache = Path(cache_dir) if cache_dir is not None else None
        depth_net = depth_net.eval()
        try:
            self._runner = create_runner(self.backend, depth_net, metadata, self.device, dtype, channels_last, cache)
        except Exception as error:
            if backend != "auto" or self.backend == "eager":
                raise
            # "auto" promises a working estimator: an engine that fails to export or compile this
            # network must not stop a robot's depth node, so fall back to the always-available one.
            warnings.warn(
                f"inference backend {self.backend!r} failed to start ({type(error).__name__}: {error}); "
                "falling back to 'eager'", RuntimeWarning, stacklevel=2,
            )
            self.backend = "eager"
            self._runner = create_runner("eager", depth_net, metadata, self.device, dtype, channels_last, cache)
        self.dtype = self._runner.dtype
        self.memory_format = self._runner.memory_format

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
        """``(B, 3, h, w)`` float RGB in [0, 1] at the network input size -> ``(B, 1, h, w)`` float32
        disparity in (0, 1), on ``self.device``."""
        check_image_batch(images)
        if tuple(images.shape[-2:]) != self.input_size:
            height, width = self.input_size
            raise ValueError(
                f"images must be at the network input size {height}x{width}, got "
                f"{images.shape[-2]}x{images.shape[-1]}; use preprocess() or estimate(), which resize"
            )
        return self._runner(images)

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
