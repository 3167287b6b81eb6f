"""Would bfloat16 make DNA-Depth fast enough? Latency and depth error of OpenVINO bf16 against fp32.

The inference rule of this project is that every backend's depth agrees with PyTorch
float32 to within 1e-3 relative (``test/test_inference.py``). bfloat16 keeps 8 bits of
mantissa, so on CPUs with AVX512-BF16 or AMX it roughly doubles convolution throughput
at the price of precision. This script measures both sides on a trained checkpoint (random
weights hide the error: their disparity is nearly constant) with synthetic street and
corridor frames:

- median latency at batch 1 of OpenVINO with ``INFERENCE_PRECISION_HINT`` f32 and bf16,
  measured interleaved;
- the relative depth error of each against PyTorch float32: maximum, 99th percentile and
  median over all pixels.

Run::

    python benchmarks/bf16_accuracy.py                               # shipped checkpoint, 640x192
    python benchmarks/bf16_accuracy.py --checkpoint runs/street/best.safetensors --height 96 --width 320
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dna_depth_core.checkpoint import load_checkpoint
from dna_depth_core.evaluation.evaluate import SyntheticTestSet
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.inference.backends import backend_available, cached_onnx_model, physical_core_count
from dna_depth_ros.model_loading import shipped_checkpoint_path

PRECISIONS = ("f32", "bf16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(shipped_checkpoint_path()), help="trained checkpoint (default: shipped)")
    parser.add_argument("--height", type=int, default=192, help="input height (multiple of 32)")
    parser.add_argument("--width", type=int, default=640, help="input width (multiple of 32)")
    parser.add_argument("--rounds", type=int, default=15, help="timed runs per precision")
    parser.add_argument("--threads", type=int, default=physical_core_count())
    args = parser.parse_args()
    if not backend_available("openvino", torch.device("cpu")):
        sys.exit("OpenVINO is not installed: pip install -e '.[export]'")
    import openvino

    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    network = checkpoint.depth_net.float().eval()
    metadata = dataclasses.replace(checkpoint.metadata, height=args.height, width=args.width)
    frames = [sample.image for style, seed in (("street", 1_000_000), ("corridor", 1_000_000))
              for sample in SyntheticTestSet(style, 1, seed, args.height, args.width, 4)]
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0

    def depth(disparity: np.ndarray | torch.Tensor) -> np.ndarray:
        return disp_to_depth(torch.as_tensor(disparity), metadata.min_depth, metadata.max_depth).numpy()

    with torch.inference_mode():
        reference = depth(network(images, multiscale=False))
    core = openvino.Core()
    model_path = str(cached_onnx_model(network, metadata))
    requests = {
        precision: core.compile_model(core.read_model(model_path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(args.threads),
            "INFERENCE_PRECISION_HINT": precision,
        }).create_infer_request()
        for precision in PRECISIONS
    }
    batches = [images[i:i + 1].numpy() for i in range(len(images))]
    times: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    errors = {}
    for precision, request in requests.items():
        predicted = depth(np.concatenate([request.infer([batch])[0] for batch in batches]))
        errors[precision] = np.abs(predicted - reference) / reference
    for _ in range(args.rounds):
        for precision, request in requests.items():
            started = time.perf_counter()
            request.infer([batches[0]])
            times[precision].append(time.perf_counter() - started)

    print(f"{Path(args.checkpoint).name} at {args.width}x{args.height}, {len(batches)} synthetic frames, "
          f"{args.threads} threads, OpenVINO {openvino.__version__}\n")
    print("| precision | median latency (ms) | depth error vs PyTorch fp32: max / p99 / median |")
    print("|---|---|---|")
    for precision in PRECISIONS:
        error = errors[precision]
        print(f"| {precision} | {statistics.median(times[precision]) * 1000:.1f} | "
              f"{error.max():.1e} / {np.percentile(error, 99):.1e} / {np.median(error):.1e} |")
    print("\nbudget: 1e-3 relative (max); bf16", "meets it" if errors["bf16"].max() <= 1e-3 else "does NOT meet it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
