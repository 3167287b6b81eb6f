"""Inference speed of DNA-Depth-B0/-B1 under each backend against a Monodepth2-architecture baseline.

Prints markdown tables measured side by side in one run on this machine:

1. Per model and backend: parameters, multiply-adds (fvcore, the published networks'
   count), median and p95 latency at batch 1 for 640x192 and 1024x320, throughput at
   batch 4 (640x192), peak memory, effective GFLOP/s and the ratio to the compute bound.
2. Latency against input pixels at three sizes.

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
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import re
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

from dna_depth_core.checkpoint import ModelMetadata  # noqa: E402
from dna_depth_core.inference.backends import (  # noqa: E402
    BACKEND_NAMES, EagerRunner, OnnxRuntimeRunner, OpenVinoRunner, backend_available, cached_onnx_model,
    physical_core_count,
)
from dna_depth_core.networks import create_depth_net  # noqa: E402

MODELS = {"b0": "DNA-Depth-B0", "b1": "DNA-Depth-B1", "monodepth2": "Monodepth2 (ResNet-18)"}
LATENCY_SIZES = ((192, 640), (320, 1024))
THROUGHPUT_SIZE, THROUGHPUT_BATCH = (192, 640), 4
SCALING_SIZES = ((96, 320), (192, 640), (320, 1024))
GEMM_SIZE = 2048


@dataclasses.dataclass
class Entry:
    """One model under one backend: builds runners per input size on demand."""

    model: str
    backend: str
    build: Callable[[int, int], Callable[[torch.Tensor], torch.Tensor]]
    runners: dict = dataclasses.field(default_factory=dict)
    peak_rss_mb: float | None = None

    def runner(self, height: int, width: int):
        if (height, width) not in self.runners:
            self.runners[(height, width)] = self.build(height, width)
        return self.runners[(height, width)]


def rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def dna_builder(network: torch.nn.Module, backend: str):
    def build(height: int, width: int):
        metadata = ModelMetadata(network=network.config, height=height, width=width)
        if backend == "eager":
            return EagerRunner(network, torch.device("cpu"), torch.float32, channels_last=True)
        path = cached_onnx_model(network, metadata)  # the estimator's cache: seeded weights hit it on reruns
        return OnnxRuntimeRunner(path, torch.device("cpu")) if backend == "onnxruntime" else OpenVinoRunner(path)

    return build


def baseline_builder(network: torch.nn.Module, backend: str, work_dir: Path):
    def build(height: int, width: int):
        if backend == "eager":
            channels_last = network.to(memory_format=torch.channels_last)

            @torch.inference_mode()
            def run(images):
                return channels_last(images.contiguous(memory_format=torch.channels_last), multiscale=False)

            return run
        path = work_dir / f"monodepth2_{width}x{height}.onnx"
        if not path.exists():
            export_baseline(network, path, height, width)
        return OnnxRuntimeRunner(path, torch.device("cpu")) if backend == "onnxruntime" else OpenVinoRunner(path)

    return build


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--backends", default=",".join(BACKEND_NAMES),
                        help="comma-separated subset of eager, onnxruntime, openvino (unavailable ones are skipped)")
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
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(backends) - set(BACKEND_NAMES))
    if unknown:
        parser.error(f"unknown models/backends: {', '.join(unknown)}")
    backends = [b for b in backends if backend_available(b, torch.device("cpu"))]
    work_dir = Path(tempfile.mkdtemp(prefix="dna_depth_bench_"))

    print(f"# Inference benchmark: {physical_core_count()} physical cores, {args.threads} threads, "
          f"{args.clock} clock, torch {torch.__version__}, {args.rounds} interleaved rounds", flush=True)
    networks = {
        model: (Monodepth2DepthNet() if model == "monodepth2" else create_depth_net(f"dna_depth_{model}")).eval()
        for model in models
    }
    entries = [
        Entry(model, backend, baseline_builder(networks[model], backend, work_dir) if model == "monodepth2"
              else dna_builder(networks[model], backend))
        for model in models for backend in backends
    ]

    shapes = [(1, *size) for size in LATENCY_SIZES]
    if not args.no_throughput:
        shapes.append((THROUGHPUT_BATCH, *THROUGHPUT_SIZE))
    if not args.no_scaling:
        shapes += [(1, *size) for size in SCALING_SIZES if (1, *size) not in shapes]

    print("building runners (exports, compilation) and measuring memory ...", flush=True)
    setup_started = time.perf_counter()
    for entry in entries:
        gc.collect()
        measurable = reset_peak_rss()
        before = rss_kib("VmRSS")
        runner = entry.runner(*LATENCY_SIZES[0])
        image = torch.rand(1, 3, *LATENCY_SIZES[0])
        for _ in range(3):
            runner(image)
        if measurable:
            entry.peak_rss_mb = (rss_kib("VmHWM") - before) / 1024
        for _, height, width in shapes:
            entry.runner(height, width)
    print(f"set-up took {time.perf_counter() - setup_started:.0f} s", flush=True)

    inputs = {shape: torch.rand(*shape[:1], 3, *shape[1:]) for shape in shapes}
    for entry in entries:
        for shape, images in inputs.items():
            for _ in range(args.warmup):
                entry.runner(*shape[1:])(images)

    gemm_a, gemm_b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    gemm_out = torch.empty(GEMM_SIZE, GEMM_SIZE)
    torch.mm(gemm_a, gemm_b, out=gemm_out)
    times: dict[tuple[str, str, tuple[int, int, int]], list[float]] = {}
    gemm_rates: list[float] = []
    timing_started = time.perf_counter()
    for _ in range(args.rounds):
        for shape, images in inputs.items():
            for entry in entries:
                run = entry.runner(*shape[1:])
                started = clock()
                run(images)
                times.setdefault((entry.model, entry.backend, shape), []).append(clock() - started)
        started = clock()
        torch.mm(gemm_a, gemm_b, out=gemm_out)
        gemm_rates.append(2 * GEMM_SIZE**3 / (clock() - started) / 1e9)
    print(f"timing took {time.perf_counter() - timing_started:.0f} s\n", flush=True)

    gemm = statistics.median(gemm_rates)
    macs = {(model, size): count_macs(networks[model], *size) for model in models for size in SCALING_SIZES}
    params = {model: sum(p.numel() for p in networks[model].parameters()) / 1e6 for model in models}

    def median_ms(model, backend, shape):
        return statistics.median(times[(model, backend, shape)]) * 1e3

    def p95_ms(model, backend, shape):
        return percentile(times[(model, backend, shape)], 0.95) * 1e3

    (h1, w1), (h2, w2) = LATENCY_SIZES
    header = (f"| model | backend | params (M) | GMACs {w1}x{h1} | GMACs {w2}x{h2} | {w1}x{h1} median / p95 (ms) "
              f"| {w2}x{h2} median / p95 (ms) | batch-{THROUGHPUT_BATCH} {w1}x{h1} (img/s) | peak RSS (MB) "
              f"| GFLOP/s {w1}x{h1} | latency / compute bound |")
    print(f"Sustained fp32 GEMM ({GEMM_SIZE}x{GEMM_SIZE} torch.mm, median of {len(gemm_rates)}): "
          f"{gemm:.1f} GFLOP/s (min {min(gemm_rates):.1f}, max {max(gemm_rates):.1f})\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for entry in entries:
        model, backend = entry.model, entry.backend
        small, large = (1, h1, w1), (1, h2, w2)
        throughput = ""
        if not args.no_throughput:
            throughput = f"{THROUGHPUT_BATCH / (median_ms(model, backend, (THROUGHPUT_BATCH, h1, w1)) / 1e3):.1f}"
        mac_small = macs[(model, (h1, w1))]
        latency = median_ms(model, backend, small)
        rate = 2 * mac_small / (latency / 1e3)
        bound_ms = 2 * mac_small / gemm * 1e3
        memory = f"{entry.peak_rss_mb:.0f}" if entry.peak_rss_mb is not None else "n/a"
        print(f"| {MODELS[model]} | {backend} | {params[model]:.3f} | {mac_small:.2f} | {macs[(model, (h2, w2))]:.2f} "
              f"| {latency:.1f} / {p95_ms(model, backend, small):.1f} "
              f"| {median_ms(model, backend, large):.1f} / {p95_ms(model, backend, large):.1f} "
              f"| {throughput} | {memory} | {rate:.0f} | {latency / bound_ms:.2f} |")

    if not args.no_scaling:
        print("\nLatency (median ms, batch 1) against input size; in brackets ms per megapixel\n")
        sizes = [f"{w}x{h} ({w * h / 1e6:.3f} MP)" for h, w in SCALING_SIZES]
        print("| model | backend | " + " | ".join(sizes) + " |")
        print("|---|---|" + "---|" * len(sizes))
        for entry in entries:
            cells = []
            for h, w in SCALING_SIZES:
                value = median_ms(entry.model, entry.backend, (1, h, w))
                cells.append(f"{value:.1f} ({value / (h * w / 1e6):.0f})")
            print(f"| {MODELS[entry.model]} | {entry.backend} | " + " | ".join(cells) + " |")

    print("\nSummary at 640x192, batch 1 (median):")
    best = {}
    for model in models:
        candidates = [(median_ms(model, b, (1, h1, w1)), b) for b in backends]
        best[model] = min(candidates)
        bound_ms = 2 * macs[(model, (h1, w1))] / gemm * 1e3
        print(f"- {MODELS[model]}: best backend {best[model][1]} {best[model][0]:.1f} ms; compute bound "
              f"{bound_ms:.1f} ms ({2 * macs[(model, (h1, w1))]:.2f} GFLOP at {gemm:.0f} GFLOP/s); "
              f"ratio {best[model][0] / bound_ms:.2f}")
    if "monodepth2" in best:
        for model in models:
            if model != "monodepth2":
                print(f"- {MODELS[model]} best / Monodepth2 best: {best[model][0] / best['monodepth2'][0]:.2f}")


if __name__ == "__main__":
    main()
