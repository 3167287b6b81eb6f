"""Export to deployment formats: ONNX (for ONNX Runtime, OpenVINO and TensorRT)."""

from .onnx import (
    DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, SUPPORTED_OPSETS, export_onnx, read_onnx_metadata, save_onnx,
)
from .verify import Verification, verify_onnx_model

__all__ = [
    "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME", "SUPPORTED_OPSETS", "Verification", "export_onnx",
    "read_onnx_metadata", "save_onnx", "verify_onnx_model",
]
