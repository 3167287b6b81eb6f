"""Depth from a single uint8 image: the one inference API the node and the CLI use."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import ModelMetadata, load_checkpoint
from ..data.camera.calibration import CameraCalibration
from ..data.camera.preparation import FramePlan, PreparationWarning, plan_for_checkpoint
from ..devices import resolve_device
from ..geometry import disp_to_depth
from ..networks import DepthNet, check_image_batch
from .backends import start_runner
from .precision import PrecisionRecord, read_checkpoint_precision


class DepthEstimator:
    """Runs a DNA-Depth network on single images.

    Images of any size are prepared exactly as the checkpoint's training frames were
    (``metadata.preparation``; see :mod:`dna_depth_core.data.camera.preparation`):
    rectified with their calibration when one is given, centre-cropped to the network's
    aspect ratio (never stretched) and resized to the network input (``metadata.height``
    x ``metadata.width``). The result is depth in metres-convention units
    (``depth_scale * network depth``, times the focal-length factor of the camera when
    ``focal_rescale``), at network size or on the camera image, NaN outside the network's
    view. A camera that differs from the training camera (aspect ratio, focal length) gets
    one :class:`~dna_depth_core.data.camera.preparation.PreparationWarning` saying what is
    done about it.

    Args:
        depth_net: the network (not modified; backends run their own fused copy or export).
        metadata: the checkpoint metadata describing it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        half: the older spelling of ``precision="fp16"`` (used when precision is ``auto``;
            ignored on the CPU).
        channels_last: use the channels-last memory format (eager backend).
        backend: ``"auto"`` (the fastest available for the device and precision, see
            :data:`~dna_depth_core.inference.backends.AUTO_PREFERENCE`), ``"eager"``,
            ``"onnxruntime"``, ``"openvino"`` or ``"tensorrt"``. The resolved name is ``self.backend``.
        cache_dir: where ONNX-based backends keep exported models (default
            ``$DNA_DEPTH_CACHE_DIR/onnx`` or ``~/.cache/dna_depth/onnx``).
        focal_rescale: multiply depth by the ratio of a calibrated camera's normalised focal
            length at the network input to the training camera's (a monocular network's
            depth scales with it); ``False`` publishes the network's depth as it is.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"``, ``"int8"`` or ``"fp16"`` (see
            :mod:`~dna_depth_core.inference.precision`): ``auto`` is the fastest configuration
            that met the accuracy budget in ``precision_record``, else float32. The resolved
            name is ``self.precision``; ``self.configuration_reason`` says why.
        precision_record: the checkpoint's measured record (``from_checkpoint`` reads it).
        int8_model: the checkpoint's calibrated int8 ONNX model (``from_checkpoint`` reads it).

    Raises:
        ValueError: unknown or unavailable device, backend or precision (the message says
            what to do). What ``auto`` chose falls back instead when its engine fails to
            start (reduced precision to ``fp32``, a backend to ``eager``), with a ``RuntimeWarning``.
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
        focal_rescale: bool = True,
        precision: str = "auto",
        precision_record: PrecisionRecord | None = None,
        int8_model: bytes | None = None,
    ) -> None:
        self.metadata = metadata
        self.focal_rescale = focal_rescale
        self._plans: OrderedDict[tuple, FramePlan] = OrderedDict()
        self.device = resolve_device(device)
        if half and precision == "auto" and self.device.type == "cuda":
            precision = "fp16"
        cache = Path(cache_dir) if cache_dir is not None else None
        self._runner, configuration = start_runner(
            depth_net.eval(), metadata, self.device, precision, backend, channels_last, cache, precision_record,
            int8_model,
        )
        self.precision, self.backend = configuration.precision, configuration.backend
        self.configuration_reason = configuration.reason
        self.dtype = self._runner.dtype
        self.memory_format = self._runner.memory_format

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> DepthEstimator:
        """Load a checkpoint file (see :func:`dna_depth_core.checkpoint.load_checkpoint`) with its
        precision record and int8 model, if it stores them."""
        checkpoint = load_checkpoint(path)
        record, int8_model = read_checkpoint_precision(path)
        return cls(checkpoint.depth_net, checkpoint.metadata, precision_record=record, int8_model=int8_model, **kwargs)

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        return self.metadata.height, self.metadata.width

    def plan(
        self, image_size: tuple[int, int], calibration: CameraCalibration | None = None, image_rectified: bool = False
    ) -> FramePlan:
        """The preparation plan for ``image_size = (height, width)`` images of a camera,
        made once per camera (the last few are kept) and warned about once when the camera
        differs from the training camera.

        Args:
            calibration: the camera's calibration; ``None`` treats images as pinhole images
                of unknown intrinsics (crop and resize only, no focal-length factor).
            image_rectified: the images are rectified already (no undistortion).

        Raises:
            CalibrationError: the calibration does not fit the images or cannot be undone.
        """
        key = (tuple(image_size), None if calibration is None else calibration.key, image_rectified)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_for_checkpoint(self.metadata.preparation, self.input_size, image_size, calibration,
                                       image_rectified, self.focal_rescale)
            if plan.notice:
                warnings.warn(plan.notice, PreparationWarning, stacklevel=3)
            self._plans[key] = plan
            while len(self._plans) > 8:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return plan

    def to_tensor(self, network_image: np.ndarray) -> torch.Tensor:
        """uint8 ``(h, w, 3)`` RGB at network size -> ``(1, 3, h, w)`` float in [0, 1] on the device."""
        if network_image.shape[:2] != self.input_size:
            raise ValueError(
                f"expected a {self.input_size} network input, got {network_image.shape[:2]}; use preprocess()"
            )
        if self.device.type == "cpu":
            # In numpy, single-threaded: for one ~100 kB image, waking torch's intra-op threads
            # (asleep after the forward pass) cost the depth node 0.4 ms a frame, the
            # arithmetic 0.05 ms. The same float32 division, so the same values bit for bit.
            planar = np.empty((1, 3, *network_image.shape[:2]), np.float32)
            np.divide(network_image.transpose(2, 0, 1), np.float32(255.0), out=planar[0])
            return torch.from_numpy(planar).to(self.dtype, memory_format=self.memory_format)
        if not network_image.flags.writeable:  # a view of a message buffer; torch wants writable memory
            network_image = network_image.copy()
        tensor = torch.from_numpy(network_image).to(self.device).permute(2, 0, 1)[None]
        return tensor.to(self.dtype, memory_format=self.memory_format).div_(255.0)

    def preprocess(
        self, image: np.ndarray, calibration: CameraCalibration | None = None, image_rectified: bool = False
    ) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` RGB camera image -> ``(1, 3, h, w)`` float in [0, 1] network input
        on the device, prepared by :meth:`plan`."""
        _check_image(image)
        plan = self.plan(image.shape[:2], calibration, image_rectified)
        return self.to_tensor(plan.apply(image))

    @torch.inference_mode()
    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` float RGB in [0, 1] at the network input size -> ``(B, 1, h, w)`` float32
        disparity in (0, 1), on ``self.device``."""
        check_image_batch(images)
        if tuple(images.shape[-2:]) != self.input_size:
            height, width = self.input_size
            raise ValueError(
                f"images must be at the network input size {height}x{width}, got "
                f"{images.shape[-2]}x{images.shape[-1]}; use preprocess() or estimate(), which prepare images"
            )
        return self._runner(images)

    def estimate(
        self,
        image: np.ndarray,
        calibration: CameraCalibration | None = None,
        resolution: str = "network",
        image_rectified: bool = False,
    ) -> np.ndarray:
        """Depth for one image.

        Args:
            image: uint8 ``(H, W, 3)`` RGB, any size.
            calibration: the camera's calibration (see :meth:`plan`).
            resolution: ``"network"``: the network's input size and view; ``"input"``: the
                camera's (rectified) image, NaN outside the part the network saw. Either way
                NaN on the rectification border (pixels with no source pixel in the image).
            image_rectified: the image is rectified already.

        Returns:
            float32 depth, ``depth_scale`` times network depth times the plan's
            ``depth_factor`` (metres when ``metadata.metric``), within ``[min_depth,
            max_depth]`` times those factors.
        """
        if resolution not in ("network", "input"):
            raise ValueError(f"resolution must be 'network' or 'input', got {resolution!r}")
        _check_image(image)
        plan = self.plan(image.shape[:2], calibration, image_rectified)
        disparity = self.predict_disparity(self.to_tensor(plan.apply(image)))
        depth = disp_to_depth(disparity, self.metadata.min_depth, self.metadata.max_depth)
        depth = depth[0, 0].cpu().numpy() * np.float32(self.metadata.depth_scale * plan.depth_factor)
        return plan.to_image(depth) if resolution == "input" else plan.mask_border(depth)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
