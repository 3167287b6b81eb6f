"""Inference backends: engines that run a DNA-Depth network on a batch of images.

Every backend turns a float ``(B, 3, h, w)`` RGB batch in [0, 1] at the network's input
size into ``(B, 1, h, w)`` float32 disparity in (0, 1) on the estimator's device, and
agrees with PyTorch eager float32 on the original :class:`DepthNet` to 1e-3 relative
depth (the test suite checks every CPU backend).

- ``eager``: PyTorch on the :class:`~dna_depth_core.inference.fused.FusedDepthNet`
  rewrite (:data:`~dna_depth_core.inference.fused.ONEDNN_REWRITES`), channels-last,
  ``torch.inference_mode``; float16 on CUDA with precision ``fp16``.
- ``onnxruntime``: the exported ONNX graph in ONNX Runtime with all graph optimisations,
  one intra-op thread per physical core (CPU; also the ``int8`` model), or the CUDA
  execution provider when ``onnxruntime-gpu`` is installed and the device is CUDA
  (``fp32``, or ``fp16`` on the float16 graph).
- ``openvino``: the exported ONNX graph compiled by OpenVINO for the CPU (latency hint,
  one stream, a thread per physical core) with float32 or, for ``bf16``, bfloat16
  inference precision; also the ``int8`` model.
- ``tensorrt``: a TensorRT engine built from the exported graph on CUDA devices (``fp32``,
  or ``fp16`` from the float16 graph), cached (:mod:`~dna_depth_core.inference.tensorrt`).

Precision (``fp32``, ``bf16``, ``int8``, ``fp16`` or ``auto``) and backend are chosen
together by :func:`resolve_configuration` (see :mod:`~dna_depth_core.inference.precision`
for the accuracy budget reduced precisions are held to); every float32 backend agrees
with eager float32 to 1e-3 relative depth.

The ONNX-based backends export the network once and keep the file in a cache directory
(:mod:`~dna_depth_core.inference.model_cache`), so later starts load it directly.

``"auto"`` picks the first available backend of :data:`AUTO_PREFERENCE` for the device:
a fixed order chosen from ``benchmarks/inference.py`` figures (see docs/deployment.md),
never by timing at start-up.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoint import ModelMetadata
from ..networks import DepthNet
from .fused import ONEDNN_REWRITES, FusedDepthNet
from .model_cache import cached_model_bytes, cached_onnx_model, cached_tensorrt_engine
from .precision import (
    AUTO, PRECISION_BACKENDS, PrecisionRecord, check_precision_name, precision_unavailable_reason, weights_fingerprint,
)

BACKEND_NAMES = ("eager", "onnxruntime", "openvino", "tensorrt")
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
idle cores and 2.3-2.7x on shared ones. CUDA (not benchmarked here: no GPU): eager PyTorch
with cuDNN, which needs no engine build at start; TensorRT or ONNX Runtime are chosen on
CUDA by precision ``auto`` when ``dna-depth calibrate-precision`` measured them faster on
a GPU (``benchmarks/gpu_check.sh``).
"""

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
    if name == "tensorrt":
        return device.type == "cuda" and all(
            importlib.util.find_spec(package) is not None for package in ("tensorrt", "onnx", "onnxscript")
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
            "tensorrt": "TensorRT runs on CUDA devices: pip install -e '.[gpu]' (tensorrt)",
        }
        raise ValueError(f"inference backend {name!r} is not available on {device}: {needs[name]}")
    return name


class EagerRunner:
    """PyTorch eager on the fused network, channels-last, without autograd.

    Args:
        depth_net: the network (not modified).
        device: where to run.
        dtype: ``torch.float32``, or ``torch.float16`` on CUDA (precision ``fp16``).
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
    """ONNX Runtime session on an exported model (float32, float16 or int8 QDQ graph; float32 interface).

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
        model_path: the ``.onnx`` file (input ``image``, output ``disparity``; float32 or int8 QDQ).
        threads: inference threads; default one per physical core.
        inference_precision: ``"f32"``, or ``"bf16"`` (CPUs with AVX512-BF16 or AMX) for the
            operations the model leaves in floating point.
        float32_early_layers: with ``"bf16"``, keep the layers above 1/8 of the input
            resolution in float32 (:mod:`~dna_depth_core.inference.openvino_bf16`: they
            carry most of bf16's depth error and few of the multiply-adds); ``False``
            gives plain bf16 (benchmarks only). A compiled model that ignored the marking
            raises ``RuntimeError``.
    """

    name = "openvino"
    dtype = torch.float32
    memory_format = torch.contiguous_format

    def __init__(self, model_path: Path, threads: int | None = None, inference_precision: str = "f32",
                 float32_early_layers: bool = True) -> None:
        import openvino

        self.version = openvino.__version__.split("-")[0]
        self.float32_early_layers = float32_early_layers
        self.core = openvino.Core()
        self.model = self.core.read_model(str(model_path))
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads or physical_core_count()),
            # Always explicit: on CPUs with bf16 units OpenVINO would pick bfloat16 by itself.
            "INFERENCE_PRECISION_HINT": inference_precision,
        }
        self.requests: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        if shape not in self.requests:
            model = self.model.clone()
            model.reshape({model.inputs[0].any_name: list(shape)})
            if self.config["INFERENCE_PRECISION_HINT"] == "bf16" and self.float32_early_layers:
                self.requests[shape] = self._compile_mixed_bf16(model).create_infer_request()
            else:
                self.requests[shape] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[shape]

    def _compile_mixed_bf16(self, model):
        """bf16 with the first layers in float32 (:mod:`~dna_depth_core.inference.openvino_bf16`), checked."""
        from .openvino_bf16 import float32_layers_in_compiled, mark_early_layers_float32

        marked, names = mark_early_layers_float32(self.core, model)
        compiled = self.core.compile_model(marked, "CPU", self.config)
        float32, bf16 = float32_layers_in_compiled(compiled, names)
        if float32 == 0 or bf16 > 0:
            raise RuntimeError(f"OpenVINO {self.version} did not keep the first layers in float32 ({float32} "
                               f"convolutions in float32, {bf16} in bf16): plain bf16 changes depth too much; "
                               "use precision fp32")
        return compiled

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        request = self._request(tuple(array.shape))
        disparity = request.infer({0: array})[0]
        return torch.from_numpy(disparity.copy()).to(images.device)


def create_runner(
    backend: str,
    precision: str,
    depth_net: DepthNet,
    metadata: ModelMetadata,
    device: torch.device,
    channels_last: bool,
    cache_dir: Path | None = None,
    int8_model: bytes | None = None,
    threads: int | None = None,
) -> Runner:
    """Build the runner of an already resolved configuration (see :func:`resolve_configuration`).

    Args:
        int8_model: the calibrated int8 ONNX model (precision ``int8``).
        threads: inference threads of the ONNX Runtime and OpenVINO runners; default one per
            physical core (eager PyTorch follows ``torch.set_num_threads``).

    Raises:
        ValueError: a precision the backend cannot run, or int8 without a model.
    """
    able = PRECISION_BACKENDS.get((device.type, precision), ())
    if backend not in able:
        raise ValueError(f"backend {backend!r} cannot run precision {precision!r} on {device.type}; "
                         f"use {' or '.join(able) or 'another precision'}")
    if backend == "eager":
        return EagerRunner(depth_net, device, torch.float16 if precision == "fp16" else torch.float32, channels_last)
    if precision == "int8":
        if int8_model is None:
            raise ValueError(NO_INT8_MODEL)
        model_path = cached_model_bytes(int8_model, f"{metadata.network.encoder}_{metadata.width}x{metadata.height}"
                                        "_int8", cache_dir)
    else:
        model_path = cached_onnx_model(depth_net, metadata, cache_dir, float16=precision == "fp16")
    if backend == "onnxruntime":
        return OnnxRuntimeRunner(model_path, device, threads)
    if backend == "openvino":
        return OpenVinoRunner(model_path, threads, inference_precision="bf16" if precision == "bf16" else "f32")
    from .tensorrt import TensorRtRunner  # the one backend left

    return TensorRtRunner(cached_tensorrt_engine(model_path, precision, metadata, device), device)


NO_INT8_MODEL = ("the checkpoint holds no calibrated int8 model; make one with 'dna-depth calibrate-precision "
                 "CHECKPOINT -o OUTPUT' (or 'dna-depth finetune-bag --int8'), or choose another precision")


def _no_int8_model_message(record: PrecisionRecord | None) -> str:
    failed = [entry for entry in (record.configurations if record else []) if entry.precision == "int8"]
    if failed and not any(entry.met for entry in failed):
        worst = max(failed, key=lambda entry: entry.pixel_change_p99)
        return (f"int8 was measured for this checkpoint and failed the accuracy budget (per-pixel depth change p99 "
                f"{worst.pixel_change_p99:.1%}, change in AbsRel {worst.abs_rel_change:+.4f}), so its model is not "
                "kept; use precision auto, fp32 or bf16")
    return NO_INT8_MODEL


@dataclasses.dataclass(frozen=True)
class Configuration:
    """A resolved (precision, backend) pair and why it was chosen (for logs)."""

    precision: str
    backend: str
    reason: str = ""


def resolve_configuration(
    precision: str,
    backend: str,
    device: torch.device,
    record: PrecisionRecord | None = None,
    weights: str | None = None,
    size: tuple[int, int] | None = None,
    has_int8_model: bool = False,
) -> Configuration:
    """Choose precision and backend for ``device``.

    Args:
        precision: one of :data:`~dna_depth_core.inference.precision.PRECISION_CHOICES`.
        backend: ``"auto"`` or one of :data:`BACKEND_NAMES`.
        record: the checkpoint's precision record, if any.
        weights: :func:`~dna_depth_core.inference.precision.weights_fingerprint` of the
            network, to check the record is for these weights.
        size: network input ``(height, width)``, to check the record's size.
        has_int8_model: whether a calibrated int8 model is available.

    ``auto`` takes the record's fastest in-budget configuration that can run here (the
    backend named, unless ``auto``); without a usable record it is ``fp32`` on ``backend``.

    Raises:
        ValueError: unknown names, or a precision/backend that cannot run here (the message
            says what to do instead).
    """
    check_precision_name(precision)
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise ValueError(f"unknown inference backend {backend!r}; choose 'auto' or one of {', '.join(BACKEND_NAMES)}")
    if precision == AUTO:
        return _auto_configuration(backend, device, record, weights, size, has_int8_model)
    reason = precision_unavailable_reason(precision, device)
    if reason:
        raise ValueError(f"precision {precision!r} is not available on {device}: {reason}")
    if precision == "int8" and not has_int8_model:
        raise ValueError(_no_int8_model_message(record))
    able = PRECISION_BACKENDS[(device.type, precision)]
    if backend == "auto":
        preference = AUTO_PREFERENCE.get(device.type, ()) if precision == "fp32" else able
        chosen = next((name for name in preference if name in able and backend_available(name, device)), None)
        if chosen is None:
            raise ValueError(f"precision {precision!r} on {device.type} needs one of the backends {', '.join(able)}, "
                             f"none of which is installed: {resolve_backend_error(able[0], device)}")
        return Configuration(precision, chosen, "as requested")
    if backend not in able:
        raise ValueError(f"backend {backend!r} cannot run precision {precision!r} on {device.type}; use "
                         f"{' or '.join(able)} (or backend 'auto')")
    return Configuration(precision, resolve_backend(backend, device), "as requested")


def resolve_backend_error(name: str, device: torch.device) -> str:
    """The message :func:`resolve_backend` gives for an unavailable backend (what to install)."""
    try:
        resolve_backend(name, device)
    except ValueError as error:
        return str(error)
    return f"{name} is available"


def _auto_configuration(
    backend: str, device: torch.device, record: PrecisionRecord | None, weights: str | None,
    size: tuple[int, int] | None, has_int8_model: bool,
) -> Configuration:
    fallback = Configuration("fp32", resolve_backend(backend, device), "no precision record: float32")
    if record is None:
        return fallback
    if weights is not None and record.weights != weights:
        warnings.warn("the checkpoint's precision record was measured for other weights; ignoring it (float32). "
                      "Measure again with 'dna-depth calibrate-precision'", RuntimeWarning, stacklevel=3)
        return fallback
    if size is not None and (record.height, record.width) != tuple(size):
        warnings.warn(f"the precision record was measured at {record.width}x{record.height}, the network runs at "
                      f"{size[1]}x{size[0]}; ignoring it (float32)", RuntimeWarning, stacklevel=3)
        return fallback

    def usable(precision: str, candidate: str) -> bool:
        return (
            backend in ("auto", candidate)
            and candidate in PRECISION_BACKENDS.get((device.type, precision), ())
            and backend_available(candidate, device)
            and precision_unavailable_reason(precision, device) is None
            and (precision != "int8" or has_int8_model)
        )

    entry = record.fastest_within_budget(device.type, usable)
    if entry is None:
        return dataclasses.replace(fallback, reason="no recorded configuration for this device met the budget: float32")
    return Configuration(entry.precision, entry.backend,
                         f"fastest within the accuracy budget in the precision record ({entry.latency_ms:.1f} ms "
                         f"measured on {record.machine})")


def start_runner(
    depth_net: DepthNet,
    metadata: ModelMetadata,
    device: torch.device,
    precision: str,
    backend: str,
    channels_last: bool,
    cache_dir: Path | None = None,
    record: PrecisionRecord | None = None,
    int8_model: bytes | None = None,
) -> tuple[Runner, Configuration]:
    """Resolve the configuration (:func:`resolve_configuration`) and start its runner.

    What ``auto`` chose must not stop a robot's depth node when its engine fails to export
    or compile: a precision picked by ``auto`` falls back to ``fp32``, and a backend picked
    by ``auto`` to ``eager``, each with a ``RuntimeWarning``. Explicit choices raise.
    """
    weights = weights_fingerprint(depth_net) if record is not None else None
    chosen = resolve_configuration(precision, backend, device, record, weights, (metadata.height, metadata.width),
                                   int8_model is not None)
    attempts = [chosen]
    final_precision = chosen.precision
    if precision == AUTO and chosen.precision != "fp32":
        final_precision = "fp32"
        attempts.append(Configuration("fp32", resolve_backend(backend, device), "fallback to float32"))
    if backend == "auto" and "eager" in PRECISION_BACKENDS.get((device.type, final_precision), ()):
        attempts.append(Configuration(final_precision, "eager", "fallback to eager"))
    attempts = list(dict.fromkeys(attempts))
    for configuration, following in zip(attempts, [*attempts[1:], None], strict=True):
        try:
            runner = create_runner(configuration.backend, configuration.precision, depth_net, metadata, device,
                                   channels_last, cache_dir, int8_model)
            return runner, configuration
        except Exception as error:
            if following is None:
                raise
            warnings.warn(
                f"inference backend {configuration.backend!r} ({configuration.precision}) failed to start "
                f"({type(error).__name__}: {error}); falling back to {following.backend!r} ({following.precision})",
                RuntimeWarning, stacklevel=3,
            )
