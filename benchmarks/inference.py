"""Inference speed of DNA-Depth-B0/-B1 per precision and backend against a Monodepth2-architecture baseline.

Prints markdown tables measured side by side in one run on this machine:

1. Per model, precision and backend: parameters, multiply-adds (fvcore, the published
   networks' count), median and p95 latency at batch 1 for 640x192 and 1024x320,
   throughput at batch 4 (640x192), peak memory, effective GFLOP/s and the ratio to the
   compute bound, and for DNA-Depth-B0 the accuracy budget's verdict.
2. Latency against input pixels at three sizes.
3. The target: B0's fastest configuration within the accuracy budget at 640x192 against
   the baseline's fastest float32 configuration (target ratio <= 0.7), and the baseline in
   the same reduced precision.

Configurations are ``precision:backend`` pairs (``--configurations``): float32 on every
backend, bf16 on OpenVINO (CPUs with AVX512-BF16 or AMX; skipped elsewhere; the layers above
1/8 of the input resolution in float32, as precision ``bf16`` runs them, for the baseline
too: :mod:`dna_depth_core.inference.openvino_bf16`) and int8 on
OpenVINO (NNCF post-training quantisation, calibrated on synthetic street frames; built at
640x192 only, so int8 has no 1024x320 or scaling figures). DNA-Depth-B0 runs the shipped
checkpoint's trained weights (``--budget-checkpoint``), so its reduced-precision entries
are judged against float32 on ground truth exactly as ``benchmarks/precision_accuracy.py``
and ``dna-depth calibrate-precision`` judge them (synthetic test sequences of every style
at 640x192, :func:`dna_depth_core.inference.precision.budget_verdict`); B1 and the baseline
have random weights (their speed does not depend on the weights; their accuracy is not
judged).

Timing is interleaved round-robin: each round runs every (model, backend, shape) once,
plus one large fp32 matrix multiplication that measures the CPU's sustained GEMM
throughput, so load from other processes hits every entry alike. The compute bound of a
model is ``2 * MACs / sustained GEMM FLOP/s``.

Peak memory is the increase of the process's peak resident set size (``VmHWM``, reset
through ``/proc/self/clear_refs``) from just before a runner is built through its first
inferences at 640x192, batch 1: weights, engine buffers and activations.

On a machine shared with other work, wall-clock latency mostly measures the neighbours
(multi-threaded inference degrades badly when cores are oversubscribed); ``--threads 1
--clock cpu`` measures the process's CPU time per inference on one thread instead, which
stays close to the single-core latency of an idle machine.

Run (about 6 minutes on an idle 2-core machine)::

    python benchmarks/inference.py
    python benchmarks/inference.py --threads 1 --clock cpu       # robust to other load
    python benchmarks/inference.py --rounds 5 --models b0,monodepth2 --no-scaling   # quicker
    python benchmarks/inference.py --rounds 7 --models b0,monodepth2 --no-scaling --no-throughput \
        --threads 1 --clock cpu                                     # the precision target, robust to load
"""

from __future__ import annotations

import argparse
import atexit
import copy
import dataclasses
import gc
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from monodepth2_baseline import Monodepth2DepthNet  # noqa: E402

from dna_depth_core.checkpoint import ModelMetadata, load_checkpoint  # noqa: E402
from dna_depth_core.data.synthetic import SyntheticSceneConfig, generate_sequence  # noqa: E402
from dna_depth_core.evaluation.evaluate import SYNTHETIC_PROTOCOL  # noqa: E402
from dna_depth_core.evaluation.precision_budget import (  # noqa: E402
    accuracy_changes, budget_test_sets, predict_depths,
)
from dna_depth_core.export.float16 import to_float16  # noqa: E402
from dna_depth_core.export.quantize import quantize_int8, quantize_onnx_int8  # noqa: E402
from dna_depth_core.devices import resolve_device  # noqa: E402
from dna_depth_core.inference.backends import (  # noqa: E402
    OnnxRuntimeRunner, OpenVinoRunner, backend_available, create_runner, physical_core_count,
)
from dna_depth_core.inference.model_cache import cached_model_bytes  # noqa: E402
from dna_depth_core.inference.tensorrt import TensorRtRunner, build_engine  # noqa: E402
from dna_depth_core.inference.precision import (  # noqa: E402
    AccuracyChange, BudgetVerdict, budget_verdict, cpu_description, precision_unavailable_reason,
)
from dna_depth_core.networks import create_depth_net  # noqa: E402
from dna_depth_core.checkpoint import shipped_checkpoint_path  # noqa: E402

MODELS = {"b0": "DNA-Depth-B0", "b1": "DNA-Depth-B1", "monodepth2": "Monodepth2 (ResNet-18)"}
LATENCY_SIZES = ((192, 640), (320, 1024))
THROUGHPUT_SIZE, THROUGHPUT_BATCH = (192, 640), 4
SCALING_SIZES = ((96, 320), (192, 640), (320, 1024))
GEMM_SIZE = 2048
CONFIGURATIONS = {
    "cpu": ("fp32:eager", "fp32:onnxruntime", "fp32:openvino", "bf16:openvino", "int8:openvino"),
    "cuda": ("fp32:eager", "fp16:eager", "fp32:tensorrt", "fp16:tensorrt", "fp32:onnxruntime", "fp16:onnxruntime"),
}
INT8_SIZE = (192, 640)
CALIBRATION_SEQUENCES = 2
"""Synthetic street sequences (8 frames each) the int8 models are calibrated on."""


@dataclasses.dataclass
class Entry:
    """One model in one precision under one backend: builds runners per input size on demand.

    ``sizes`` limits the input sizes it runs at (int8: only the calibrated size); ``None``: all.
    """

    model: str
    precision: str
    backend: str
    build: Callable[[int, int], Callable[[torch.Tensor], torch.Tensor]]
    sizes: frozenset | None = None
    runners: dict = dataclasses.field(default_factory=dict)
    peak_rss_mb: float | None = None
    verdict: BudgetVerdict | None = None
    change: AccuracyChange | None = None

    def runs_at(self, height: int, width: int) -> bool:
        return self.sizes is None or (height, width) in self.sizes

    def runner(self, height: int, width: int):
        if (height, width) not in self.runners:
            self.runners[(height, width)] = self.build(height, width)
        return self.runners[(height, width)]

    @property
    def label(self) -> str:
        return f"{self.precision} {self.backend}"


def rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def calibration_frames(height: int, width: int) -> list:
    """Synthetic street frames (8 of each of the first training seeds) for int8 calibration."""
    config = SyntheticSceneConfig("street", height, width, frames_per_sequence=8)
    return [image for seed in range(CALIBRATION_SEQUENCES) for image in generate_sequence(config, seed).images]


def dna_builder(network: torch.nn.Module, precision: str, backend: str, metadata: ModelMetadata,
                device: torch.device, threads: int):
    """The estimator's own runners (and ONNX cache: seeded or trained weights hit it on reruns)."""
    def build(height: int, width: int):
        sized = dataclasses.replace(metadata, height=height, width=width)
        int8_model = quantize_int8(network, sized, calibration_frames(height, width)) if precision == "int8" else None
        return create_runner(backend, precision, network, sized, device, True, int8_model=int8_model, threads=threads)

    return build


def baseline_builder(network: torch.nn.Module, precision: str, backend: str, work_dir: Path, device: torch.device,
                     threads: int):
    def build(height: int, width: int):
        if backend == "eager":
            half = precision == "fp16"
            model = copy.deepcopy(network).to(device, torch.float16 if half else torch.float32,
                                              memory_format=torch.channels_last)

            @torch.inference_mode()
            def run(images):
                images = images.to(device, model_dtype(model), memory_format=torch.channels_last)
                return model(images, multiscale=False).float()

            return run
        path = work_dir / f"monodepth2_{width}x{height}.onnx"
        if not path.exists():
            export_baseline(network, path, height, width)
        import onnx

        if precision == "int8":
            path = cached_model_bytes(quantize_onnx_int8(onnx.load(str(path)), calibration_frames(height, width)),
                                      "bench_monodepth2_int8")
        elif precision == "fp16":
            path = cached_model_bytes(to_float16(onnx.load(str(path))).SerializeToString(), "bench_monodepth2_fp16")
        if backend == "onnxruntime":
            return OnnxRuntimeRunner(path, device, threads)
        if backend == "tensorrt":
            engine = build_engine(path, height, width)
            return TensorRtRunner(engine, device)
        return OpenVinoRunner(path, threads, inference_precision="bf16" if precision == "bf16" else "f32")

    return build


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


class _FullResolution(torch.nn.Module):
    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image, multiscale=False)


def export_baseline(network: torch.nn.Module, path: Path, height: int, width: int) -> None:
    """Export the baseline like :func:`dna_depth_core.export.export_onnx` (dynamo, dynamic batch)."""
    import contextlib
    import io

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _FullResolution(network), (torch.rand(2, 3, height, width),), dynamo=True, opset_version=18,
            input_names=["image"], output_names=["disparity"],
            dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=64)}}, verbose=False,
        )
    program.save(str(path))


def count_macs(network: torch.nn.Module, height: int, width: int) -> float:
    """Multiply-adds of the full-resolution forward pass (fvcore), in G."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore traces with the deprecated torch.jit
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(_FullResolution(network), (torch.rand(1, 3, height, width),))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis.total() / 1e9


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def judge_b0(entries: list[Entry], network: torch.nn.Module, metadata: ModelMetadata, device: torch.device) -> None:
    """Set each B0 entry's budget verdict against eager float32 on ground truth at 640x192."""
    height, width = INT8_SIZE
    sized = dataclasses.replace(metadata, height=height, width=width)
    test_sets = budget_test_sets(height, width, sequences=1, frames=4)
    protocol = dataclasses.replace(SYNTHETIC_PROTOCOL, median_scaling=not metadata.metric)
    reference_network = copy.deepcopy(network).to(device)
    reference = predict_depths(lambda images: reference_network(images, multiscale=False), test_sets, sized, device)
    for entry in entries:
        if entry.model == "b0":
            depths = predict_depths(entry.runner(height, width), test_sets, sized, device)
            entry.change = AccuracyChange.worst(accuracy_changes(reference, depths, test_sets, protocol))
            entry.verdict = budget_verdict(entry.change)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--configurations",
                        help="comma-separated precision:backend pairs (unavailable ones are skipped); default: "
                             + "; ".join(f"{device}: {','.join(items)}" for device, items in CONFIGURATIONS.items()))
    parser.add_argument("--budget-checkpoint", type=Path, default=shipped_checkpoint_path(),
                        help="trained DNA-Depth-B0 checkpoint whose weights B0 runs and whose accuracy is judged")
    parser.add_argument("--rounds", type=int, default=15, help="timed round-robin rounds per input shape")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each entry before timing")
    parser.add_argument("--no-scaling", action="store_true", help="skip the latency-vs-pixels table")
    parser.add_argument("--no-throughput", action="store_true", help="skip the batch-4 throughput column")
    parser.add_argument("--threads", type=int, default=physical_core_count(), help="threads for every backend")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time inferences by wall clock, or by this process's CPU time (use with --threads 1)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    listed = args.configurations or ",".join(CONFIGURATIONS.get(device.type, CONFIGURATIONS["cpu"]))
    configurations = [tuple(item.strip().split(":", 1)) for item in listed.split(",") if item.strip()]
    unknown = sorted(set(models) - set(MODELS)) + [":".join(c) for c in configurations if len(c) != 2]
    if unknown:
        parser.error(f"unknown models/configurations: {', '.join(unknown)}")
    skipped = [f"{p}:{b}" for p, b in configurations
               if precision_unavailable_reason(p, device) or not backend_available(b, device)]
    configurations = [(p, b) for p, b in configurations if f"{p}:{b}" not in skipped]
    work_dir = Path(tempfile.mkdtemp(prefix="dna_depth_bench_"))
    atexit.register(shutil.rmtree, work_dir, ignore_errors=True)  # the baseline's ONNX files, 110 MB

    machine = cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"# Inference benchmark: {machine}, {physical_core_count()} physical cores, {args.threads} "
          f"threads, {args.clock} clock, torch {torch.__version__}, {args.rounds} interleaved rounds", flush=True)
    if skipped:
        print(f"skipped (not available here): {', '.join(skipped)}")
    trained = load_checkpoint(args.budget_checkpoint)
    networks = {}
    for model in models:
        if model == "monodepth2":
            networks[model] = Monodepth2DepthNet().eval()
        elif model == "b0":
            networks[model] = trained.depth_net.eval()
        else:
            networks[model] = create_depth_net(f"dna_depth_{model}").eval()
    entries = []
    for model in models:
        metadata = ModelMetadata(network=networks[model].config) if model != "monodepth2" else None
        for precision, backend in configurations:
            build = (baseline_builder(networks[model], precision, backend, work_dir, device, args.threads)
                     if model == "monodepth2" else dna_builder(networks[model], precision, backend, metadata, device,
                                                               args.threads))
            entries.append(Entry(model, precision, backend, build,
                                 frozenset({INT8_SIZE}) if precision == "int8" else None))

    shapes = [(1, *size) for size in LATENCY_SIZES]
    if not args.no_throughput:
        shapes.append((THROUGHPUT_BATCH, *THROUGHPUT_SIZE))
    if not args.no_scaling:
        shapes += [(1, *size) for size in SCALING_SIZES if (1, *size) not in shapes]

    print("building runners (exports, calibration, compilation) and measuring memory ...", flush=True)
    setup_started = time.perf_counter()
    for entry in entries:
        gc.collect()
        measurable = reset_peak_rss()
        before = rss_kib("VmRSS")
        runner = entry.runner(*LATENCY_SIZES[0])
        image = torch.rand(1, 3, *LATENCY_SIZES[0], device=device)
        for _ in range(3):
            runner(image)
        if measurable:
            entry.peak_rss_mb = (rss_kib("VmHWM") - before) / 1024
        for _, height, width in shapes:
            if entry.runs_at(height, width):
                entry.runner(height, width)
    if "b0" in models:
        judge_b0(entries, networks["b0"], trained.metadata, device)
    print(f"set-up took {time.perf_counter() - setup_started:.0f} s", flush=True)

    inputs = {shape: torch.rand(*shape[:1], 3, *shape[1:], device=device) for shape in shapes}
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for entry in entries:
        for shape, images in inputs.items():
            if entry.runs_at(*shape[1:]):
                for _ in range(args.warmup):
                    entry.runner(*shape[1:])(images)

    gemm_a, gemm_b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    gemm_out = torch.empty(GEMM_SIZE, GEMM_SIZE)
    torch.mm(gemm_a, gemm_b, out=gemm_out)
    times: dict[tuple[str, str, str, tuple[int, int, int]], list[float]] = {}
    gemm_rates: list[float] = []
    timing_started = time.perf_counter()
    for _ in range(args.rounds):
        for shape, images in inputs.items():
            for entry in entries:
                if not entry.runs_at(*shape[1:]):
                    continue
                run = entry.runner(*shape[1:])
                started = clock()
                run(images)
                synchronize()
                times.setdefault((entry.model, entry.precision, entry.backend, shape), []).append(clock() - started)
        started = clock()
        torch.mm(gemm_a, gemm_b, out=gemm_out)
        gemm_rates.append(2 * GEMM_SIZE**3 / (clock() - started) / 1e9)
    print(f"timing took {time.perf_counter() - timing_started:.0f} s\n", flush=True)

    gemm = statistics.median(gemm_rates)
    macs = {(model, size): count_macs(networks[model], *size) for model in models for size in SCALING_SIZES}
    params = {model: sum(p.numel() for p in networks[model].parameters()) / 1e6 for model in models}

    def median_ms(entry: Entry, shape) -> float | None:
        key = (entry.model, entry.precision, entry.backend, shape)
        return statistics.median(times[key]) * 1e3 if key in times else None

    def cell(entry: Entry, shape) -> str:
        key = (entry.model, entry.precision, entry.backend, shape)
        if key not in times:
            return "n/a"
        return f"{median_ms(entry, shape):.1f} / {percentile(times[key], 0.95) * 1e3:.1f}"

    def verdict(entry: Entry) -> str:
        if entry.verdict is None:
            return "not judged (random weights)" if entry.precision != "fp32" else "float32"
        change = entry.change
        return (f"{'meets' if entry.verdict.met else 'FAILS'}: ΔAbsRel {change.abs_rel:+.4f}, Δd1 {change.d1:+.4f}, "
                f"p99 {change.pixel_change_p99:.2%}")

    (h1, w1), (h2, w2) = LATENCY_SIZES
    header = (f"| model | precision | backend | params (M) | GMACs {w1}x{h1} | {w1}x{h1} median / p95 (ms) "
              f"| {w2}x{h2} median / p95 (ms) | batch-{THROUGHPUT_BATCH} {w1}x{h1} (img/s) | peak RSS (MB) "
              f"| GFLOP/s {w1}x{h1} | latency / fp32 compute bound | accuracy budget (B0, 640x192) |")
    print(f"Sustained fp32 GEMM ({GEMM_SIZE}x{GEMM_SIZE} torch.mm, median of {len(gemm_rates)}): "
          f"{gemm:.1f} GFLOP/s (min {min(gemm_rates):.1f}, max {max(gemm_rates):.1f})\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    small, large = (1, h1, w1), (1, h2, w2)
    for entry in entries:
        throughput = ""
        if not args.no_throughput:
            batch_ms = median_ms(entry, (THROUGHPUT_BATCH, h1, w1))
            throughput = f"{THROUGHPUT_BATCH / (batch_ms / 1e3):.1f}" if batch_ms else "n/a"
        mac_small = macs[(entry.model, (h1, w1))]
        latency = median_ms(entry, small)
        bound_ms = 2 * mac_small / gemm * 1e3
        memory = f"{entry.peak_rss_mb:.0f}" if entry.peak_rss_mb is not None else "n/a"
        print(f"| {MODELS[entry.model]} | {entry.precision} | {entry.backend} | {params[entry.model]:.3f} "
              f"| {mac_small:.2f} | {cell(entry, small)} | {cell(entry, large)} | {throughput} | {memory} "
              f"| {2 * mac_small / (latency / 1e3):.0f} | {latency / bound_ms:.2f} | {verdict(entry)} |")

    if not args.no_scaling:
        print("\nLatency (median ms, batch 1) against input size; in brackets ms per megapixel\n")
        sizes = [f"{w}x{h} ({w * h / 1e6:.3f} MP)" for h, w in SCALING_SIZES]
        print("| model | precision | backend | " + " | ".join(sizes) + " |")
        print("|---|---|---|" + "---|" * len(sizes))
        for entry in entries:
            cells = []
            for h, w in SCALING_SIZES:
                value = median_ms(entry, (1, h, w))
                cells.append("n/a" if value is None else f"{value:.1f} ({value / (h * w / 1e6):.0f})")
            print(f"| {MODELS[entry.model]} | {entry.precision} | {entry.backend} | " + " | ".join(cells) + " |")

    print(f"\nSummary at {w1}x{h1}, batch 1 (median):")
    for model in models:
        fastest = {}
        for entry in entries:
            if entry.model == model:
                best = fastest.get(entry.precision)
                if best is None or median_ms(entry, small) < median_ms(best, small):
                    fastest[entry.precision] = entry
        listed = ", ".join(f"{p} {e.backend} {median_ms(e, small):.1f} ms" for p, e in fastest.items())
        print(f"- {MODELS[model]}: fastest per precision: {listed}")
    baseline = [e for e in entries if e.model == "monodepth2"]
    if "b0" in models and baseline:
        reference = min((e for e in baseline if e.precision == "fp32"), key=lambda e: median_ms(e, small))
        reference_ms = median_ms(reference, small)
        in_budget = [e for e in entries
                     if e.model == "b0" and (e.precision == "fp32" or (e.verdict is not None and e.verdict.met))]
        best = min(in_budget, key=lambda e: median_ms(e, small))
        ratio = median_ms(best, small) / reference_ms
        print(f"- Target: DNA-Depth-B0's fastest in-budget configuration ({best.label}, "
              f"{median_ms(best, small):.1f} ms) "
              f"/ Monodepth2's fastest float32 ({reference.label}, {reference_ms:.1f} ms) = {ratio:.2f} "
              f"({'meets' if ratio <= 0.7 else 'misses'} the <= 0.70 target)")
        same = [e for e in baseline if e.precision == best.precision]
        if same and best.precision != "fp32":
            peer = min(same, key=lambda e: median_ms(e, small))
            print(f"- Monodepth2 in the same precision ({peer.label}): {median_ms(peer, small):.1f} ms; B0 / it = "
                  f"{median_ms(best, small) / median_ms(peer, small):.2f} (its accuracy is not judged: random weights)")
        for precision in ("fp32", "bf16", "int8"):
            b0 = [e for e in entries if e.model == "b0" and e.precision == precision]
            peers = [e for e in baseline if e.precision == precision]
            if b0 and peers:
                b0_ms = min(median_ms(e, small) for e in b0)
                peer_ms = min(median_ms(e, small) for e in peers)
                print(f"- {precision}: B0 best / Monodepth2 best = {b0_ms:.1f} / {peer_ms:.1f} ms "
                      f"= {b0_ms / peer_ms:.2f}")

if __name__ == "__main__":
    main()
