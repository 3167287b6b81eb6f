"""Kernel choice for training on the CPU: the same arithmetic through PyTorch's faster kernels.

PyTorch's CPU convolution picks its kernel by a heuristic: a 1x1, stride-1, undilated
convolution of float32 input with a batch under 16 runs on one thread through its
generic im2col kernel ("THNN"), with any other setting through oneDNN. The generic
kernel's backward zero-fills the input gradient before accumulating into it, its forward
first copies the broadcast bias into the output and it copies non-contiguous gradients
(the channel slices of a concatenation's gradient) to contiguous ones: memory passes
over full-resolution maps that oneDNN does not make. DNA-Depth's decoder ends every
depthwise-separable convolution and its EfficientNet encoder every inverted-residual
block with such a 1x1 convolution. On one thread at 640x192, batch 4 (two trainers
stepping in turn in one process, CPU time), oneDNN took 4-5 % off the training step of
DNA-Depth-B0 (11.4 -> 10.9 s, twice) and left DNA-Depth-B1's unchanged (10.0 -> 10.1 s);
the decoder's alone is worth 1 % to either. At two threads and more, or batches of 16
and more, PyTorch picks oneDNN itself and this changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn


def cpu_training_rewrites_apply(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a layer's CPU-training rewrite applies to this call.

    The rewrites of this package that compute a layer's result in another way for training,
    equal to float rounding, were measured on the CPU in float32 and apply only there: when
    autograd records the call on CPU float32 ``x`` and ``weight``, outside autocast and
    tracing. GPUs, autocast, inference and traces for export or FLOP counting see the
    layers' plain form. The rewrites: the reflection padding as border terms
    (:func:`~dna_depth_core.networks.reflection_conv.reflection_padded_conv3x3`), a fusion
    node's pointwise and 3x3 convolutions as one
    (:meth:`~dna_depth_core.networks.depth_net.FusionNode.forward`) and a disparity head as
    one convolution per sample
    (:meth:`~dna_depth_core.networks.depth_net.DisparityHead.folded_logits`).
    """
    recorded = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return (recorded and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing())


def prefer_onednn_for_pointwise_convolutions(module: nn.Module) -> int:
    """Let the 1x1, stride-1 convolutions of ``module`` run through oneDNN at any thread count.

    Sets their dilation to 2. A 1x1 kernel has a single tap, so dilation, which spaces the
    taps apart, changes nothing that the convolution computes (the output size, the
    weights and the state dict stay as they are) but counts as dilated for the kernel
    choice. Results equal the generic kernel's to float32 rounding (another summation
    order of the same products).

    Returns:
        How many convolutions were changed.
    """
    changed = 0
    for layer in module.modules():
        if (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride == (1, 1)
                and layer.dilation == (1, 1) and layer.padding == (0, 0)):
            layer.dilation = (2, 2)
            changed += 1
    return changed
