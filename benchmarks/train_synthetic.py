"""Convergence benchmark: self-supervised training from scratch on synthetic sequences, on the CPU.

Trains DNA-Depth-B0 (random initialisation, no ImageNet weights) with the project's
:class:`~dna_depth_core.training.Trainer` on synthetic street sequences at a reduced
resolution for a fixed wall-time budget, then evaluates on held-out sequences (seeds
training never sees) with the synthetic protocol (whole frame, 1e-3..80 m, median
scaling) three predictors:

- the trained network (its weight average over roughly the last 200 steps,
  ``--ema-decay``: from scratch at this budget the weights still swing from step to step);
- the same network untrained (the initial weights of the run);
- a constant depth (after median scaling: the median ground-truth depth of each image).

Target: trained AbsRel at most half of both baselines'. It also measures training
throughput at the paper's 640x192 with batch 4 and the peak memory (resident set size)
of each phase. Figures depend on the machine and on anything else running on it.

Usage::

    python benchmarks/train_synthetic.py                 # 20-minute budget
    python benchmarks/train_synthetic.py --minutes 5 --output-dir /tmp/bench
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
from dna_depth_core.evaluation.evaluate import (
    SYNTHETIC_PROTOCOL,
    SyntheticTestSet,
    estimator_predictor,
    evaluate_predictions,
)
from dna_depth_core.metrics import format_metrics_table
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.training import LAST_CHECKPOINT, Trainer, load_train_config

CONFIG = Path(__file__).resolve().parent.parent / "config" / "train_synthetic.yaml"
"""Base configuration; the benchmark overrides size, schedule and budget."""

HELD_OUT_SEED = 1_000_000
"""First seed of the evaluation sequences; training uses seeds 0 .. train_sequences - 1."""


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-time budget")
    parser.add_argument("--height", type=int, default=64, help="training/evaluation height (multiple of 32)")
    parser.add_argument("--width", type=int, default=192, help="training/evaluation width (multiple of 32)")
    parser.add_argument("--train-sequences", type=int, default=30, help="training sequences (28 triplets each)")
    parser.add_argument("--eval-sequences", type=int, default=4, help="held-out evaluation sequences")
    parser.add_argument("--frames-per-sequence", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="Adam learning rate (from scratch on a short budget: 3x the recipe's; 1e-3 "
                             "degrades after about 600 steps)")
    parser.add_argument("--ema-decay", type=float, default=0.995,
                        help="weight averaging of the trained network (optim.ema_decay; 0: off)")
    parser.add_argument("--lr-drop-epoch", type=int, default=0,
                        help="divide the learning rate by 10 from this epoch on (0: constant)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--output-dir", default="benchmark_runs/train_synthetic")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra training config override, e.g. --set loss.min_depth=0.01 (repeatable)")
    parser.add_argument("--throughput-steps", type=int, default=8,
                        help="timed steps at 640x192 batch 4 (0: skip the throughput measurement)")
    return parser.parse_args()


def measure_throughput(args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    """Child process: train a few steps at 640x192, batch 4; report images/s and peak RSS."""
    torch.set_num_threads(args.threads)
    dataset = SyntheticTripletDataset(SyntheticSceneConfig(height=192, width=640, frames_per_sequence=10), 1, seed=0)
    config = load_train_config(CONFIG, [
        "data.height=192", "data.width=640", "data.batch_size=4", "data.num_workers=0",
        f"optim.max_steps={args.throughput_steps + 1}", "optim.epochs=100", "runtime.progress=false",
        "runtime.tensorboard=false", "runtime.checkpoint_every_steps=0",
        f"runtime.output_dir={Path(args.output_dir) / 'throughput'}",
    ])
    summary = Trainer(config, dataset).fit()
    # The first step pays for lazy initialisation; the median of the others is the steady state.
    seconds = statistics.median(record["seconds"] for record in summary.history[1:])
    queue.put({"images_per_second": 4 / seconds, "seconds_per_step": seconds, "peak_rss_mib": peak_rss_mib()})


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    output_dir = Path(args.output_dir)
    report: dict = {"settings": vars(args).copy()}

    if args.throughput_steps:
        print(f"throughput: {args.throughput_steps} steps at 640x192, batch 4 ...", flush=True)
        queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(target=measure_throughput, args=(args, queue))
        child.start()
        report["throughput_640x192_batch4"] = queue.get()
        child.join()
        print(json.dumps(report["throughput_640x192_batch4"]), flush=True)

    started = time.monotonic()
    scenes = SyntheticSceneConfig(height=args.height, width=args.width, frames_per_sequence=args.frames_per_sequence)
    train_set = SyntheticTripletDataset(scenes, args.train_sequences, seed=args.seed, progress=True)
    report["render_seconds"] = time.monotonic() - started

    config = load_train_config(CONFIG, [
        f"data.height={args.height}", f"data.width={args.width}", f"data.batch_size={args.batch_size}",
        "data.num_workers=0", f"optim.lr={args.lr}", f"optim.ema_decay={args.ema_decay}", "optim.epochs=1000",
        f"optim.lr_milestones=[{args.lr_drop_epoch or ''}]",
        f"runtime.time_limit_minutes={args.minutes}", f"runtime.seed={args.seed}",
        f"runtime.output_dir={output_dir / 'run'}", "runtime.checkpoint_every_steps=0",
        *args.overrides,
    ])
    trainer = Trainer(config, train_set, dataset_description="benchmark synthetic street")
    # The untrained baseline is the run's own initial network.
    untrained = DepthEstimator(copy.deepcopy(trainer.depth_net), trainer.metadata(), device="cpu")

    summary = trainer.fit()
    history = summary.history
    first, last = history[: min(50, len(history))], history[-min(50, len(history)):]
    report["training"] = {
        "steps": summary.steps,
        "epochs": summary.epochs_completed,
        "images_per_second": summary.images_per_second,
        "photometric_first_50_steps": float(np.mean([r["photometric"] for r in first])),
        "photometric_last_50_steps": float(np.mean([r["photometric"] for r in last])),
        "peak_rss_mib": peak_rss_mib(),
    }

    test_set = SyntheticTestSet("street", args.eval_sequences, HELD_OUT_SEED, args.height, args.width,
                                args.frames_per_sequence)
    trained = DepthEstimator.from_checkpoint(output_dir / "run" / LAST_CHECKPOINT, device="cpu")
    predictors = {
        "trained": estimator_predictor(trained),
        "untrained": estimator_predictor(untrained),
        "constant": lambda sample: np.full((8, 8), 10.0, dtype=np.float32),
    }
    results = {name: evaluate_predictions(predict, test_set, SYNTHETIC_PROTOCOL, progress=False).metrics
               for name, predict in predictors.items()}
    report["evaluation"] = results
    trained_abs_rel = results["trained"]["abs_rel"]
    report["target_met"] = bool(trained_abs_rel <= 0.5 * min(results["untrained"]["abs_rel"],
                                                              results["constant"]["abs_rel"]))

    print(format_metrics_table(results))
    print(json.dumps({key: value for key, value in report.items() if key != "evaluation"}, indent=2))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
