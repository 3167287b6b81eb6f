"""Convert the authors' published DNA-Depth weights into this project's checkpoint format.

The authors (https://github.com/boyagesmile/DNA-Depth) publish their KITTI models as
Monodepth2-style folders (``mono_640m_b0`` ...) of PyTorch state dicts:

* ``encoder.pth``: their ``EfficientEncoder``, a lukemelas-style EfficientNet under
  ``model.`` (``model._conv_stem``, ``model._bn0``, ``model._blocks.N.*`` numbered flat
  over all stages), plus the non-tensor entries ``height``, ``width`` and ``use_stereo``
  that Monodepth2 stores for prediction time;
* ``depth.pth``: their ``EfficientDecoder``;
* optionally ``pose_encoder.pth`` (a torchvision ResNet-18 under ``encoder.``, 6 input
  channels) and ``pose.pth`` (Monodepth2's ``PoseDecoder``, ``net.0`` .. ``net.3``).

The mapping below is written module by module, from their module path to ours; the
tensor names inside a module (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``) are the same on both sides because both use the same torch
layers. Every source tensor must be mapped or be one of the listed unused ones, and
every tensor of our networks must be filled; anything else is an error that lists it.

Semantics checked against their forward code (not only names and shapes):

* Encoder: same network as timm's ``tf_efficientnet_b0``/``b1`` in eval mode — same
  block order, TensorFlow "same" padding (theirs is static for the training size, which
  equals timm's dynamic rule at every multiple of 32), BatchNorm eps 1e-3, Swish,
  squeeze-excitation on the expanded channels, no input normalisation. Their feature
  levels ``reduction_1..5`` are the outputs of the last block before each stride-2
  block and of the last block, i.e. timm's five ``features_only`` levels.
* Decoder: ``iconvL_0`` projects encoder level L (dropout before levels 4 and 5);
  ``simfpnL_C`` is the fusion node at pyramid level L in grid column C (X, Y, Z, W);
  inside a node ``up_conv`` sees the upsampled coarser map, ``conv`` the same level and
  ``down_conv`` (stride 2) the finer one, concatenated in that order, then ``iconv``
  (SepConv), ``cat_conv`` (reflection-padded 3x3) and Swish; ``dispS``/``attn_S`` is the
  head of scale S (3 from Y3, 2 from Z2, 1 from W1, 0 from the full-resolution stage
  ``upconv1`` -> ``conv1``).
* Pose decoder: their last convolution predicts two frames (12 channels); Monodepth2's
  trainer uses only the first (channels 0..5: axis-angle then translation), so only
  those rows are kept.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .checkpoint import Checkpoint, ModelMetadata
from .errors import UserError
from .networks import INPUT_DIVISOR, DepthNet, PoseNet, create_depth_net

SOURCE_REPOSITORY = "https://github.com/boyagesmile/DNA-Depth"

ENCODER_FILE = "encoder.pth"
DEPTH_DECODER_FILE = "depth.pth"
POSE_ENCODER_FILE = "pose_encoder.pth"
POSE_DECODER_FILE = "pose.pth"

ENCODERS_BY_BLOCK_COUNT = {16: "tf_efficientnet_b0", 23: "tf_efficientnet_b1"}
"""Their flat ``_blocks`` count identifies the EfficientNet variant."""

STEREO_DEPTH_SCALE = 5.4
"""Monodepth2 trains stereo models with a nominal 0.1 baseline; KITTI's is 0.54 m."""

# --- depth encoder: lukemelas EfficientNet -> timm EfficientNetFeatures ----------------

_ENCODER_STEM = {"model._conv_stem": "encoder.conv_stem", "model._bn0": "encoder.bn1"}

# Blocks without expansion (timm DepthwiseSeparableConv; their expand_ratio 1).
_DEPTHWISE_SEPARABLE_PARTS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}

# Blocks with a 1x1 expansion (timm InvertedResidual).
_INVERTED_RESIDUAL_PARTS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}

_BATCH_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

ENCODER_UNUSED = frozenset(
    ["height", "width", "use_stereo", "model._conv_head.weight", "model._fc.weight", "model._fc.bias"]
    + [f"model._bn1.{name}" for name in _BATCH_NORM_TENSORS]
)
"""``encoder.pth`` entries with no counterpart: Monodepth2's size entries and, in files
saved from the unmodified EfficientNet, its 1280-channel classification head (1x1 conv,
BatchNorm, classifier), which the depth network never runs."""

# --- depth decoder ---------------------------------------------------------------------

_SEPARABLE_CONV = {"depthwise_conv.conv": "depthwise", "pointwise_conv.conv": "pointwise"}
_CONV3X3 = {"conv": "1"}  # theirs: pad + conv attributes; ours: Sequential(pad, conv)
_ATTENTION = {"fc.0": "fc.0", "fc.2": "fc.2"}  # Linear, ReLU, Linear in both

# Inside a fusion node, in their forward's order: the three inputs, concatenated as
# [up, same, down], then the fusion SepConv and the 3x3 conv (followed by Swish).
_NODE_PARTS = {
    "up_conv": ("up", _SEPARABLE_CONV),  # nearest-upsampled coarser level
    "conv": ("mid", _SEPARABLE_CONV),  # same level
    "down_conv": ("down", _SEPARABLE_CONV),  # finer level, stride 2; level-1 nodes have none
    "iconv": ("fuse", _SEPARABLE_CONV),
    "cat_conv": ("conv", _CONV3X3),
}

# Their decoder module -> (our module, sub-module mapping). simfpn{level}_{column}: the
# paper's node at pyramid level `level` (1 = stride 2) in column X, Y, Z, W.
DECODER_MODULES: dict[str, tuple[str, dict[str, str]]] = {
    "iconv1_0": ("decoder.projections.0", _SEPARABLE_CONV),
    "iconv2_0": ("decoder.projections.1", _SEPARABLE_CONV),
    "iconv3_0": ("decoder.projections.2", _SEPARABLE_CONV),
    "iconv4_0": ("decoder.projections.3", _SEPARABLE_CONV),
    "iconv5_0": ("decoder.projections.4", _SEPARABLE_CONV),
    "upconv1": ("decoder.full_res_in", _SEPARABLE_CONV),
    "conv1.0": ("decoder.full_res_conv", _CONV3X3),  # conv1 = Sequential(Conv3x3, Swish, SepConv)
    "conv1.2": ("decoder.full_res_out", _SEPARABLE_CONV),
    **{f"attn_{scale}": (f"decoder.heads.{scale}.attention", _ATTENTION) for scale in range(4)},
    **{f"disp{scale}.0": (f"decoder.heads.{scale}.conv", _SEPARABLE_CONV) for scale in range(4)},  # (SepConv, Sigmoid)
}
DECODER_NODES = {
    "simfpn4_0": "x4", "simfpn3_0": "x3", "simfpn2_0": "x2", "simfpn1_0": "x1",
    "simfpn3_1": "y3", "simfpn2_1": "y2", "simfpn1_1": "y1",
    "simfpn2_2": "z2", "simfpn1_2": "z1",
    "simfpn1_3": "w1",
}

# --- pose network: torchvision ResNet + Monodepth2 PoseDecoder -> our PoseNet -------------

POSE_DECODER_MODULES = {"net.0": "decoder.0", "net.1": "decoder.2", "net.2": "decoder.4", "net.3": "decoder.6"}
"""Their ModuleList (squeeze, pose 0, pose 1, pose 2) -> our Sequential with ReLUs between."""

POSE_ENCODER_UNUSED = frozenset({"encoder.fc.weight", "encoder.fc.bias"})
"""torchvision's ImageNet classifier, never run by the pose encoder."""

_POSE_VECTOR = 6  # axis-angle (3) + translation (3) per predicted frame


def first_pose_frame(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Keep the first predicted frame's rows of their last pose convolution (``net.3``).

    Its output channels are ``frame * 6 + (axis-angle 0..2, translation 3..5)``, and the
    trainer only ever reads frame 0.
    """
    if key.startswith("net.3.") and tensor.shape[0] % _POSE_VECTOR == 0:
        return tensor[:_POSE_VECTOR]
    return tensor


class WeightImportError(UserError):
    """Source weights that are unreadable or do not fit the architecture they should hold."""


def _tensor_names_by_module(keys) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key in keys:
        module, _, name = key.rpartition(".")
        grouped.setdefault(module, []).append(name)
    return grouped


def _expand(module_map: dict[str, str], target_keys) -> dict[str, str]:
    """Their tensor key -> our tensor key, from a module mapping and our state-dict keys."""
    ours_by_module = _tensor_names_by_module(target_keys)
    key_map = {}
    for theirs, ours in module_map.items():
        if ours not in ours_by_module:
            raise ValueError(f"mapping names {ours!r}, which the network does not have")
        for name in ours_by_module[ours]:
            key_map[f"{theirs}.{name}"] = f"{ours}.{name}"
    return key_map


def encoder_module_map(depth_net: DepthNet) -> dict[str, str]:
    """``encoder.pth`` module paths -> :class:`DepthNet` module paths.

    Their blocks are numbered flat (``model._blocks.0`` .. ``15`` for B0, ``22`` for B1)
    in the same order as timm's ``blocks.<stage>.<index>``.
    """
    mapping = dict(_ENCODER_STEM)
    flat_index = 0
    for stage, blocks in enumerate(depth_net.encoder.blocks):
        for index, block in enumerate(blocks):
            parts = _INVERTED_RESIDUAL_PARTS if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE_PARTS
            for theirs, ours in parts.items():
                mapping[f"model._blocks.{flat_index}.{theirs}"] = f"encoder.blocks.{stage}.{index}.{ours}"
            flat_index += 1
    return mapping


def decoder_module_map() -> dict[str, str]:
    """``depth.pth`` module paths -> :class:`DepthNet` module paths (all decoder variants)."""
    modules = dict(DECODER_MODULES)
    for theirs, node in DECODER_NODES.items():
        has_finer = not node.endswith("1")
        modules.update({
            f"{theirs}.{part}": (f"decoder.nodes.{node}.{ours}", inner)
            for part, (ours, inner) in _NODE_PARTS.items() if has_finer or part != "down_conv"
        })
    return {
        f"{theirs}.{inner_theirs}": f"{ours}.{inner_ours}"
        for theirs, (ours, inner) in modules.items()
        for inner_theirs, inner_ours in inner.items()
    }


def pose_encoder_module_map(pose_net: PoseNet) -> dict[str, str]:
    """``pose_encoder.pth`` module paths -> :class:`PoseNet` ones: torchvision's and timm's
    ResNets name their layers identically (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ``layer2.0.downsample.0`` ...), both under ``encoder.``."""
    modules = _tensor_names_by_module(k for k in pose_net.state_dict() if k.startswith("encoder."))
    return {module: module for module in modules}


def load_state_file(path: Path) -> dict[str, Any]:
    """Load a ``.pth`` state dict without unpickling arbitrary objects (``weights_only``).

    Raises:
        WeightImportError: missing, unreadable, needing full unpickling, or not a dict.
    """
    if not path.is_file():
        raise WeightImportError(f"{str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if refused is None:  # torch reports corrupt files as unpickling errors too
            raise WeightImportError(f"{str(path)!r} is not a readable PyTorch file (corrupt or truncated)") from None
        raise WeightImportError(
            f"{str(path)!r} holds a Python object ({refused.group(1)}) besides tensors and numbers; "
            "loading it would mean running arbitrary code, which this tool refuses. Re-save it as a "
            "plain state dict: torch.save(model.state_dict(), path)."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise WeightImportError(f"{str(path)!r} is not a readable PyTorch file ({error or 'empty'})") from None
    if not isinstance(state, dict):
        raise WeightImportError(f"{str(path)!r} holds a {type(state).__name__}, expected a state dict")
    return state


def convert_state(
    source: dict[str, Any],
    key_map: dict[str, str],
    target: dict[str, torch.Tensor],
    unused: frozenset[str] = frozenset(),
    what: str = "source",
    adapt: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to our names, checking that everything is accounted for.

    Args:
        source: their state dict (may hold non-tensor entries, listed in ``unused``).
        key_map: their key -> our key.
        target: our state dict (names and shapes to fill).
        unused: source keys known to have no counterpart (ignored when present).
        what: the file, for messages.
        adapt: ``adapt(their_key, tensor)`` reshapes a source tensor before the shape check.

    Returns:
        Our key -> tensor, one entry for every key of ``target``.

    Raises:
        WeightImportError: listing every unexpected source key, missing source key,
            mis-shaped tensor and target key the mapping does not fill.
    """
    unexpected = sorted(key for key in source if key not in key_map and key not in unused)
    missing = sorted(key for key in key_map if key not in source)
    unfilled = sorted(set(target) - set(key_map.values()))
    converted, misshaped = {}, []
    for theirs, ours in key_map.items():
        if theirs not in source:
            continue
        tensor = source[theirs]
        if not isinstance(tensor, torch.Tensor):
            misshaped.append(f"{theirs}: a {type(tensor).__name__}, not a tensor")
            continue
        if adapt is not None:
            tensor = adapt(theirs, tensor)
        if tensor.shape != target[ours].shape:
            misshaped.append(f"{theirs}: {tuple(source[theirs].shape)}, expected {tuple(target[ours].shape)}")
            continue
        converted[ours] = tensor.to(target[ours].dtype).clone()
    if unexpected or missing or misshaped or unfilled:
        lines = [f"{what} does not match the published DNA-Depth architecture:"]
        for title, items in (
            ("unknown tensors", unexpected),
            ("missing tensors", missing),
            ("wrong shape", misshaped),
            ("our tensors with no source", unfilled),
        ):
            if items:
                shown = ", ".join(items[:20]) + (f" ... ({len(items) - 20} more)" if len(items) > 20 else "")
                lines.append(f"  {title} ({len(items)}): {shown}")
        lines.append("  Is this a folder of the authors' DNA-Depth weights (encoder.pth, depth.pth)?")
        raise WeightImportError("\n".join(lines))
    return converted


def detect_encoder(encoder_state: dict[str, Any]) -> str:
    """timm name of the EfficientNet in ``encoder.pth``, from its number of blocks."""
    blocks = {key.split(".")[2] for key in encoder_state if key.startswith("model._blocks.")}
    if len(blocks) not in ENCODERS_BY_BLOCK_COUNT:
        raise WeightImportError(
            f"{ENCODER_FILE} holds {len(blocks)} EfficientNet blocks; DNA-Depth B0 has 16 and B1 has 23. "
            "Is it an encoder of the authors' DNA-Depth?"
        )
    return ENCODERS_BY_BLOCK_COUNT[len(blocks)]


def _input_size(encoder_state: dict[str, Any], height: int | None, width: int | None) -> tuple[int, int]:
    height = encoder_state.get("height") if height is None else height
    width = encoder_state.get("width") if width is None else width
    if height is None or width is None:
        raise WeightImportError(
            f"{ENCODER_FILE} does not record the input size; pass --height and --width "
            "(the authors' models: 192x640 or 320x1024)"
        )
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value <= 0 or value % INPUT_DIVISOR:
            raise WeightImportError(f"input {name} must be a positive multiple of {INPUT_DIVISOR}, got {value!r}")
    return height, width


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_authors_weights(
    folder: str | Path,
    encoder: str | None = None,
    height: int | None = None,
    width: int | None = None,
) -> Checkpoint:
    """Build our networks from a folder of the authors' published weights.

    In eval mode the returned depth network gives the same disparities as the authors'
    model, to float precision, for RGB input in [0, 1] at any size that is a multiple of 32.

    Args:
        folder: holds ``encoder.pth`` and ``depth.pth``; with ``pose_encoder.pth`` and
            ``pose.pth`` too, the pose network is imported as well.
        encoder: ``"tf_efficientnet_b0"`` or ``"tf_efficientnet_b1"``; ``None`` detects it.
        height: network input height in pixels; ``None`` takes ``encoder.pth``'s.
        width: network input width in pixels; ``None`` takes ``encoder.pth``'s.

    Returns:
        A :class:`Checkpoint` (networks in eval mode on the CPU) whose metadata records the
        input size, the recipe's depth range 0.1-100, relative (or, for stereo-trained
        models, KITTI-metric) depth and the provenance.

    Raises:
        WeightImportError: missing or unreadable files, or tensors that do not fit.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightImportError(
            f"{str(folder)!r} is not a folder; pass the folder holding {ENCODER_FILE} and "
            f"{DEPTH_DECODER_FILE} (e.g. mono_640m_b0 from {SOURCE_REPOSITORY})"
        )
    for name in (ENCODER_FILE, DEPTH_DECODER_FILE):
        if not (folder / name).is_file():
            raise WeightImportError(
                f"{str(folder)!r} has no {name}; pass the folder holding {ENCODER_FILE} and "
                f"{DEPTH_DECODER_FILE} (e.g. mono_640m_b0 from {SOURCE_REPOSITORY})"
            )
    pose_files = [name for name in (POSE_ENCODER_FILE, POSE_DECODER_FILE) if (folder / name).is_file()]
    if len(pose_files) == 1:
        raise WeightImportError(
            f"{str(folder)!r} has {pose_files[0]} but not its partner; the pose network needs both "
            f"{POSE_ENCODER_FILE} and {POSE_DECODER_FILE} (remove the one present to import depth only)"
        )
    encoder_state = load_state_file(folder / ENCODER_FILE)
    decoder_state = load_state_file(folder / DEPTH_DECODER_FILE)

    detected = detect_encoder(encoder_state)
    if encoder is not None and encoder != detected:
        raise WeightImportError(f"--encoder {encoder} given, but {ENCODER_FILE} holds a {detected}")
    height, width = _input_size(encoder_state, height, width)

    depth_net = create_depth_net("dna_depth_b0", encoder=detected)
    target = depth_net.state_dict()
    encoder_target = {k: v for k, v in target.items() if k.startswith("encoder.")}
    decoder_target = {k: v for k, v in target.items() if k.startswith("decoder.")}
    state = convert_state(
        encoder_state, _expand(encoder_module_map(depth_net), encoder_target), encoder_target,
        ENCODER_UNUSED, str(folder / ENCODER_FILE),
    )
    state.update(convert_state(
        decoder_state, _expand(decoder_module_map(), decoder_target), decoder_target,
        what=str(folder / DEPTH_DECODER_FILE),
    ))
    depth_net.load_state_dict(state, strict=True)

    pose_net = None
    if pose_files:
        pose_net = PoseNet("resnet18")
        pose_target = pose_net.state_dict()
        pose_encoder_target = {k: v for k, v in pose_target.items() if k.startswith("encoder.")}
        pose_decoder_target = {k: v for k, v in pose_target.items() if k.startswith("decoder.")}
        pose_state = convert_state(
            load_state_file(folder / POSE_ENCODER_FILE),
            _expand(pose_encoder_module_map(pose_net), pose_encoder_target), pose_encoder_target,
            POSE_ENCODER_UNUSED, str(folder / POSE_ENCODER_FILE),
        )
        pose_state.update(convert_state(
            load_state_file(folder / POSE_DECODER_FILE),
            _expand(POSE_DECODER_MODULES, pose_decoder_target), pose_decoder_target,
            what=str(folder / POSE_DECODER_FILE), adapt=first_pose_frame,
        ))
        pose_net.load_state_dict(pose_state, strict=True)
        pose_net.eval()

    stereo = bool(encoder_state.get("use_stereo", False))
    files = [ENCODER_FILE, DEPTH_DECODER_FILE] + pose_files
    metadata = ModelMetadata(
        network=depth_net.config,
        height=height,
        width=width,
        min_depth=0.1,
        max_depth=100.0,
        depth_scale=STEREO_DEPTH_SCALE if stereo else 1.0,
        metric=stereo,
        pose_encoder="resnet18" if pose_net is not None else None,
        provenance={
            "source": f"the authors' published DNA-Depth KITTI model ({SOURCE_REPOSITORY})",
            "source_folder": str(folder.resolve()),
            "source_sha256": {name: _sha256(folder / name) for name in files},
            "training": "KITTI raw, Eigen-Zhou split, self-supervised "
                        + ("with stereo pairs (depth_scale 5.4: KITTI baseline 0.54 m / nominal 0.1)"
                           if stereo else "monocular (relative depth, median scaling for evaluation)"),
            "licence": "the authors' code is under the Monodepth2 non-commercial licence; check the "
                       "weights' terms before any commercial use",
            "converted_by": "dna-depth import-weights",
        },
    )
    return Checkpoint(metadata=metadata, depth_net=depth_net.eval(), pose_net=pose_net)
