"""TensorRT backend for CUDA devices: an engine built from the exported ONNX graph, cached on disk.

The engine is built with the TensorRT Python API (``pip install tensorrt``, the ``gpu``
extra) from the same ONNX export the CPU backends use — the float16 form of it
(:func:`dna_depth_core.export.float16.to_float16`) for ``fp16``: TensorRT 11 builds only
strongly typed networks, whose precision is the graph's, and TensorRT 10 is asked for the
same with ``STRONGLY_TYPED``. One optimisation profile covers batch 1 to
:data:`MAX_BATCH` at the network's input size (optimised for batch 1).

Building takes tens of seconds, so the serialised engine is kept in
``$DNA_DEPTH_CACHE_DIR/tensorrt`` (like the ONNX cache: see
:mod:`dna_depth_core.inference.backends`), keyed by the ONNX model's file name (a hash of
the weights, architecture, input size and export version), the precision, the GPU's name
and compute capability and the TensorRT version: an engine only runs on the GPU model and
TensorRT version that built it.

Inference binds the estimator's CUDA tensors directly (no host copies) and runs on the
current PyTorch CUDA stream.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

MAX_BATCH = 8
"""Largest batch the engine's optimisation profile accepts."""

WORKSPACE_BYTES = 1 << 30
"""Scratch memory TensorRT may use while building and running (1 GiB)."""


def tensorrt_available() -> bool:
    """Whether the ``tensorrt`` package is installed (a CUDA device is checked by the caller)."""
    return importlib.util.find_spec("tensorrt") is not None


def engine_path(onnx_path: Path, precision: str, device: torch.device, cache_root: Path) -> Path:
    """Where the engine of ``onnx_path`` for ``precision`` on ``device`` is cached."""
    import tensorrt

    properties = torch.cuda.get_device_properties(device)
    gpu = "".join(character if character.isalnum() else "-" for character in properties.name)
    name = (f"{onnx_path.stem}_{precision}_{gpu}_sm{properties.major}{properties.minor}"
            f"_trt{tensorrt.__version__}.engine")
    return cache_root / name


def build_engine(onnx_path: Path, height: int, width: int) -> bytes:
    """Serialised TensorRT engine of the ONNX model at ``onnx_path`` (precision as typed in the graph).

    Raises:
        RuntimeError: the parser rejected the model or the build failed (with TensorRT's messages).
    """
    import tensorrt

    from ..export import INPUT_NAME

    logger = tensorrt.Logger(tensorrt.Logger.WARNING)
    builder = tensorrt.Builder(logger)
    flags = 0
    if hasattr(tensorrt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TensorRT 10; always on in 11
        flags |= 1 << int(tensorrt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = tensorrt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(tensorrt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, 3, height, width), (1, 3, height, width), (MAX_BATCH, 3, height, width))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    return bytes(serialized)


class TensorRtRunner:
    """A deserialised TensorRT engine bound to PyTorch CUDA tensors.

    Args:
        engine: serialised engine (:func:`build_engine`).
        device: the CUDA device it was built for.
    """

    name = "tensorrt"
    dtype = torch.float32
    memory_format = torch.contiguous_format

    def __init__(self, engine: bytes, device: torch.device) -> None:
        import tensorrt

        from ..export import INPUT_NAME, OUTPUT_NAME

        self.device = device
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        with torch.cuda.device(device):
            self.runtime = tensorrt.Runtime(tensorrt.Logger(tensorrt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(engine)
            if self.engine is None:
                raise RuntimeError("TensorRT could not load the cached engine (built by another TensorRT version?)")
            self.context = self.engine.create_execution_context()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[0] > MAX_BATCH:
            return torch.cat([self(chunk) for chunk in images.split(MAX_BATCH)])
        images = images.to(self.device, torch.float32).contiguous()
        self.context.set_input_shape(self.input_name, tuple(images.shape))
        disparity = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)),
                                dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.input_name, images.data_ptr())
        self.context.set_tensor_address(self.output_name, disparity.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT inference failed (see its log above)")
        return disparity
