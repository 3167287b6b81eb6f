"""The exported models and engines the inference backends run, cached on disk.

The ONNX-based backends export the network once and keep the file in a cache directory
(``$DNA_DEPTH_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/dna_depth/onnx`` or
``~/.cache/dna_depth/onnx``), keyed by a hash of the weights, the architecture, the input
size and the export version, so later starts load it directly. TensorRT engines are kept
beside them (``.../tensorrt``), per GPU and precision. Where that folder cannot be written
(no home folder, a read-only one) the model goes to a temporary folder, removed at exit,
with one warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import torch

from ..checkpoint import ModelMetadata
from ..networks import DepthNet
from ..paths import atomic_write, cache_dir, describe_os_error, temporary_cache_dir

ONNX_CACHE_VERSION = "1"
"""Bump when the export changes so stale cached models are not reused."""


def onnx_cache_dir() -> Path:
    """``$DNA_DEPTH_CACHE_DIR/onnx`` if set, else ``$XDG_CACHE_HOME/dna_depth/onnx`` or
    ``~/.cache/dna_depth/onnx``; a temporary folder, with a warning, when that cannot be
    written (see :func:`dna_depth_core.paths.cache_dir`)."""
    return cache_dir("onnx")


def network_fingerprint(depth_net: DepthNet, height: int, width: int) -> str:
    """SHA-256 (hex, 24 characters) of the weights, architecture, input size and export version."""
    digest = hashlib.sha256()
    header = {
        "config": dataclasses.asdict(depth_net.config), "height": height, "width": width,
        "export": ONNX_CACHE_VERSION, "torch": torch.__version__.split("+")[0],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for key, tensor in depth_net.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_onnx_model(
    depth_net: DepthNet, metadata: ModelMetadata, cache_dir: Path | None = None, float16: bool = False
) -> Path:
    """Path of the ONNX export (dynamic batch, network input size) of ``depth_net``, exporting if needed.

    The file is written atomically to ``cache_dir`` (default :func:`onnx_cache_dir`).
    When that directory cannot be written, the model goes to a fresh temporary directory.
    ``float16`` gives the float16 graph of GPU engines (:func:`~dna_depth_core.export.float16.to_float16`).
    """
    from ..export import export_onnx, save_onnx
    from ..export.float16 import to_float16

    height, width = metadata.height, metadata.width
    fingerprint = network_fingerprint(depth_net, height, width)
    name = f"{metadata.network.encoder}_{width}x{height}_{fingerprint}{'_fp16' if float16 else ''}.onnx"
    directory = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    path = directory / name
    if path.is_file():
        return path
    if float16:
        import onnx

        model = to_float16(onnx.load(str(cached_onnx_model(depth_net, metadata, cache_dir))))
    else:
        model = export_onnx(depth_net, metadata, dynamic_batch=True)
    try:
        save_onnx(model, path)
    except OSError as error:
        path = temporary_cache_dir("onnx") / name
        warnings.warn(f"cannot write the ONNX cache ({describe_os_error(error)}); using {path.parent}, "
                      "removed at exit", stacklevel=2)
        save_onnx(model, path)
    return path


def cached_model_bytes(model: bytes, stem: str, cache_dir: Path | None = None) -> Path:
    """Path of a serialised model (e.g. a checkpoint's int8 ONNX) in the ONNX cache, named by its hash."""

    name = f"{stem}_{hashlib.sha256(model).hexdigest()[:24]}.onnx"
    directory = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    path = directory / name
    if path.is_file():
        return path
    try:
        atomic_write(path, lambda temporary: temporary.write_bytes(model))
    except OSError as error:
        path = temporary_cache_dir("onnx") / name
        warnings.warn(f"cannot write the ONNX cache ({describe_os_error(error)}); using {path.parent}, "
                      "removed at exit", stacklevel=2)
        atomic_write(path, lambda temporary: temporary.write_bytes(model))
    return path


def cached_tensorrt_engine(onnx_path: Path, precision: str, metadata: ModelMetadata, device: torch.device) -> bytes:
    """The serialised TensorRT engine of ``onnx_path``, built once and kept beside the ONNX cache."""
    from .tensorrt import build_engine, engine_path

    path = engine_path(onnx_path, precision, device, cache_dir("tensorrt"))
    if path.is_file():
        return path.read_bytes()
    engine = build_engine(onnx_path, metadata.height, metadata.width)
    try:
        atomic_write(path, lambda temporary: temporary.write_bytes(engine))
    except OSError as error:
        warnings.warn(f"cannot write the TensorRT engine cache ({describe_os_error(error)}); the engine is "
                      "rebuilt at every start", stacklevel=2)
    return engine
