"""Float16 form of an exported model, for GPU engines that take precision from the graph.

TensorRT 11 builds only strongly typed networks (its FP16 builder flag is gone), and ONNX
Runtime's CUDA provider runs a graph in the types it is written in, so half precision
on the GPU needs a graph whose weights and arithmetic are float16. :func:`to_float16`
rewrites a float32 model of :func:`~dna_depth_core.export.export_onnx`: every float32
weight and constant becomes float16 except the ``roi``/``scales`` inputs of ``Resize``
(float32 by the operator's definition); the interface stays float32 (``image`` is cast to
float16 on entry, ``disparity`` back to float32 on exit), so callers feed and read the
same tensors as with the float32 model.
"""

from __future__ import annotations

import copy

import numpy as np

_FLOAT = 1
_FLOAT16 = 10
"""``onnx.TensorProto`` element types (FLOAT, FLOAT16)."""


def to_float16(model):
    """A float16 copy of a float32 ``onnx.ModelProto`` exported by this package (the input is not modified).

    Raises:
        ValueError: the model has more than one input or output, or is not float32.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}")
    input_name, output_name = graph.input[0].name, graph.output[0].name
    if graph.input[0].type.tensor_type.elem_type != _FLOAT:
        raise ValueError("the model's input is not float32; export it with dna-depth export first")

    float32_only = {name for node in graph.node if node.op_type == "Resize" for name in node.input[1:3] if name}
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == _FLOAT and tensor.name not in float32_only:
            graph.initializer[index].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)
            )
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in float32_only:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == _FLOAT:
                    attribute.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attribute.t).astype(np.float16), attribute.t.name))
        if node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == _FLOAT:
                    attribute.i = _FLOAT16

    half_input, half_output = f"{input_name}_float16", f"{output_name}_float16"
    for node in graph.node:
        node.input[:] = [half_input if name == input_name else name for name in node.input]
        node.output[:] = [half_output if name == output_name else name for name in node.output]
    graph.node.insert(0, helper.make_node("Cast", [input_name], [half_input], to=_FLOAT16, name="cast_input_float16"))
    graph.node.append(helper.make_node("Cast", [half_output], [output_name], to=_FLOAT, name="cast_output_float32"))
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model
