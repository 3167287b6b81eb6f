"""Reduced-precision inference: the accuracy budget, the measured record and the ``auto`` choice.

A depth network whose own error is 10-20 % does not need float32 to the last bit, but a
reduced-precision engine must not make it measurably worse. The yardstick is ground truth:
a configuration (precision and backend) *meets the budget* when, against float32 on the
same test images,

- the mean AbsRel changes by at most 0.003,
- the mean d<1.25 changes by at most 0.005, and
- the 99th percentile over all pixels of the relative depth change
  ``|d - d_fp32| / d_fp32`` is at most 3 %

(:class:`AccuracyBudget`, judged by :func:`budget_verdict` — the one place that decides).

Precisions (``precision`` of :class:`~dna_depth_core.inference.DepthEstimator`, the node and
``dna-depth export``):

- ``fp32``: every backend, every device.
- ``bf16``: OpenVINO on CPUs with bfloat16 units (AVX512-BF16 or AMX); other CPUs refuse it.
- ``int8``: post-training quantised model (NNCF, calibrated on frames of the model's own
  training data, see :mod:`dna_depth_core.export.quantize`) run by OpenVINO or ONNX
  Runtime on the CPU; the calibrated model travels inside the checkpoint.
- ``fp16``: CUDA (eager PyTorch, TensorRT, ONNX Runtime's CUDA provider).
- ``auto``: the fastest configuration that met the budget *for this checkpoint*, read from
  the :class:`PrecisionRecord` that ``dna-depth calibrate-precision`` measured and stored
  in the checkpoint (or ``dna-depth export`` in the ONNX model); never timed at start-up.
  Without a record, or with one for other weights, ``auto`` is float32 on the backend
  ``backend`` names (itself ``auto`` by default).

The record is one JSON string (:meth:`PrecisionRecord.to_json`) under the key
:data:`RECORD_KEY` of the checkpoint's safetensors header or the ONNX model's
``metadata_props``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import load_config
from ..errors import UserError

AUTO = "auto"
PRECISIONS = ("fp32", "bf16", "int8", "fp16")
"""Precisions selectable by name (besides ``"auto"``)."""

PRECISION_CHOICES = (AUTO, *PRECISIONS)

PRECISION_BACKENDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cpu", "fp32"): ("openvino", "onnxruntime", "eager"),
    ("cpu", "bf16"): ("openvino",),
    ("cpu", "int8"): ("openvino", "onnxruntime"),
    ("cuda", "fp32"): ("tensorrt", "eager", "onnxruntime"),
    ("cuda", "fp16"): ("tensorrt", "eager", "onnxruntime"),
}
"""Backends that can run each (device type, precision), in the order ``backend: auto`` tries them for an
explicit reduced precision (float32 follows :data:`~dna_depth_core.inference.backends.AUTO_PREFERENCE`).
On CUDA TensorRT comes first, as the usual fastest engine on NVIDIA GPUs (not measured on this project's
machines: ``benchmarks/gpu_check.sh`` measures it where a GPU is)."""

RECORD_KEY = "dna_depth_precision"
"""Key of the :class:`PrecisionRecord` JSON in a checkpoint header or an ONNX model's metadata_props."""

RECORD_VERSION = 1

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of x86 CPUs with native bfloat16 arithmetic."""


@dataclass(frozen=True)
class AccuracyBudget:
    """How much a reduced-precision configuration may change depth against float32 (see module docstring).

    Attributes:
        abs_rel: largest allowed absolute change of the mean AbsRel (0.003).
        d1: largest allowed absolute change of the mean d<1.25 fraction (0.005).
        pixel_change_p99: largest allowed 99th percentile of the per-pixel relative depth
            change against float32 (0.03, i.e. 3 %).
    """

    abs_rel: float = 0.003
    d1: float = 0.005
    pixel_change_p99: float = 0.03


@dataclass(frozen=True)
class AccuracyChange:
    """What one configuration changed against float32 on ground-truth test images.

    Attributes:
        abs_rel: the configuration's mean AbsRel minus float32's (signed).
        d1: the configuration's mean d<1.25 minus float32's (signed).
        pixel_change_p99: 99th percentile over all pixels of ``|d - d_fp32| / d_fp32``.
    """

    abs_rel: float
    d1: float
    pixel_change_p99: float

    @staticmethod
    def worst(changes: list[AccuracyChange]) -> AccuracyChange:
        """The largest change of each kind over several test sets (e.g. one per scene style)."""
        return AccuracyChange(
            abs_rel=max((c.abs_rel for c in changes), key=abs),
            d1=max((c.d1 for c in changes), key=abs),
            pixel_change_p99=max(c.pixel_change_p99 for c in changes),
        )


@dataclass(frozen=True)
class BudgetVerdict:
    """Whether a change met the budget, and which limits it broke (empty when met)."""

    met: bool
    failures: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "meets the budget" if self.met else "FAILS the budget: " + "; ".join(self.failures)


DEFAULT_BUDGET = AccuracyBudget()


def budget_verdict(change: AccuracyChange, budget: AccuracyBudget = DEFAULT_BUDGET) -> BudgetVerdict:
    """Judge a configuration's :class:`AccuracyChange` against ``budget``: the project's only such rule."""
    failures = []
    if not abs(change.abs_rel) <= budget.abs_rel:
        failures.append(f"|change in AbsRel| {abs(change.abs_rel):.4f} > {budget.abs_rel:g}")
    if not abs(change.d1) <= budget.d1:
        failures.append(f"|change in d1| {abs(change.d1):.4f} > {budget.d1:g}")
    if not change.pixel_change_p99 <= budget.pixel_change_p99:
        failures.append(
            f"per-pixel depth change p99 {change.pixel_change_p99:.2%} > {budget.pixel_change_p99:.0%}"
        )
    return BudgetVerdict(not failures, tuple(failures))


@dataclass
class MeasuredConfiguration:
    """One configuration as ``dna-depth calibrate-precision`` measured it.

    Attributes:
        precision: one of :data:`PRECISIONS`.
        backend: the backend that ran it (``openvino``, ``onnxruntime``, ``eager``, ``tensorrt``).
        device: device type, ``cpu`` or ``cuda``.
        latency_ms: median batch-1 forward latency at the record's input size, milliseconds,
            on the recording machine (timed interleaved with the other configurations).
        abs_rel_change: see :class:`AccuracyChange` (worst over the scene styles).
        d1_change: see :class:`AccuracyChange`.
        pixel_change_p99: see :class:`AccuracyChange`.
        met: the :func:`budget_verdict` of the change under the record's budget.
    """

    precision: str
    backend: str
    device: str
    latency_ms: float
    abs_rel_change: float
    d1_change: float
    pixel_change_p99: float
    met: bool

    @property
    def change(self) -> AccuracyChange:
        return AccuracyChange(self.abs_rel_change, self.d1_change, self.pixel_change_p99)


@dataclass
class PrecisionRecord:
    """What was measured for one checkpoint's weights; ``auto`` chooses from it.

    Attributes:
        version: format version (:data:`RECORD_VERSION`).
        weights: :func:`weights_fingerprint` of the measured depth network; a record whose
            fingerprint differs from the network's is ignored (with a warning).
        height: network input height in pixels the configurations ran at.
        width: network input width in pixels.
        budget: the budget the ``met`` flags were judged against.
        machine: the CPU or GPU the latencies were measured on, and the thread count.
        test_data: the ground-truth test images (styles, seeds, frames).
        int8_calibration: the frames the int8 model was calibrated on, when one is stored.
        configurations: every measured configuration, float32 ones included.
    """

    version: int = RECORD_VERSION
    weights: str = ""
    height: int = 0
    width: int = 0
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    machine: str = ""
    test_data: str = ""
    int8_calibration: str = ""
    configurations: list[MeasuredConfiguration] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PrecisionRecord:
        """Parse :meth:`to_json` output.

        Raises:
            UserError: not JSON, unknown keys or a newer format version.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"the precision record is not valid JSON: {error}") from None
        if isinstance(data, dict) and int(data.get("version", 0)) > RECORD_VERSION:
            raise UserError(
                f"the precision record has format {data['version']}, newer than this version understands "
                f"({RECORD_VERSION}); upgrade the package or measure again with 'dna-depth calibrate-precision'"
            )
        return load_config(cls, data)

    def fastest_within_budget(
        self, device_type: str, usable: Callable[[str, str], bool]
    ) -> MeasuredConfiguration | None:
        """The lowest-latency entry for ``device_type`` that met the budget and ``usable(precision, backend)``."""
        candidates = [
            entry for entry in self.configurations
            if entry.device == device_type and entry.met and usable(entry.precision, entry.backend)
        ]
        return min(candidates, key=lambda entry: entry.latency_ms, default=None)


def weights_fingerprint(depth_net: torch.nn.Module) -> str:
    """SHA-256 (hex, 24 characters) of the network's tensors as float32: identifies the weights a record is for."""
    digest = hashlib.sha256()
    for key, tensor in depth_net.state_dict().items():
        digest.update(key.encode())
        tensor = tensor.detach().to("cpu")
        digest.update((tensor.float() if tensor.is_floating_point() else tensor).contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def check_precision_name(precision: str) -> None:
    """Raise ``ValueError`` naming the choices when ``precision`` is not one of :data:`PRECISION_CHOICES`."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def cpu_description() -> str:
    """``"Intel(R) Xeon(R) Processor (avx512_bf16 amx_bf16 amx_int8 avx512_vnni)"``: the CPU and its relevant units."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    units = [flag for flag in (*BF16_CPU_FLAGS, "amx_int8", "avx512_vnni", "avx_vnni") if flag in cpu_flags()]
    return f"{name} ({' '.join(units) or 'no bf16/int8 units'})"


def precision_unavailable_reason(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` here (what to do instead), or ``None`` when it can."""
    if precision == "bf16":
        if device.type != "cpu":
            return "bf16 runs on the CPU (OpenVINO); on CUDA use precision fp16"
        if not cpu_has_bf16():
            return ("bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither: it would be emulated, "
                    "slower than fp32); use fp32 or int8")
    if precision == "int8" and device.type != "cpu":
        return "int8 runs on the CPU (OpenVINO or ONNX Runtime); on CUDA use precision fp16"
    if precision == "fp16" and device.type != "cuda":
        return "fp16 runs on CUDA only; on the CPU use bf16 (CPUs with AVX512-BF16 or AMX) or int8"
    return None


INT8_MODEL_KEY = "int8.onnx"
"""Tensor name of the calibrated int8 ONNX model (uint8 bytes) in a checkpoint file."""


def read_checkpoint_precision(path: str | Path) -> tuple[PrecisionRecord | None, bytes | None]:
    """The precision record and the calibrated int8 model stored in a checkpoint, each ``None`` when absent.

    Raises:
        UserError: a record that cannot be read.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        header = handle.metadata() or {}
        int8_model = handle.get_tensor(INT8_MODEL_KEY).numpy().tobytes() if INT8_MODEL_KEY in handle.keys() else None
    record = PrecisionRecord.from_json(header[RECORD_KEY]) if RECORD_KEY in header else None
    return record, int8_model


def write_checkpoint_precision(
    source: str | Path, destination: str | Path, record: PrecisionRecord, int8_model: bytes | None
) -> None:
    """Copy checkpoint ``source`` to ``destination`` (atomically; may be the same file) with ``record``
    and ``int8_model`` (replacing any stored before; ``None`` stores none)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ..paths import atomic_write

    with safe_open(str(source), framework="pt", device="cpu") as handle:
        header = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys() if key != INT8_MODEL_KEY}
    header[RECORD_KEY] = record.to_json()
    if int8_model is not None:
        tensors[INT8_MODEL_KEY] = torch.frombuffer(bytearray(int8_model), dtype=torch.uint8)
    atomic_write(destination, lambda temporary: save_file(tensors, str(temporary), metadata=header))
