"""Training-step benchmark: the trainer's own step for DNA-Depth-B0/-B1 and a Monodepth2-architecture network.

Prints one markdown table measured side by side in one run on this machine. Every row is
:meth:`dna_depth_core.training.Trainer._train_step` (augmentation, depth and pose
forward, the 4-scale self-supervised loss, backward, Adam) on the same batch: 4
synthetic street triplets of 3 x 192 x 640 (``--batch-size``, ``--height``,
``--width``), the recipe's config otherwise. The Monodepth2 row trains the ResNet-18
network of ``benchmarks/monodepth2_baseline.py`` through the same trainer, pose network
and loss.

Columns: median step time (seconds) and images per second; peak memory (the process's
peak resident set size, and on CUDA the peak allocated device memory too); the kernel's
share of the process's CPU time over the timed steps (``sys %``: page faults of freshly
mapped memory show here); the median seconds of each phase: augmentation, depth forward,
pose forward, loss (warping, SSIM, auto-masking, smoothness), backward (from the end of
the loss to the optimiser), optimiser (Adam) and the rest of the step; the ratio of the
step time to the same row of the first ``--checkout`` and to the Monodepth2 row (the
median over rounds of each round's ratio, with the range over rounds in brackets: rows of
one round run back to back, so the pair shares the machine's speed of the moment); the
loss of the first step (equal across checkouts and variants that compute the same).

Each configuration runs in a fresh subprocess per round (peak memory is per process):
``--warmup-steps`` untimed steps (2: the first pays for lazy initialisation, and in the
second the heap is still growing to its peak: 1.3-1.6x the time of a later step for
either network at one thread), then ``--steps`` timed ones. Rounds interleave all
configurations, so load from other processes hits every row alike; the medians are over
all timed steps of all rounds. The subprocess applies the allocator settings that
``dna-depth train`` applies to its own process (where the checkout has them).

Rows: ``this`` is the checkout the script runs from; ``--checkout LABEL=PATH`` adds the
same rows for another checkout (e.g. ``git worktree add /tmp/before HEAD~3``), imported
from PATH; ``--variant LABEL:TOKEN`` adds rows for this checkout with a config override
(``optim.activation_checkpointing=true``) or ``glibc-malloc`` (leave glibc's allocator
settings as they are), for the DNA-Depth models; repeat it to give one label several
tokens. On CUDA, every configuration also runs once more on the GPU with mixed precision
(AMP).

On a machine shared with other work the wall clock mostly measures the neighbours;
``--clock cpu`` times by the process's CPU time instead (all its threads, so at 2 threads
it includes OpenMP's spinning), which at ``--threads 1`` stays close to an idle machine.

Run (about 10 minutes on an idle 2-core machine; 2 GB to 7 GB of memory per subprocess)::

    python benchmarks/train_step.py
    python benchmarks/train_step.py --checkout before=/tmp/train_step_before --rounds 2
    python benchmarks/train_step.py --models b0 --threads 2 \\
        --variant checkpointing:optim.activation_checkpointing=true --variant default-malloc:glibc-malloc
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
MODELS = {"b0": "DNA-Depth-B0", "b1": "DNA-Depth-B1", "monodepth2": "Monodepth2 (ResNet-18)"}
PHASES = ("augment", "depth", "pose", "loss", "backward", "optimiser", "other")
PHASE_TITLES = ("augment", "depth fwd", "pose fwd", "loss", "backward", "optimiser", "other")
GLIBC_MALLOC = "glibc-malloc"
RESULT_PREFIX = "TRAIN_STEP_RESULT "


@dataclass
class Configuration:
    """One row of the table: what a worker subprocess builds and times."""

    checkout: str
    checkout_path: str
    variant: str
    model: str
    device: str
    threads: int
    overrides: list[str] = field(default_factory=list)
    tune_malloc: bool = True
    batch_size: int = 4
    height: int = 192
    width: int = 640
    steps: int = 2
    warmup_steps: int = 2
    clock: str = "wall"

    @property
    def key(self) -> tuple:
        return self.checkout, self.variant, self.model, self.device, self.threads


# ----------------------------------------------------------------------------- worker


class PhaseClock:
    """Times the phases of ``Trainer._train_step`` from outside, without changing the step.

    Wraps the trainer module's ``augment_batch`` and the objective module's
    ``self_supervised_loss``, and hooks the networks' forward and the optimiser's step;
    backward is the time from the end of the loss to the optimiser step.
    """

    def __init__(self, trainer, synchronize, clock) -> None:
        import dna_depth_core.training.objective as objective_module
        import dna_depth_core.training.trainer as trainer_module

        self.synchronize = synchronize
        self.clock = clock
        self.marks: dict[str, float] = {}
        trainer_module.augment_batch = self._timed("augment", trainer_module.augment_batch)
        objective_module.self_supervised_loss = self._timed("loss", objective_module.self_supervised_loss)
        for name, network in (("depth", trainer.depth_net), ("pose", trainer.pose_net)):
            network.register_forward_pre_hook(lambda *_, name=name: self.mark(f"{name}_start"))
            network.register_forward_hook(lambda *_, name=name: self.mark(f"{name}_end"))
        trainer.optimizer.register_step_pre_hook(lambda *_: self.mark("optimiser_start"))
        trainer.optimizer.register_step_post_hook(lambda *_: self.mark("optimiser_end"))

    def mark(self, name: str) -> None:
        self.synchronize()
        self.marks[name] = self.clock()

    def _timed(self, name, function):
        def timed(*args, **kwargs):
            self.mark(f"{name}_start")
            result = function(*args, **kwargs)
            self.mark(f"{name}_end")
            return result
        return timed

    def phases(self, total: float) -> dict[str, float]:
        marks = self.marks
        seconds = {name: marks[f"{name}_end"] - marks[f"{name}_start"]
                   for name in ("augment", "depth", "pose", "loss", "optimiser")}
        seconds["backward"] = marks["optimiser_start"] - marks["loss_end"]
        seconds["other"] = total - sum(seconds.values())
        return seconds


def run_worker(configuration: Configuration) -> dict:
    """Build the trainer of one configuration, time its steps; runs in its own process."""
    malloc = "glibc defaults"
    # A checkout from before the CLI tuned the allocator has no such module (and an
    # editable install would find this checkout's instead).
    allocator = importlib.util.find_spec("dna_depth_core.allocator")
    checkout = Path(configuration.checkout_path).resolve()
    if configuration.tune_malloc and allocator and Path(allocator.origin).resolve().is_relative_to(checkout):
        from dna_depth_core.allocator import keep_freed_memory_mapped

        malloc = "tuned" if keep_freed_memory_mapped() else "glibc defaults (not glibc)"

    import torch
    from torch.utils.data import default_collate

    from dna_depth_core.checkpoint import Checkpoint, ModelMetadata
    from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
    from dna_depth_core.training import Trainer, load_train_config

    torch.set_num_threads(configuration.threads)
    cuda = configuration.device == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    batch_size = configuration.batch_size
    scenes = SyntheticSceneConfig(height=configuration.height, width=configuration.width,
                                  frames_per_sequence=batch_size + 2)
    dataset = SyntheticTripletDataset(scenes, 1, seed=0)
    batch = default_collate([dataset[index] for index in range(batch_size)])
    variant = "dna_depth_b1" if configuration.model == "b1" else "dna_depth_b0"
    init = None
    if configuration.model == "monodepth2":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from monodepth2_baseline import Monodepth2DepthNet

        torch.manual_seed(0)
        init = Checkpoint(ModelMetadata(), Monodepth2DepthNet())
    with tempfile.TemporaryDirectory() as output_dir:
        config = load_train_config(None, [
            f"model.variant={variant}", f"data.height={configuration.height}", f"data.width={configuration.width}",
            f"data.batch_size={batch_size}", "data.num_workers=0", f"runtime.device={configuration.device}",
            f"runtime.amp={str(cuda).lower()}", "runtime.progress=false", "runtime.tensorboard=false",
            f"runtime.output_dir={output_dir}", *configuration.overrides,
        ])
        trainer = Trainer(config, dataset, init_checkpoint=init)
        now = time.process_time if configuration.clock == "cpu" else time.perf_counter
        clock = PhaseClock(trainer, synchronize, now)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        losses, steps, phases = [], [], {name: [] for name in PHASES}
        usage_before = None
        warmup = configuration.warmup_steps
        for index in range(warmup + configuration.steps):
            if index == warmup:
                usage_before = resource.getrusage(resource.RUSAGE_SELF)
            synchronize()
            started = now()
            output, _ = trainer._train_step(batch)
            synchronize()
            seconds = now() - started
            losses.append(float(output.total.detach()))
            if index >= warmup:
                steps.append(seconds)
                for name, value in clock.phases(seconds).items():
                    phases[name].append(value)
        usage = resource.getrusage(resource.RUSAGE_SELF)
    user, system = usage.ru_utime - usage_before.ru_utime, usage.ru_stime - usage_before.ru_stime
    return {
        "steps": steps,
        "phases": phases,
        "first_loss": losses[0],
        "system_share": system / max(user + system, 1e-9),
        "peak_rss_gb": usage.ru_maxrss / 1024**2,
        "cuda_peak_gb": torch.cuda.max_memory_allocated() / 1024**3 if cuda else None,
        "malloc": malloc,
    }


# ----------------------------------------------------------------------------- parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--models", default="b0,b1,monodepth2", help=f"comma-separated, of {list(MODELS)}")
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (a fresh subprocess per row each)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per row and round, after the warm-up")
    parser.add_argument("--warmup-steps", type=int, default=2,
                        help="untimed steps first: lazy initialisation, and the heap growing to its peak (default 2)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--checkout", action="append", default=[], metavar="LABEL=PATH",
                        help="also measure the checkout at PATH (repeatable); ratios are to the first one")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL:TOKEN",
                        help="extra rows for this checkout: a config override KEY=VALUE or glibc-malloc (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every row of this checkout, e.g. optim.activation_checkpointing=true "
                             "(the batch and image size are --batch-size, --height and --width)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time steps and phases by the wall clock, or by the process's CPU time (all its "
                             "threads; robust to other load at 1 thread)")
    parser.add_argument("--no-cpu", action="store_true", help="measure only on CUDA")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args()


BENCHMARK_FLAGS = {"data.batch_size": "--batch-size", "data.height": "--height", "data.width": "--width"}
"""Config keys the benchmark sets from its own flags: the batch it times is built from them."""


def configurations(args: argparse.Namespace) -> list[Configuration]:
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"train_step.py: error: unknown models {unknown}; choose from {list(MODELS)}")
    checkouts = []
    for spec in args.checkout:
        label, separator, path = spec.partition("=")
        if not separator or not (Path(path) / "dna_depth_core").is_dir():
            raise SystemExit(f"train_step.py: error: --checkout {spec!r} must be LABEL=PATH of a project checkout")
        checkouts.append((label, str(Path(path).resolve()), []))
    variants: dict[str, list[str]] = {}
    for spec in args.variant:
        label, separator, token = spec.partition(":")
        if not separator or not (token == GLIBC_MALLOC or "=" in token):
            raise SystemExit(f"train_step.py: error: --variant {spec!r} must be LABEL:KEY=VALUE or "
                             f"LABEL:{GLIBC_MALLOC}")
        variants.setdefault(label, []).append(token)
    for token in args.overrides + [token for tokens in variants.values() for token in tokens]:
        key = token.partition("=")[0].strip()
        if key in BENCHMARK_FLAGS:
            raise SystemExit(f"train_step.py: error: {key} is set by {BENCHMARK_FLAGS[key]} (the benchmark builds "
                             f"its batch from it), not by a config override")
    rows = [(label, path, "", []) for label, path, _ in checkouts]
    rows.append(("this", str(REPOSITORY), "", list(args.overrides)))
    rows += [("this", str(REPOSITORY), label, list(args.overrides) + tokens) for label, tokens in variants.items()]

    if args.warmup_steps < 0 or args.steps < 1:
        raise SystemExit("train_step.py: error: --warmup-steps must be >= 0 and --steps >= 1")
    devices: list[tuple[str, int]] = []
    if not args.no_cpu:
        devices += [("cpu", int(threads)) for threads in args.threads.split(",")]
    if cuda_available():
        devices.append(("cuda", 1))
    result = []
    for checkout, path, variant, tokens in rows:
        for device, threads in devices:
            # Variants change the DNA-Depth networks (checkpointing); their Monodepth2
            # reference is the plain row.
            for model in [m for m in models if not (variant and m == "monodepth2")]:
                result.append(Configuration(
                    checkout=checkout, checkout_path=path, variant=variant, model=model, device=device,
                    threads=threads, overrides=[token for token in tokens if token != GLIBC_MALLOC],
                    tune_malloc=GLIBC_MALLOC not in tokens, batch_size=args.batch_size, height=args.height,
                    width=args.width, steps=args.steps, warmup_steps=args.warmup_steps, clock=args.clock,
                ))
    return result


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_subprocess(configuration: Configuration) -> dict:
    """Run one configuration in a fresh interpreter that imports the package from its checkout."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [configuration.checkout_path] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else []))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[name] = str(configuration.threads)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(configuration))],
        env=environment, capture_output=True, text=True, check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"worker for {configuration.key} failed (exit {completed.returncode}):\n"
                       f"{completed.stderr[-3000:]}")


def _paired_ratio(rounds: list[float], reference: list[float] | None) -> str:
    """Median over rounds of the step-time ratio within each round, with its range.

    Rows of one round run back to back, so a machine whose speed drifts over minutes (a
    shared VM) slows both sides of a pair alike; the ratio of whole-run medians would not
    cancel that.
    """
    if not reference:
        return ""
    ratios = sorted(value / other for value, other in zip(rounds, reference))
    spread = f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}x{spread}"


def format_table(results: dict[tuple, dict], configs: list[Configuration], reference_checkout: str) -> str:
    def round_steps(key):
        return results[key]["round_steps"] if key in results else None

    header = ["checkout", "variant", "model", "device", "step (s)", "images/s", "peak mem (GB)", "sys %",
              *PHASE_TITLES, f"vs {reference_checkout}", "vs Monodepth2", "first loss"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for configuration in configs:
        key = configuration.key
        result = results[key]
        step = statistics.median(result["steps"])
        checkout, variant, model, device, threads = key
        memory = f"{result['peak_rss_gb']:.2f}"
        if result["cuda_peak_gb"] is not None:
            memory += f" (CUDA {result['cuda_peak_gb']:.2f})"
        reference = round_steps((reference_checkout, "", model, device, threads))
        if checkout == reference_checkout and not variant:
            reference = None  # the row itself
        baseline = round_steps((checkout, "", "monodepth2", device, threads))
        phases = [f"{statistics.median(result['phases'][name]):.3f}" for name in PHASES]
        lines.append("| " + " | ".join([
            checkout, variant or "-", MODELS[model], "CUDA, AMP" if device == "cuda" else f"CPU, {threads} thr",
            f"{step:.3f}", f"{configuration.batch_size / step:.2f}", memory, f"{100 * result['system_share']:.0f}",
            *phases, _paired_ratio(result["round_steps"], reference),
            _paired_ratio(result["round_steps"], baseline) if model != "monodepth2" else "",
            f"{result['first_loss']:.6f}",
        ]) + " |")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if args.worker:
        result = run_worker(Configuration(**json.loads(args.worker)))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    configs = configurations(args)
    if not cuda_available():
        print("CUDA: not available, CUDA (AMP) rows skipped", flush=True)
    if not configs:
        raise SystemExit("train_step.py: error: nothing to measure (--no-cpu without CUDA)")
    results: dict[tuple, dict] = {}
    for round_index in range(args.rounds):
        for configuration in configs:
            started = time.monotonic()
            measured = run_subprocess(configuration)
            print(f"round {round_index + 1}/{args.rounds} {configuration.key}: steps "
                  f"{', '.join(f'{s:.3f}' for s in measured['steps'])} s, peak {measured['peak_rss_gb']:.2f} GB, "
                  f"malloc {measured['malloc']} ({time.monotonic() - started:.0f} s)", flush=True)
            merged = results.setdefault(configuration.key, {**measured, "steps": [], "round_steps": [],
                                                            "phases": {p: [] for p in PHASES}})
            merged["steps"] += measured["steps"]
            merged["round_steps"].append(statistics.median(measured["steps"]))
            for name in PHASES:
                merged["phases"][name] += measured["phases"][name]
            merged["peak_rss_gb"] = max(merged["peak_rss_gb"], measured["peak_rss_gb"])
            if measured["cuda_peak_gb"] is not None:
                merged["cuda_peak_gb"] = max(merged["cuda_peak_gb"], measured["cuda_peak_gb"])
    reference = configs[0].checkout
    print()
    print(f"Training step, batch {args.batch_size} x 3 frames x 3 x {args.height} x {args.width}, "
          f"{args.rounds} rounds x {args.steps} timed steps; phases and steps are medians in seconds "
          f"({'process CPU time' if args.clock == 'cpu' else 'wall clock'})")
    print()
    print(format_table(results, configs, reference))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "results": [
            {**asdict(c), **results[c.key]} for c in configs]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
