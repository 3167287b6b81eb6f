"""bf16 on OpenVINO with the precision-sensitive first layers kept in float32.

OpenVINO's ``INFERENCE_PRECISION_HINT=bf16`` runs every floating-point layer in bfloat16
(8 mantissa bits). Measured on the project's checkpoints (docs/deployment.md, "Precision"),
most of the depth change against float32 comes from the first, highest-resolution layers:
the image and the stem's weights rounded to bfloat16 and the first blocks' activations. On
the metric model at 640x192 plain bf16 changed the street style's per-pixel depth by 6.4 %
(p99); the same engine with every layer above 1/8 of the input resolution in float32
changed it by 0.9 % (those layers hold about 2 % of DNA-Depth-B0's multiply-adds; in
float32 they take 16.6 ms of OpenVINO's per-layer counters on one thread against 13.2 ms in
bf16, about 3 % of the forward pass). A boundary at 1/2 fails the budget on the shipped
checkpoint and a fine-tune of it (p99 3.7-4.8 %); one at 1/4 meets it with less margin and
saves nothing measurable, so the boundary stays at 1/8.

:func:`mark_early_layers_float32` selects those layers by shape, for any network: every
operation the first map at 1/8 of the input width depends on (its ancestors and itself).
OpenVINO keeps an operation in its original precision when its runtime info carries the
``precise`` attribute (``ov::disable_fp16_compression``). The Python API cannot create
that attribute (a string in the runtime info makes compilation fail), but the IR reader
does, so the model is written to IR in a temporary folder, the attribute added to those
layers and the model read back. :func:`float32_layers_in_compiled` reads back what the
compiled model runs in float32, so a runner can refuse to start if the marking was ignored.
"""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path

FLOAT32_BELOW_DIVISOR = 8
"""Operations up to the first map at ``1/FLOAT32_BELOW_DIVISOR`` of the input width run in float32."""

_LAYER = re.compile(r'<layer id="\d+" name="([^"]*)" type="[^"]*" version="[^"]*">')
_PRECISE = '<rt_info><attribute name="precise" version="0" /></rt_info>'


def early_layer_names(model, divisor: int = FLOAT32_BELOW_DIVISOR) -> set[str]:
    """Friendly names of the operations the first map at ``1/divisor`` of the input width needs.

    Args:
        model: an ``openvino.Model`` with a static ``(B, 3, H, W)`` input.
        divisor: resolution factor; the first operation (in topological order) with a
            ``(B, C, h, w)`` output, ``1 < w <= W / divisor``, and all its ancestors count.

    Raises:
        ValueError: the model has no such map.
    """
    width = model.inputs[0].get_shape()[3]
    first = None
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Constant", "Parameter"):
            continue
        if any(output.get_partial_shape().rank.get_length() == 4 and output.get_partial_shape().is_static
               and 1 < output.get_shape()[3] <= width // divisor for output in op.outputs()):
            first = op
            break
    if first is None:
        raise ValueError(f"the model has no map at 1/{divisor} of its input width {width}")
    names, stack = set(), [first]
    while stack:
        op = stack.pop()
        if op.get_type_name() in ("Constant", "Parameter") or op.get_friendly_name() in names:
            continue
        names.add(op.get_friendly_name())
        stack.extend(source.get_source_output().get_node() for source in op.inputs())
    return names


def mark_early_layers_float32(core, model, divisor: int = FLOAT32_BELOW_DIVISOR):
    """A copy of ``model`` whose :func:`early_layer_names` carry OpenVINO's ``precise`` attribute.

    Returns:
        ``(model, names)``: the marked ``openvino.Model`` (its weights read into memory) and
        the marked operations' names.
    """
    import numpy as np
    import openvino

    names = early_layer_names(model, divisor)
    escaped = {html.escape(name, quote=True) for name in names}
    with tempfile.TemporaryDirectory(prefix="dna_depth_bf16_") as folder:
        xml_path = Path(folder) / "model.xml"
        openvino.save_model(model, str(xml_path), compress_to_fp16=False)
        text = _LAYER.sub(lambda m: m.group(0) + (_PRECISE if m.group(1) in escaped else ""), xml_path.read_text())
        weights = np.fromfile(xml_path.with_suffix(".bin"), dtype=np.uint8)
    return core.read_model(text.encode(), openvino.Tensor(weights)), names


def float32_layers_in_compiled(compiled, names: set[str]) -> tuple[int, int]:
    """``(float32, bf16)``: how many of the convolutions named in ``names`` the compiled model runs in each."""
    float32 = bf16 = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if op.get_friendly_name() in names and "runtimePrecision" in info and "Convolution" in str(
                info["layerType"].astype(str) if "layerType" in info else op.get_type_name()):
            precision = info["runtimePrecision"].astype(str)
            float32 += precision == "f32"
            bf16 += precision == "bf16"
    return float32, bf16
