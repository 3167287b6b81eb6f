"""ONNX export of a DNA-Depth network for ONNX Runtime, OpenVINO and TensorRT.

The exported graph is the :class:`~dna_depth_core.inference.fused.FusedDepthNet` form
of the network with :data:`~dna_depth_core.inference.fused.PORTABLE_REWRITES` (batch norm
folded, pointwise convolutions merged into the 3x3 convolutions they feed) from the
``torch.export``-based exporter: standard operators only (Conv, Pad, Resize, Concat,
Add, Mul, Sigmoid, ReduceMean, Gemm, Relu). ONNX Runtime, OpenVINO and TensorRT fuse the
remaining zero pads into their convolutions.

Graph interface:

- input ``image``: float32 ``(B, 3, H, W)`` RGB in [0, 1], no mean/std normalisation
  (any the checkpoint needs happens inside the graph); H and W multiples of 32.
- output ``disparity``: float32 ``(B, 1, H, W)`` sigmoid disparity in (0, 1). Depth in
  metres convention is ``depth_scale / (1 / max_depth + (1 / min_depth - 1 / max_depth) * disparity)``
  with the values stored in the model's ``metadata_props``.
- ``metadata_props["dna_depth"]``: the checkpoint's :class:`ModelMetadata` as JSON
  (``height``/``width`` are the exported size, or the checkpoint's for a dynamic size).

Static shapes (the default) suit TensorRT best; ``dynamic_batch``/``dynamic_size``
make the batch and the image size symbolic.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import torch

from ..checkpoint import METADATA_KEY, ModelMetadata
from ..inference.fused import PORTABLE_REWRITES, FusedDepthNet
from ..networks import INPUT_DIVISOR, DepthNet
from ..paths import atomic_write

INPUT_NAME = "image"
OUTPUT_NAME = "disparity"
SUPPORTED_OPSETS = (17, 18)
DEFAULT_OPSET = 17
"""Opset 17: the newest TensorRT 8.6 (JetPack 6.0) parses; TensorRT 10, ONNX Runtime and OpenVINO load it too."""

OUTPUT_DESCRIPTION_KEY = "dna_depth_output"
OUTPUT_DESCRIPTION = (
    "disparity: float32 (B, 1, H, W) in (0, 1). depth = depth_scale / (1/max_depth + "
    "(1/min_depth - 1/max_depth) * disparity), values in metadata_props['dna_depth'] "
    "(metres when metric is true, else relative). Input image: float32 (B, 3, H, W) RGB in [0, 1], "
    "H and W multiples of 32."
)
_MAX_DYNAMIC_SIDE = 32 * 256
"""Largest height/width accepted by a dynamic-size export (8192 pixels)."""


def export_onnx(
    depth_net: DepthNet,
    metadata: ModelMetadata,
    *,
    height: int | None = None,
    width: int | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    opset: int = DEFAULT_OPSET,
):
    """Export ``depth_net`` (on the CPU, float32) to an in-memory ONNX model.

    Args:
        depth_net: the network; it is not modified (a fused copy is exported).
        metadata: its checkpoint metadata, stored in the model's ``metadata_props``.
        height: input height in pixels (multiple of 32); default ``metadata.height``.
        width: input width in pixels (multiple of 32); default ``metadata.width``.
        batch: batch size of a static-batch export.
        dynamic_batch: make the batch dimension symbolic (``"batch"``).
        dynamic_size: make height and width symbolic (``"height"``, ``"width"``; any
            multiples of 32 up to 8192). ``height``/``width`` then only set the trace size.
        opset: ONNX opset, 17 or 18.

    Returns:
        ``onnx.ModelProto``, checked with ``onnx.checker``.

    Raises:
        ValueError: sizes that are not positive multiples of 32, unsupported opset.
    """
    import onnx

    height = metadata.height if height is None else height
    width = metadata.width if width is None else width
    for name, value in (("height", height), ("width", width)):
        if value <= 0 or value % INPUT_DIVISOR:
            raise ValueError(f"{name} must be a positive multiple of {INPUT_DIVISOR}, got {value}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"opset must be one of {SUPPORTED_OPSETS}, got {opset}")

    fused = FusedDepthNet(_on_cpu_float32(depth_net), **PORTABLE_REWRITES)
    example = torch.rand(batch if not dynamic_batch else max(batch, 2), 3, height, width)
    shapes = {}
    if dynamic_batch:
        shapes[0] = torch.export.Dim("batch", min=1, max=1024)
    if dynamic_size:
        shapes[2] = INPUT_DIVISOR * torch.export.Dim("height_blocks", min=1, max=_MAX_DYNAMIC_SIDE // INPUT_DIVISOR)
        shapes[3] = INPUT_DIVISOR * torch.export.Dim("width_blocks", min=1, max=_MAX_DYNAMIC_SIDE // INPUT_DIVISOR)
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            fused, (example,), dynamo=True, opset_version=18, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": shapes} if shapes else None, optimize=True, verbose=False, report=False,
        )
    model = program.model_proto
    _name_dynamic_dimensions(model, dynamic_batch, dynamic_size)
    if opset == 17:
        model = downgrade_to_opset17(model)
    exported = dataclasses.replace(metadata, height=height, width=width) if not dynamic_size else metadata
    _set_metadata(model, exported)
    model.doc_string = f"DNA-Depth ({metadata.network.encoder}) monocular depth. {OUTPUT_DESCRIPTION}"
    onnx.checker.check_model(model)
    return model


def save_onnx(model, path: str | Path) -> None:
    """Write an ``onnx.ModelProto`` to ``path`` atomically (one self-contained file)."""
    atomic_write(path, lambda temporary: temporary.write_bytes(model.SerializeToString()))


def read_onnx_metadata(model) -> ModelMetadata:
    """The :class:`ModelMetadata` stored in an exported model's ``metadata_props``.

    Raises:
        ValueError: the model was not exported by :func:`export_onnx`.
    """
    from ..config import load_config

    props = {prop.key: prop.value for prop in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"the ONNX model has no '{METADATA_KEY}' metadata; was it exported by 'dna-depth export'?")
    return load_config(ModelMetadata, json.loads(props[METADATA_KEY]))


def downgrade_to_opset17(model):
    """Rewrite an opset-18 model of this exporter to opset 17, in place.

    Among the operators :func:`export_onnx` emits, opset 18 changed three: ``ReduceMean``
    takes its axes as an input instead of an attribute, ``Pad`` gained an optional
    ``axes`` input and ``Resize`` gained the ``antialias``, ``axes`` and
    ``keep_aspect_ratio_policy`` attributes. The ONNX version converter has no adapter for
    ``Pad``, so the three are rewritten here; the model must use only their opset-17
    behaviour (constant reduce axes, no pad axes, default resize attributes).

    Raises:
        ValueError: a node that needs opset 18.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    defaults_18 = {"noop_with_empty_axes": 0, "antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "ReduceMean" and len(node.input) > 1:
            axes = [int(a) for a in constants[node.input[1]].ravel()] if node.input[1] in constants else []
            if not axes:
                raise ValueError(f"ReduceMean {node.name!r} has non-constant or empty axes; cannot write opset 17")
            del node.input[1]
            node.attribute.append(helper.make_attribute("axes", axes))
        elif node.op_type == "Pad" and len(node.input) > 3 and node.input[3]:
            raise ValueError(f"Pad {node.name!r} uses the opset-18 axes input; cannot write opset 17")
        if node.op_type in ("ReduceMean", "Resize"):
            kept = []
            for attribute in node.attribute:
                if attribute.name == "axes" and node.op_type == "Resize":
                    raise ValueError(f"Resize {node.name!r} uses the opset-18 axes attribute; cannot write opset 17")
                if attribute.name in defaults_18:
                    if helper.get_attribute_value(attribute) != defaults_18[attribute.name]:
                        raise ValueError(f"{node.op_type} {node.name!r} sets {attribute.name}; cannot write opset 17")
                    continue
                kept.append(attribute)
            del node.attribute[:]
            node.attribute.extend(kept)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 17
    return model


def _on_cpu_float32(depth_net: DepthNet) -> DepthNet:
    parameter = next(depth_net.parameters())
    if parameter.device.type == "cpu" and parameter.dtype == torch.float32:
        return depth_net
    return copy.deepcopy(depth_net).to("cpu", torch.float32)


def _name_dynamic_dimensions(model, dynamic_batch: bool, dynamic_size: bool) -> None:
    """Give the symbolic dimensions of input and output readable names (batch, height, width)."""
    names = {0: "batch" if dynamic_batch else None, 2: "height" if dynamic_size else None,
             3: "width" if dynamic_size else None}
    for value in list(model.graph.input) + list(model.graph.output):
        for index, dimension in enumerate(value.type.tensor_type.shape.dim):
            if names.get(index):
                dimension.dim_param = names[index]


def _set_metadata(model, metadata: ModelMetadata) -> None:
    del model.metadata_props[:]
    entries = {METADATA_KEY: json.dumps(dataclasses.asdict(metadata)), OUTPUT_DESCRIPTION_KEY: OUTPUT_DESCRIPTION}
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
