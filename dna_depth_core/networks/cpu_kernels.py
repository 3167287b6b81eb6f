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

from torch import nn


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
