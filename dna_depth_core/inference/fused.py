"""An inference-only re-expression of :class:`DepthNet` that computes the same depth faster.

:class:`FusedDepthNet` is built from a trained :class:`DepthNet` (which stays untouched,
so checkpoints and training are unaffected) by exact algebraic rewrites; each changes
how a result is computed, never what is computed (agreement to float rounding, checked
when the network is built):

- Batch normalisation is folded into the preceding convolution (eval statistics).
- Where a pointwise convolution feeds a reflection-padded 3x3 convolution and merging
  the two costs fewer multiply-adds (the two-input fusion nodes at stride 2, the
  biggest ones), they become one 3x3 convolution (padding commutes with a pointwise map).
- With ``padding_in_kernel``: TensorFlow "same" padding of stride-2 convolutions on even
  sizes pads one row/column less at the top/left than at the bottom/right. Instead of
  copying the input into a padded tensor, the kernel gets a leading zero row and column
  and the convolution pads symmetrically, reading the same pixels with the same weights.
- With ``transposed_upsampling``: a depthwise 3x3 convolution of a nearest-upsampled map
  equals a depthwise 4x4 transposed convolution (stride 2) of the original map whose taps
  are sums of the 3x3 taps; the upsampled copy is never made and each output pixel
  needs 4 multiply-adds instead of 9.

The last two help PyTorch eager on the CPU (oneDNN) and hurt ONNX Runtime's CPU kernels,
which fuse an explicit zero pad into the convolution and have fast 3x3 depthwise but slow
grouped transposed convolutions (OpenVINO runs both forms about equally fast);
:data:`ONEDNN_REWRITES` and :data:`PORTABLE_REWRITES` name the two sets.

The check (:func:`verify_rewrite`: rewrite and original rebuilt and run in float64) costs
seconds, up to half a minute on a loaded CPU, so its verdict is kept per network: weights,
architecture, options, this module's code and the torch and timm versions, in memory and as
an empty marker file in the ``fused_check`` cache folder (:func:`dna_depth_core.paths.cache_dir`),
so a node restarting on the same checkpoint does not pay it again.

Only the full-resolution disparity is produced (the coarser heads are training-only).
Every operation is a standard convolution, padding, resize, concatenation or activation,
so the module exports to ONNX without custom operators.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, Conv2dSame
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..networks import DepthNet, DNADecoder
from ..paths import cache_dir
from ..networks.depth_net import FusionNode
from ..networks.layers import Conv3x3, SepConv, merged_pointwise_conv_weights

FUSION_CHECK_SIZE = (64, 96)
"""``(height, width)`` of the random image the rewrite is verified on when built."""

FUSION_TOLERANCE = 1e-9
"""Largest accepted absolute disparity difference between the rewrite and the original,
both built and run in float64 on the check image: the rewrite is exact, so anything above
rounding means a layer it does not handle."""

ONEDNN_REWRITES = {"padding_in_kernel": True, "transposed_upsampling": True}
"""Options of :class:`FusedDepthNet` for PyTorch eager (oneDNN kernels)."""

PORTABLE_REWRITES = {"padding_in_kernel": False, "transposed_upsampling": False}
"""Options for exported models (ONNX Runtime, OpenVINO, TensorRT): the original operator
types (3x3 depthwise, explicit zero pad, nearest resize), which every runtime fuses well."""


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None, **overrides) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` with ``conv``'s settings except ``overrides``, holding ``weight``/``bias``."""
    settings = dict(
        in_channels=conv.in_channels, out_channels=weight.shape[0], kernel_size=tuple(weight.shape[-2:]),
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
    )
    settings.update(overrides)
    result = nn.Conv2d(**settings, bias=bias is not None)
    result.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        result.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return result


def same_padding_as_symmetric(conv: nn.Conv2d) -> nn.Conv2d:
    """Rewrite a stride-2 TensorFlow-"same" convolution for even input sizes without a pad copy.

    On an even size with an odd kernel ``k`` TensorFlow pads ``(k - 2) // 2`` before and
    ``k // 2`` after. Prefixing the kernel with one zero row and column and padding
    ``k // 2`` on both sides reads the same pixels with the same weights. Valid for even
    input height and width only, which every stride-2 layer of a DNA-Depth network sees
    (inputs are multiples of 32).

    Args:
        conv: a convolution with stride 2, odd square kernel, no dilation (its own
            padding is ignored: timm's ``Conv2dSame`` pads in ``forward``).

    Returns:
        A plain ``nn.Conv2d`` with a ``(k + 1) x (k + 1)`` kernel and padding ``k // 2``.
    """
    kernel = conv.kernel_size[0]
    if conv.stride != (2, 2) or conv.kernel_size != (kernel, kernel) or kernel % 2 == 0 or conv.dilation != (1, 1):
        raise ValueError(f"expected a stride-2 odd square kernel without dilation, got {conv}")
    pad_after = kernel // 2
    weight = F.pad(conv.weight, (1, 0, 1, 0))
    return _conv_like(conv, weight, conv.bias, padding=pad_after)


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm into the convolution that feeds it, in place.

    A ``BatchNorm2d`` child registered directly after a ``Conv2d`` child of the same
    parent is taken to consume that convolution's output (true of timm's EfficientNet,
    MobileNet and ResNet blocks); the convolution gets the scaled weights and a bias, and
    the norm is replaced by its activation (timm's ``BatchNormAct2d``) or removed.
    :class:`FusedDepthNet` verifies the folded network against the original.

    Returns:
        ``module`` itself.
    """
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (_, previous), (name, child) in zip(children, children[1:]):
            if not (isinstance(child, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d)):
                continue
            if child.running_var is None:  # normalises with batch statistics even in eval mode
                continue
            with torch.no_grad():
                weight, bias = fuse_conv_bn_weights(
                    previous.weight, previous.bias, child.running_mean, child.running_var, child.eps,
                    child.weight, child.bias,
                )
            previous.weight = nn.Parameter(weight, requires_grad=False)
            previous.bias = nn.Parameter(bias, requires_grad=False)
            replacement = nn.Sequential(child.drop, child.act) if isinstance(child, BatchNormAct2d) else nn.Identity()
            setattr(parent, name, replacement)
    return module


def _rewrite_same_padding(module: nn.Module, padding_in_kernel: bool) -> nn.Module:
    """Replace every stride-2 timm ``Conv2dSame`` in ``module`` by :func:`_stride2_same`, in place.

    timm computes the padding from the input size at every call; for the even sizes a
    DNA-Depth encoder sees it is fixed, so it is decided once here.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv2dSame) and child.stride == (2, 2):
                setattr(parent, name, _stride2_same(child, padding_in_kernel))
    return module


class SamePadConv(nn.Module):
    """Zero-pad by ``(left, right, top, bottom)`` then convolve: TensorFlow "same" for a fixed parity of sizes."""

    def __init__(self, conv: nn.Conv2d, padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv = conv
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


def _stride2_same(conv: nn.Conv2d, padding_in_kernel: bool) -> nn.Module:
    """A stride-2 TensorFlow-"same" convolution for even input sizes, with the padding in the kernel or explicit."""
    if padding_in_kernel:
        return same_padding_as_symmetric(conv)
    kernel = conv.kernel_size[0]
    before, after = (kernel - 2) // 2, kernel - 2 - (kernel - 2) // 2
    return SamePadConv(_conv_like(conv, conv.weight, conv.bias, padding=0), (before, after, before, after))


def _depthwise(sep: SepConv, padding_in_kernel: bool = True) -> nn.Module:
    """The depthwise half of ``sep`` as a plain convolution (stride 2 handled by :func:`_stride2_same`)."""
    if sep.stride == 2:
        return _stride2_same(sep.depthwise, padding_in_kernel)
    return _conv_like(sep.depthwise, sep.depthwise.weight, None)


class UpsampleConv(nn.Module):
    """Nearest-neighbour x2 upsampling then ``conv``: ``(B, C, H, W)`` -> ``(B, C', 2H, 2W)``."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _upsampled_depthwise(sep: SepConv, transposed_upsampling: bool) -> nn.Module:
    if transposed_upsampling:
        return upsampled_depthwise_as_transposed(sep.depthwise)
    return UpsampleConv(_conv_like(sep.depthwise, sep.depthwise.weight, None))


def _pointwise(sep: SepConv) -> nn.Conv2d:
    return _conv_like(sep.pointwise, sep.pointwise.weight, sep.pointwise.bias)


def upsampled_depthwise_as_transposed(depthwise: nn.Conv2d) -> nn.ConvTranspose2d:
    """``depthwise(nearest_upsample_x2(x))`` as one transposed convolution of ``x``.

    For the output row ``2i`` the 3x3 kernel's rows 0 and 1+2 fall on input rows ``i-1``
    and ``i``; for row ``2i+1`` rows 0+1 and 2 fall on ``i`` and ``i+1`` (zero padding
    on both grids agrees). A stride-2 transposed convolution with padding 1 places its
    4x4 kernel rows ``(3, 1)`` and ``(2, 0)`` on exactly those input rows, so its
    kernel rows are ``(k2, k1 + k2, k0 + k1, k0)``; columns likewise.

    Args:
        depthwise: a stride-1, padding-1, 3x3 depthwise convolution without bias.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, 2H, 2W)``.
    """
    if depthwise.kernel_size != (3, 3) or depthwise.padding != (1, 1) or depthwise.stride != (1, 1):
        raise ValueError(f"expected a 3x3 stride-1 convolution with padding 1, got {depthwise}")
    channels = depthwise.in_channels
    if depthwise.groups != channels or depthwise.out_channels != channels or depthwise.bias is not None:
        raise ValueError(f"expected a depthwise convolution without bias, got {depthwise}")
    taps = depthwise.weight.new_tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
    kernel = torch.einsum("ra,cab,sb->crs", taps, depthwise.weight[:, 0], taps)[:, None]
    transposed = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, groups=channels, bias=False)
    transposed.weight = nn.Parameter(kernel.detach().clone(), requires_grad=False)
    return transposed


def merge_pointwise_into_conv(pointwise: nn.Conv2d, conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(pad(pointwise(x)))`` as one convolution ``conv'(pad(x))`` (:func:`merged_pointwise_conv_weights`)."""
    weight, bias = merged_pointwise_conv_weights(pointwise, conv)
    return _conv_like(conv, weight, bias, in_channels=pointwise.in_channels)


class ReflectConv(nn.Module):
    """Reflection pad by ``kernel // 2`` then a convolution without padding: ``(B, C, H, W)`` -> ``(B, C', H, W)``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.padding = (conv.kernel_size[1] // 2,) * 2 + (conv.kernel_size[0] // 2,) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding, mode="reflect"))


def _reflect_conv(conv3x3: Conv3x3, pointwise: nn.Conv2d | None = None) -> ReflectConv:
    conv = conv3x3[1]
    if pointwise is not None:
        return ReflectConv(merge_pointwise_into_conv(pointwise, conv))
    return ReflectConv(_conv_like(conv, conv.weight, conv.bias))


class FusedNode(nn.Module):
    """:class:`FusionNode` rewritten; same inputs and output.

    Shape:
        coarser ``(B, C, H/2, W/2)``, same ``(B, C, H, W)``, finer ``(B, C, 2H, 2W)`` or
        ``None`` -> ``(B, C, H, W)``.
    """

    def __init__(self, node: FusionNode, padding_in_kernel: bool, transposed_upsampling: bool) -> None:
        super().__init__()
        self.up = nn.Sequential(_upsampled_depthwise(node.up, transposed_upsampling), _pointwise(node.up))
        self.mid = nn.Sequential(_depthwise(node.mid), _pointwise(node.mid))
        self.down = None
        if node.down is not None:
            self.down = nn.Sequential(_depthwise(node.down, padding_in_kernel), _pointwise(node.down))
        if node.merge_fuse_pointwise:
            self.fuse = _depthwise(node.fuse)
            self.conv = _reflect_conv(node.conv, pointwise=node.fuse.pointwise)
        else:
            self.fuse = nn.Sequential(_depthwise(node.fuse), _pointwise(node.fuse))
            self.conv = _reflect_conv(node.conv)

    def forward(self, coarser: torch.Tensor, same: torch.Tensor, finer: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.up(coarser), self.mid(same)]
        if self.down is not None:
            parts.append(self.down(finer))
        return F.silu(self.conv(self.fuse(torch.cat(parts, dim=1))), inplace=True)


class FusedDecoder(nn.Module):
    """:class:`DNADecoder` rewritten, full-resolution output only: features (finest first) -> ``(B, 1, H, W)``."""

    def __init__(self, decoder: DNADecoder, padding_in_kernel: bool, transposed_upsampling: bool) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Sequential(_depthwise(p), _pointwise(p)) for p in decoder.projections)
        self.nodes = nn.ModuleDict(
            {name: FusedNode(node, padding_in_kernel, transposed_upsampling) for name, node in decoder.nodes.items()}
        )
        self.full_res_in = nn.Sequential(
            _upsampled_depthwise(decoder.full_res_in, transposed_upsampling), _pointwise(decoder.full_res_in)
        )
        self.full_res_conv = _reflect_conv(decoder.full_res_conv)
        self.full_res_out = nn.Sequential(_depthwise(decoder.full_res_out), _pointwise(decoder.full_res_out))
        self.head = copy.deepcopy(decoder.heads[0])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        previous = {level + 1: proj(f) for level, (proj, f) in enumerate(zip(self.projections, features))}
        for column in range(4):
            previous = {
                level: self.nodes[DNADecoder.node_name(column, level)](
                    previous[level + 1], previous[level], previous.get(level - 1)
                )
                for level in range(4 - column, 0, -1)
            }
        full = F.silu(self.full_res_conv(self.full_res_in(previous[1])), inplace=True)
        return self.head(self.full_res_out(full))


class FusedDepthNet(nn.Module):
    """Inference-only :class:`DepthNet`: same full-resolution disparity, fewer operations.

    Built from (and verified against) a depth network in eval mode; its weights are
    copies, so later changes to ``depth_net`` do not reach it. See the module docstring
    for the rewrites.

    Args:
        depth_net: the network to re-express (not modified).
        padding_in_kernel: stride-2 "same" padding as zero kernel taps instead of a pad
            (see the module docstring).
        transposed_upsampling: upsampling + depthwise convolution as one transposed
            convolution instead of a resize and a convolution.
        check: compare against ``depth_net`` on a random image, both in float64, and raise
            ``RuntimeError`` if the outputs differ by more than :data:`FUSION_TOLERANCE`
            (:func:`verify_rewrite`; once per network, see the module docstring).

    Shape:
        ``(B, 3, H, W)`` RGB in [0, 1], H and W multiples of 32 -> ``(B, 1, H, W)``
        disparity in (0, 1), as ``depth_net(images, multiscale=False)``.
    """

    def __init__(
        self,
        depth_net: DepthNet,
        padding_in_kernel: bool = True,
        transposed_upsampling: bool = True,
        check: bool = True,
    ) -> None:
        super().__init__()
        source = depth_net.eval()
        with torch.no_grad():
            encoder = fold_batch_norms(copy.deepcopy(source.encoder))
            self.encoder = _rewrite_same_padding(encoder, padding_in_kernel)
            self.decoder = FusedDecoder(source.decoder, padding_in_kernel, transposed_upsampling)
        self.register_buffer("input_mean", _copy_or_none(source.input_mean), persistent=False)
        self.register_buffer("input_std", _copy_or_none(source.input_std), persistent=False)
        self.eval().requires_grad_(False)
        if check:
            verify_rewrite(source, padding_in_kernel, transposed_upsampling)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in [0, 1] (H, W multiples of 32) -> ``(B, 1, H, W)`` disparity in (0, 1)."""
        if self.input_mean is not None:
            images = images - self.input_mean
        if self.input_std is not None:
            images = images / self.input_std
        return self.decoder(self.encoder(images))


_VERIFIED: set[str] = set()
"""Fingerprints (:func:`rewrite_fingerprint`) of the networks verified by this process."""


def rewrite_fingerprint(source: DepthNet, padding_in_kernel: bool, transposed_upsampling: bool) -> str:
    """SHA-256 (hex) of everything the check's verdict depends on: the weights and buffers,
    the architecture, the rewrite options, this module's source and the torch and timm versions."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    settings = {
        "config": dataclasses.asdict(source.config), "padding_in_kernel": padding_in_kernel,
        "transposed_upsampling": transposed_upsampling, "check_size": FUSION_CHECK_SIZE,
        "torch": torch.__version__, "timm": timm.__version__,
    }  # fmt: skip
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in source.state_dict().items():
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def verify_rewrite(source: DepthNet, padding_in_kernel: bool = True, transposed_upsampling: bool = True) -> None:
    """Check the rewrite of ``source`` with these options (:func:`_check_rewrite`) unless this
    very network passed before, in this process or (marker file) an earlier one.

    Raises:
        RuntimeError: the rewrite differs from ``source``; a failure is never remembered.
    """
    fingerprint = rewrite_fingerprint(source, padding_in_kernel, transposed_upsampling)
    if fingerprint in _VERIFIED:
        return
    marker = cache_dir("fused_check") / f"{fingerprint}.ok"
    if not marker.is_file():
        _check_rewrite(source, padding_in_kernel, transposed_upsampling)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # a folder we cannot write: the check simply runs again in the next process
    _VERIFIED.add(fingerprint)


@torch.no_grad()
def _check_rewrite(source: DepthNet, padding_in_kernel: bool, transposed_upsampling: bool) -> None:
    """Raise ``RuntimeError`` unless the rewrite of ``source``, redone in float64, matches
    ``source`` in float64 on a random image to :data:`FUSION_TOLERANCE`.

    Float64 throughout, so that only a layer the rewrite mishandles can show: the float32
    rewrite's folded weights round differently, and a trained network can amplify float32
    rounding to 1e-3 on a random image, which is far from anything it was trained on.
    """
    # One intra-op thread: float64 convolutions have no oneDNN kernels, and the fallback
    # splits each small layer over OpenMP threads whose spin-waiting on a shared CPU cost
    # 6-8x the CPU time and wall time of one thread (B0 at 64x96 under load: 6.5 s -> 0.8 s CPU).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        original = copy.deepcopy(source).double().eval()
        rewritten = FusedDepthNet(original, padding_in_kernel, transposed_upsampling, check=False)
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(1, 3, *FUSION_CHECK_SIZE, generator=generator, dtype=torch.float64)
        images = images.to(next(original.parameters()).device)
        difference = (rewritten(images) - original(images, multiscale=False)).abs().max().item()
    finally:
        torch.set_num_threads(threads)
    if not difference <= FUSION_TOLERANCE:
        raise RuntimeError(
            f"the fused inference network differs from the original by {difference:.2e} in disparity "
            f"(tolerance {FUSION_TOLERANCE:.0e}, float64); encoder {source.config.encoder!r} has a layer order "
            "the rewrite does not handle (see dna_depth_core.inference.fused.fold_batch_norms)"
        )


def _copy_or_none(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().clone()
