"""``dna-depth train``: self-supervised training from a YAML config plus overrides."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import yaml
from torch.utils.data import ConcatDataset, Dataset

from ..checkpoint import check_checkpoint
from ..config import config_to_dict
from ..errors import UserError
from ..paths import require_writable_dir
from ..training import Trainer, TrainConfig, check_run_folder, finished_run, load_train_config
from ..training.config import SyntheticSceneMix
from ..training.run_output import (
    OUTPUT_CHECKPOINT,
    begin_run,
    finish_run,
    output_written,
    recorded_start,
    starting_model,
)
from .calibrate_precision import has_precision_record, record_precision
from .finetune_bag import print_warning

EPILOG = """\
examples:
  dna-depth train --config config/train_synthetic.yaml
  dna-depth train --config config/train_kitti.yaml data.kitti.root=/data/kitti_raw \\
      data.kitti.train_split=splits/eigen_zhou/train_files.txt data.batch_size=8
  dna-depth train --config config/train_kitti.yaml --resume        # continue runtime.output_dir
  dna-depth train --config config/train_kitti.yaml --resume optim.epochs=30   # ... further than its limit
  dna-depth train --config my_robot.yaml --init model.safetensors  # fine-tune a trained model
  torchrun --nproc_per_node 4 $(which dna-depth) train --config config/train_kitti.yaml   # 4 GPUs

Every option of the config can be overridden as key.sub=value; see the YAML files in
config/ for the keys and their defaults (the paper's recipe). Outputs in runtime.output_dir:
output.safetensors (the run's output), last.safetensors, best.safetensors, train_state.pt
(for --resume), report.json, config.yaml and tensorboard/ (view with: tensorboard --logdir
RUN_DIR). A folder that holds a run is continued with --resume or replaced with --overwrite,
never trained over silently.

The final weights are validated at the end of every run. With --init the starting model is
validated first: when training made the validation error worse, a warning line says so and
output.safetensors is the starting model, else it is best.safetensors; report.json records
the validation of the start, the best checkpoint, the final weights and the output.

At the end, output.safetensors is measured in every precision this machine runs against
the accuracy budget (as 'dna-depth calibrate-precision' does; --no-precision-record skips
it), so the node's precision 'auto' runs it in the fastest one that met the budget.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a depth network self-supervised on KITTI or synthetic sequences",
        description=(
            "Train DNA-Depth self-supervised from video triplets (frames t-1, t, t+1): a pose network "
            "estimates camera motion, and the depth network learns by warping neighbouring frames onto "
            "the target. Configuration comes from a YAML file and key=value overrides; defaults "
            "reproduce the paper's recipe. Runs on one CPU/GPU, or many GPUs/nodes under torchrun."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="YAML", help="training config file (default: the built-in recipe)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides such as optim.lr=2e-4 data.batch_size=8")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in runtime.output_dir exactly where it stopped (train_state.pt); "
                             "a run that reached its limits is left unchanged")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in runtime.output_dir even if it holds one (its checkpoints, resume "
                             "state, config.yaml and tensorboard/ are deleted)")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="start from this checkpoint's depth (and pose, if stored) weights, e.g. to fine-tune")
    parser.add_argument("--no-precision-record", dest="precision_record", action="store_false",
                        help="skip the final measurement of output.safetensors in every precision this machine "
                             "runs (float32, bf16, ...) against the accuracy budget, as 'dna-depth "
                             "calibrate-precision' does (a minute or two): without that record the node's "
                             "precision 'auto' runs the network in float32")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration as YAML and exit without training")
    parser.set_defaults(handler=run)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None, str]:
    """Training and validation datasets named by ``config.data``, and a description for provenance.

    Raises:
        UserError: missing paths or options the chosen dataset needs.
    """
    data = config.data
    if data.dataset == "synthetic":
        return _synthetic_datasets(config)

    from ..data.kitti import KittiRawDataset

    options = data.kitti
    if not options.root or not options.train_split:
        raise UserError(
            "KITTI training needs data.kitti.root=/path/to/kitti_raw and "
            "data.kitti.train_split=/path/to/train_files.txt (KITTI is not shipped; use the Eigen-Zhou split files)"
        )
    common = {"height": data.height, "width": data.width, "image_ext": options.image_ext,
              "frame_offsets": tuple(data.frame_offsets), "resample": options.resample}
    train = KittiRawDataset(options.root, options.train_split, **common)
    val = None
    if options.val_split:
        val = KittiRawDataset(options.root, options.val_split, with_depth_gt=options.val_depth_gt, **common)
    return train, val, f"KITTI raw {options.root} split {options.train_split}"


def _synthetic_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None, str]:
    """:func:`build_datasets` for ``data.dataset: synthetic``: one style, or the entries of ``mix`` concatenated."""
    from ..data.synthetic import SyntheticTripletDataset
    from ..data.synthetic import scene_config

    data, options = config.data, config.data.synthetic
    if tuple(data.frame_offsets) != (-1, 0, 1):
        raise UserError("synthetic sources are spaced by data.synthetic.frame_spacing; keep data.frame_offsets=[-1,0,1]")
    entries = options.mix or [SyntheticSceneMix(options.style, seed=options.seed, camera_height=options.camera_height,
                                                horizontal_fov_deg=options.horizontal_fov_deg,
                                                distortion=options.distortion)]
    planned = []  # every entry checked before any is rendered
    for number, entry in enumerate(entries):
        where = f"data.synthetic.mix[{number}]" if options.mix else "data.synthetic"
        train_sequences = options.train_sequences if entry.train_sequences is None else entry.train_sequences
        val_sequences = options.val_sequences if entry.val_sequences is None else entry.val_sequences
        if train_sequences < 1 or val_sequences < 0:
            raise UserError(f"{where}: train_sequences must be >= 1 and val_sequences >= 0")
        try:
            scenes = scene_config(entry.style, data.height, data.width, options.frames_per_sequence, options.fps,
                                  entry.camera_height, entry.horizontal_fov_deg, entry.distortion)
        except ValueError as error:
            raise UserError(f"invalid {where} options: {error}") from None
        seed = options.seed if entry.seed is None else entry.seed
        spacing = options.frame_spacing if entry.frame_spacing is None else entry.frame_spacing
        if 2 * spacing >= options.frames_per_sequence:
            raise UserError(f"{where}: frame_spacing {spacing} needs more than {2 * spacing} frames_per_sequence")
        planned.append((entry, scenes, train_sequences, val_sequences, seed, spacing))
    show = os.environ.get("RANK", "0") == "0"
    train, val, described = [], [], []
    for entry, scenes, train_sequences, val_sequences, seed, spacing in planned:
        train.append(SyntheticTripletDataset(scenes, train_sequences, seed=seed, progress=show, frame_spacing=spacing))
        if val_sequences:
            # Seeds far above the training ones: held-out scenes.
            val.append(SyntheticTripletDataset(scenes, val_sequences, seed=seed + 1_000_000, progress=show))
        camera = "".join(f", {name} {value}" for name, value in (
            ("camera height", entry.camera_height), ("horizontal fov", entry.horizontal_fov_deg),
            ("distortion", entry.distortion), ("frame spacing", spacing if spacing != 1 else None)) if value is not None)
        described.append(f"{entry.style}: {train_sequences} sequences x {options.frames_per_sequence} frames, "
                         f"seed {seed}{camera}")
    validation = (val[0] if len(val) == 1 else ConcatDataset(val)) if val else None
    return (train[0] if len(train) == 1 else ConcatDataset(train)), validation, "synthetic " + "; ".join(described)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = print_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    config = load_train_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0
    if args.resume and args.init:
        raise UserError("--resume continues a run from its own weights; drop --init")
    require_writable_dir(config.runtime.output_dir, "runtime.output_dir")
    check_run_folder(config.runtime.output_dir, args.resume, args.overwrite)
    if args.init:
        check_checkpoint(args.init)
    output = Path(config.runtime.output_dir) / OUTPUT_CHECKPOINT
    if args.resume:
        reached = finished_run(config)
        if reached and output_written(config.runtime.output_dir):
            print(f"the run in {config.runtime.output_dir!r} already finished ({reached}); nothing changed. "
                  "Raise optim.epochs or optim.max_steps to train further")
            if args.precision_record and not has_precision_record(output):
                # The run was stopped while its precision was being measured.
                print(f"{output.name} has no precision record for its weights yet: measuring it")
                record_precision(output, "the trained network")
            return 0
    train, val, description = build_datasets(config)
    trainer = Trainer(config, train, val, init_checkpoint=args.init, dataset_description=description)
    main_process = trainer.context.is_main
    start = None
    if main_process and args.resume:
        start = recorded_start(config.runtime.output_dir)
    elif main_process:
        if args.init:
            start = starting_model(trainer, val, args.init)
        if start is not None and start["metrics"] is not None:
            print(f"starting model: validation {start['criterion']} {start['metrics'][start['criterion']]:.4f}")
        begin_run(config.runtime.output_dir, start)
    summary = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    if main_process:
        print(json.dumps(finish_run(trainer, summary, val, start), indent=2))
        if args.precision_record and has_precision_record(output):  # the starting model, already measured
            print(f"{output.name} is the starting model and keeps its precision record")
        elif args.precision_record:
            record_precision(output, "the trained network")
    return 0
