"""A reflection-padded 3x3 convolution for CPU training that never builds the padded copy.

``conv2d(reflection_pad(x, 1), weight)`` copies the whole input into a tensor one pixel
larger on every side, and PyTorch's CPU backward of the reflection pad is a slow scatter
(on the decoder's 64-channel 1/2-resolution and 32-channel full-resolution maps the pad
costs as much time as a third of the convolution). This computes the same result as a
zero-padded convolution plus what the reflected border adds: the first output row gets
the kernel's top row applied to input row 1 (reflected horizontally: that row includes the
corners), the last output row the kernel's bottom row applied to row ``H - 2``, and the
first and last output columns the kernel's left and right columns applied to input columns
1 and ``W - 2`` (zero-padded vertically, the corners being in the rows' terms). Backward
differentiates the same sum, accumulating the border terms into the convolution's own
gradients in place. The result equals the padded form's to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cpu_kernels import cpu_training_rewrites_apply

_ATEN = torch.ops.aten


def _row_inputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input rows 1 and ``H - 2``, reflected horizontally: ``(B, C, 1, W + 2)`` each."""
    height = x.shape[-2]
    return (F.pad(x[:, :, 1:2], (1, 1, 0, 0), mode="reflect"),
            F.pad(x[:, :, height - 2:height - 1], (1, 1, 0, 0), mode="reflect"))


def _convolution_backward(grad, inputs, weight, padding, need_input: bool, need_bias: bool = False):
    bias_sizes = [weight.shape[0]] if need_bias else None
    return _ATEN.convolution_backward(grad, inputs, weight, bias_sizes, [1, 1], padding, [1, 1], False, [0, 0], 1,
                                      [need_input, True, need_bias])


class _ReflectionPaddedConv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        width = x.shape[-1]
        top, bottom = _row_inputs(x)
        out = F.conv2d(x, weight, bias, padding=1)
        out[:, :, :1] += F.conv2d(top, weight[:, :, :1])
        out[:, :, -1:] += F.conv2d(bottom, weight[:, :, 2:])
        out[:, :, :, :1] += F.conv2d(x[:, :, :, 1:2], weight[:, :, :, :1], padding=(1, 0))
        out[:, :, :, -1:] += F.conv2d(x[:, :, :, width - 2:width - 1], weight[:, :, :, 2:], padding=(1, 0))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        height, width = x.shape[-2:]
        need_x = ctx.needs_input_grad[0]
        grad_x, grad_weight, grad_bias = _convolution_backward(grad, x, weight, [1, 1], need_x, ctx.has_bias)
        top, bottom = _row_inputs(x)
        for grad_row, row_input, kernel_row, row in ((grad[:, :, :1], top, 0, 1),
                                                     (grad[:, :, -1:], bottom, 2, height - 2)):
            grad_input, grad_kernel, _ = _convolution_backward(
                grad_row, row_input, weight[:, :, kernel_row:kernel_row + 1], [0, 0], need_x)
            grad_weight[:, :, kernel_row:kernel_row + 1] += grad_kernel
            if need_x:  # the reflected row's gradient, its two reflected ends folded back
                grad_x[:, :, row] += grad_input[:, :, 0, 1:-1]
                grad_x[:, :, row, 1] += grad_input[:, :, 0, 0]
                grad_x[:, :, row, width - 2] += grad_input[:, :, 0, -1]
        for grad_column, kernel_column, column in ((grad[:, :, :, :1], 0, 1), (grad[:, :, :, -1:], 2, width - 2)):
            grad_input, grad_kernel, _ = _convolution_backward(
                grad_column, x[:, :, :, column:column + 1], weight[:, :, :, kernel_column:kernel_column + 1], [1, 0],
                need_x)
            grad_weight[:, :, :, kernel_column:kernel_column + 1] += grad_kernel
            if need_x:
                grad_x[:, :, :, column:column + 1] += grad_input
        return grad_x, grad_weight, grad_bias if ctx.has_bias else None


def reflection_padded_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias)``, cheaper to train on the CPU.

    The border-term form (module docstring) is used where it pays: on the CPU, in float32
    without autocast, when autograd records the call; otherwise (GPUs, autocast, inference,
    tracing for export or FLOP counting) the padded form runs as is.

    Args:
        x: ``(B, C, H, W)`` with H, W >= 2 (reflection needs a second row and column).
        weight: ``(O, C, 3, 3)``.
        bias: ``(O,)`` or ``None``.

    Returns:
        ``(B, O, H, W)``.
    """
    if cpu_training_rewrites_apply(x, weight) and min(x.shape[-2:]) >= 2:
        return _ReflectionPaddedConv3x3.apply(x, weight, bias)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias)
