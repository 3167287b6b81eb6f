"""The precision of an exported ONNX model (``dna-depth export --precision``).

- ``fp32``: the float32 graph of :func:`~dna_depth_core.export.export_onnx`.
- ``fp16``: its float16 form (:func:`~dna_depth_core.export.float16.to_float16`; float32
  input and output) for TensorRT 11, whose engines take precision from the graph, and ONNX
  Runtime's CUDA provider.
- ``int8``: the calibrated QDQ model the checkpoint stores (``dna-depth calibrate-precision``
  keeps it only when it met the accuracy budget), at the checkpoint's input size, dynamic batch.
- ``auto``: the precision of the fastest configuration in the checkpoint's precision record
  that met the budget and can be exported (bf16 is not a graph but a compile-time option of
  OpenVINO, so a bf16 record exports fp32); float32 without a record.

Every export carries the checkpoint's precision record, when it has one, in
``metadata_props`` under :data:`~dna_depth_core.inference.precision.RECORD_KEY`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..inference.precision import RECORD_KEY, PrecisionRecord, read_checkpoint_precision, weights_fingerprint

EXPORT_PRECISIONS = ("auto", "fp32", "fp16", "int8")
"""``--precision`` choices of ``dna-depth export``."""


def apply_export_precision(
    model, checkpoint_path: str | Path, depth_net, precision: str, checkpoint_size: tuple[int, int],
    export_size: tuple[int, int], dynamic_size: bool,
):
    """The ``onnx.ModelProto`` to write for ``precision``, with the checkpoint's record in its metadata.

    Args:
        model: the float32 export.
        checkpoint_path: the checkpoint (for its record and int8 model).
        depth_net: its network (to check the record is for these weights).
        precision: one of :data:`EXPORT_PRECISIONS`.
        checkpoint_size, export_size: ``(height, width)`` of the checkpoint and of the export.
        dynamic_size: the export has symbolic height and width.

    Returns:
        ``(model, precision)``: the model to write and the precision it has.

    Raises:
        UserError: int8 without a stored model or at another size.
    """
    import onnx

    from .float16 import to_float16

    record, int8_model = read_checkpoint_precision(checkpoint_path)
    if record is not None and record.weights != weights_fingerprint(depth_net):
        print("the checkpoint's precision record is for other weights; it is not copied into the export")
        record = None
    if precision == "auto":
        precision = _recorded_precision(record, int8_model is not None)
    if precision == "int8":
        if int8_model is None:
            raise UserError("the checkpoint holds no int8 model that met the accuracy budget; measure it with "
                            "'dna-depth calibrate-precision CHECKPOINT -o OUTPUT' or export fp32 or fp16")
        if dynamic_size or export_size != checkpoint_size:
            raise UserError(f"the int8 model was calibrated at {checkpoint_size[1]}x{checkpoint_size[0]}; export it "
                            "at that size without --dynamic (omit --height/--width)")
        metadata_props = {prop.key: prop.value for prop in model.metadata_props}
        model = onnx.load_from_string(int8_model)
        _set_props(model, metadata_props)
    elif precision == "fp16":
        model = to_float16(model)
    if record is not None:
        _set_props(model, {RECORD_KEY: record.to_json()})
    return model, precision


def _recorded_precision(record: PrecisionRecord | None, has_int8_model: bool) -> str:
    if record is None:
        return "fp32"
    exportable = [entry for entry in record.configurations if entry.met
                  and (entry.precision in ("fp32", "fp16") or (entry.precision == "int8" and has_int8_model))]
    if not exportable:
        return "fp32"
    return min(exportable, key=lambda entry: entry.latency_ms).precision


def _set_props(model, values: dict[str, str]) -> None:
    existing = {prop.key: prop for prop in model.metadata_props}
    for key, value in values.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, value
