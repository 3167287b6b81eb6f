"""Inference backends: engines that run a DNA-Depth network on a batch of images.

Every backend turns a float ``(B, 3, h, w)`` RGB batch in [0, 1] at the network's input
size into ``(B, 1, h, w)`` float32 disparity in (0, 1) on the estimator's device, and
agrees with PyTorch eager float32 on the original :class:`DepthNet` to 1e-3 relative
depth (the test suite checks every CPU backend).

- ``eager``: PyTorch on the :class:`~dna_depth_core.inference.fused.FusedDepthNet`
  rewrite (:data:`~dna_depth_core.inference.fused.ONEDNN_REWRITES`), channels-last,
  ``torch.inference_mode``; float16 on CUDA with ``half``.
- ``onnxruntime``: the exported ONNX graph in ONNX Runtime with all graph optimisations,
  one intra-op thread per physical core (CPU), or the CUDA execution provider when
  ``onnxruntime-gpu`` is installed and the device is CUDA (float32).
- ``openvino``: the exported ONNX graph compiled by OpenVINO for the CPU (latency hint,
  float32 inference precision, one stream, a thread per physical core).

The ONNX-based backends export the network once and keep the file in a cache directory
(``$DNA_DEPTH_CACHE_DIR`` or ``~/.cache/dna_depth/onnx``), keyed by a hash of the
weights, the architecture and the input size, so later starts load it directly. Where
that folder cannot be written (no home folder, a read-only one) the model goes to a
temporary folder, removed at exit, with one warning.

``"auto"`` picks the first available backend of :data:`AUTO_PREFERENCE` for the device:
a fixed order chosen from ``benchmarks/inference.py`` figures (see docs/deployment.md),
never by timing at start-up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoint import ModelMetadata
from ..networks import DepthNet
from ..paths import cache_dir, describe_os_error, temporary_cache_dir
from .fused import ONEDNN_REWRITES, FusedDepthNet

BACKEND_NAMES = ("eager", "onnxruntime", "openvino")
"""Backends selectable by name (besides ``"auto"``)."""

AUTO_PREFERENCE: dict[str, tuple[str, ...]] = {
    "cpu": ("openvino", "onnxruntime", "eager"),
    "cuda": ("eager",),
}
"""Backend ``"auto"`` resolves to, per device type, fastest first.

CPU, from ``benchmarks/inference.py`` on a 2-core AVX-512 x86 machine (figures in
docs/deployment.md): OpenVINO and ONNX Runtime ran DNA-Depth-B0 at 640x192 equally fast on
two threads (161 ms each), OpenVINO with the lower p95 latency in every run (the CPU of a
robot is shared) and 13 % less CPU time on one core. Eager PyTorch took 1.5x as long on two
idle cores and 2.3-2.7x on shared ones. CUDA (not benchmarked: no GPU here): eager PyTorch
with cuDNN, float16 with ``half``; for Jetson build a TensorRT engine from ``dna-depth
export`` instead.
"""

ONNX_CACHE_VERSION = "1"
"""Bump when the export changes so stale cached models are not reused."""

Runner = Callable[[torch.Tensor], torch.Tensor]
"""``(B, 3, h, w)`` float RGB in [0, 1] -> ``(B, 1, h, w)`` float32 disparity on the same device."""


def physical_core_count() -> int:
    """Physical cores this process may run on (SMT siblings counted once)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            return len(cpus)
    return max(len(cores), 1)


def backend_available(name: str, device: torch.device) -> bool:
    """Whether backend ``name`` can run on ``device`` with the installed packages."""
    if name == "eager":
        return True
    if name == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
            return False
        if device.type == "cuda":
            import onnxruntime

            return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        return device.type == "cpu"
    if name == "openvino":
        return device.type == "cpu" and all(
            importlib.util.find_spec(package) is not None for package in ("openvino", "onnxscript")
        )
    raise ValueError(f"unknown inference backend {name!r}; choose 'auto' or one of {', '.join(BACKEND_NAMES)}")


def resolve_backend(name: str, device: torch.device) -> str:
    """``"auto"`` -> the preferred available backend for ``device``; other names are checked.

    Raises:
        ValueError: unknown name, or a backend that cannot run here (with what to install).
    """
    if name == "auto":
        for candidate in AUTO_PREFERENCE.get(device.type, ("eager",)):
            if backend_available(candidate, device):
                return candidate
        return "eager"
    if not backend_available(name, device):
        needs = {
            "onnxruntime": "pip install onnxruntime onnxscript (onnxruntime-gpu for CUDA)",
            "openvino": "pip install openvino onnxscript; OpenVINO runs on the CPU only",
        }
        raise ValueError(f"inference backend {name!r} is not available on {device}: {needs[name]}")
    return name


class EagerRunner:
    """PyTorch eager on the fused network, channels-last, without autograd.

    Args:
        depth_net: the network (not modified).
        device: where to run.
        dtype: ``torch.float32``, or ``torch.float16`` on CUDA.
        channels_last: use the channels-last memory format (faster with oneDNN and cuDNN).
    """

    name = "eager"

    def __init__(self, depth_net: DepthNet, device: torch.device, dtype: torch.dtype, channels_last: bool) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.network = FusedDepthNet(depth_net, **ONEDNN_REWRITES).to(device, dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.dtype, memory_format=self.memory_format)
        return self.network(images).float()


class OnnxRuntimeRunner:
    """ONNX Runtime session on an exported model.

    Args:
        model_path: the ``.onnx`` file (input ``image``, output ``disparity``).
        device: CPU, or CUDA (needs the CUDA execution provider).
        threads: intra-op threads for the CPU provider; default one per physical core.
    """

    name = "onnxruntime"
    dtype = torch.float32
    memory_format = torch.contiguous_format

    def __init__(self, model_path: Path, device: torch.device, threads: int | None = None) -> None:
        import onnxruntime

        from ..export import INPUT_NAME, OUTPUT_NAME

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or physical_core_count()
        options.inter_op_num_threads = 1
        if device.type == "cuda":
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=providers)
        self.device = device
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        disparity = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(disparity).to(self.device)


class OpenVinoRunner:
    """OpenVINO CPU inference on an exported model, compiled per batch size.

    Args:
        model_path: the ``.onnx`` file (input ``image``, output ``disparity``).
        threads: inference threads; default one per physical core.
    """

    name = "openvino"
    dtype = torch.float32
    memory_format = torch.contiguous_format

    def __init__(self, model_path: Path, threads: int | None = None) -> None:
        import openvino

        self.core = openvino.Core()
        self.model = self.core.read_model(str(model_path))
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads or physical_core_count()),
            # CPUs with bf16 units would otherwise run in bfloat16, beyond the accuracy budget.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.requests: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        if shape not in self.requests:
            model = self.model.clone()
            model.reshape({model.inputs[0].any_name: list(shape)})
            self.requests[shape] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[shape]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        request = self._request(tuple(array.shape))
        disparity = request.infer({0: array})[0]
        return torch.from_numpy(disparity.copy()).to(images.device)


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


def cached_onnx_model(depth_net: DepthNet, metadata: ModelMetadata, cache_dir: Path | None = None) -> Path:
    """Path of the ONNX export (dynamic batch, network input size) of ``depth_net``, exporting if needed.

    The file is written atomically to ``cache_dir`` (default :func:`onnx_cache_dir`).
    When that directory cannot be written, the model goes to a fresh temporary directory.
    """
    from ..export import export_onnx, save_onnx

    height, width = metadata.height, metadata.width
    name = f"{metadata.network.encoder}_{width}x{height}_{network_fingerprint(depth_net, height, width)}.onnx"
    directory = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    path = directory / name
    if path.is_file():
        return path
    model = export_onnx(depth_net, metadata, dynamic_batch=True)
    try:
        save_onnx(model, path)
    except OSError as error:
        path = temporary_cache_dir("onnx") / name
        warnings.warn(f"cannot write the ONNX cache ({describe_os_error(error)}); using {path.parent}, "
                      "removed at exit", stacklevel=2)
        save_onnx(model, path)
    return path


def create_runner(
    backend: str,
    depth_net: DepthNet,
    metadata: ModelMetadata,
    device: torch.device,
    dtype: torch.dtype,
    channels_last: bool,
    cache_dir: Path | None = None,
) -> Runner:
    """Build the runner of an already resolved backend name (see :func:`resolve_backend`).

    Raises:
        ValueError: float16 requested for a backend that runs float32 only.
    """
    if backend == "eager":
        return EagerRunner(depth_net, device, dtype, channels_last)
    if dtype != torch.float32:
        raise ValueError(f"backend {backend!r} runs float32 only; use backend 'eager' for half precision on CUDA")
    model_path = cached_onnx_model(depth_net, metadata, cache_dir)
    if backend == "onnxruntime":
        return OnnxRuntimeRunner(model_path, device)
    if backend == "openvino":
        return OpenVinoRunner(model_path)
    raise ValueError(f"unknown inference backend {backend!r}; choose 'auto' or one of {', '.join(BACKEND_NAMES)}")
