"""Does an exported ONNX model compute what its PyTorch network computes?

The model runs in ONNX Runtime on rendered synthetic street frames, the kind of image a
depth network is made for, and its disparity is compared with the same network's in
float64. Uniform noise would be a poor probe: it drives a trained network far outside
the activations it was trained on, where float32 PyTorch itself is 1e-3 off float64 and
no threshold separates rounding from a wrong graph.

The tolerance comes from the network itself: float32 PyTorch's largest distance to
float64 on the same frames is the rounding any float32 implementation of this network
has, and the export may be :data:`TOLERANCE_FACTOR` times that far (ONNX Runtime orders
and fuses operations differently and the graph folds batch norm, so it rounds
differently, but a graph that computes something else is orders of magnitude further:
on the shipped checkpoint at 320x96, float32 rounding is 1.8e-7 and the export 1.6e-7
from float64, while a 1 % change in the weights of any one of the first, a middle or the
last convolution moves disparity by 2e-3 to 5e-3).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..networks import DepthNet
from .onnx import INPUT_NAME, OUTPUT_NAME

TOLERANCE_FACTOR = 10.0
"""How many times float32 PyTorch's rounding error the export may differ from float64."""

MINIMUM_TOLERANCE = 1e-6
"""Disparity difference always accepted (about 16 float32 steps at 1): a network whose
float32 result happens to be exact to float64 on the check frames still has rounding."""


@dataclass
class Verification:
    """Result of :func:`verify_onnx_model`; disparities are in (0, 1).

    Attributes:
        difference: largest absolute disparity difference between ONNX Runtime and
            float64 PyTorch over the check frames.
        float32_rounding: the same for float32 PyTorch: this network's float32 noise floor.
        tolerance: the largest ``difference`` accepted.
        frames: number of check frames (all sizes together).
    """

    difference: float
    float32_rounding: float
    tolerance: float
    frames: int

    @property
    def passed(self) -> bool:
        return self.difference <= self.tolerance


def check_frames(batch: int, height: int, width: int) -> torch.Tensor:
    """``batch`` consecutive frames of a rendered synthetic street, float32 ``(B, 3, H, W)`` RGB in [0, 1]."""
    from ..data.synthetic import SyntheticSceneConfig, generate_sequence

    config = SyntheticSceneConfig(style="street", height=height, width=width, frames_per_sequence=max(batch, 3))
    images = generate_sequence(config, seed=0).images[:batch]
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def verify_onnx_model(model, depth_net: DepthNet, batch: int, sizes: list[tuple[int, int]]) -> Verification:
    """Compare ``model`` (an ``onnx.ModelProto`` from :func:`~dna_depth_core.export.export_onnx`)
    with ``depth_net`` on rendered frames, ``batch`` at each ``(height, width)`` of ``sizes``.

    Needs ``onnxruntime``. The network is not modified (float64 runs on a copy).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    network = depth_net if next(depth_net.parameters()).dtype == torch.float32 else copy.deepcopy(depth_net).float()
    network = network.to("cpu").eval()
    network64 = copy.deepcopy(network).double()
    difference = rounding = 0.0
    for height, width in sizes:
        images = check_frames(batch, height, width)
        exported = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0].astype(np.float64)
        with torch.inference_mode():
            single = network(images, multiscale=False).double().numpy()
            double = network64(images.double(), multiscale=False).numpy()
        difference = max(difference, float(np.abs(exported - double).max()))
        rounding = max(rounding, float(np.abs(single - double).max()))
    tolerance = max(TOLERANCE_FACTOR * rounding, MINIMUM_TOLERANCE)
    return Verification(difference=difference, float32_rounding=rounding, tolerance=tolerance,
                        frames=batch * len(sizes))
