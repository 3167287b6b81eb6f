"""``dna-depth finetune-bag``: fine-tune on recorded ROS 2 bags (also ``ros2 run dna_depth_ros bag_finetune``).

The bag machinery (:mod:`dna_depth_core.data.rosbag`, pure Python ``rosbags``, no ROS
install needed) and the training are imported only when the command runs, so the rest of
the CLI starts without them. The fine-tune's progress lines are log records of
:mod:`dna_depth_core.training` printed on stdout; warnings are one ``warning:`` line each
on stderr.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from pathlib import Path

from ..errors import UserError
from ..paths import require_writable_dir

EPILOG = """\
examples:
  dna-depth make-sample-bag sample_bag                      # a synthetic bag to try this on
  dna-depth finetune-bag sample_bag --list-topics            # what is in the bag
  dna-depth finetune-bag my_drive/ --init model.safetensors -o finetune_out
  dna-depth finetune-bag day1/ day2.mcap --init model.safetensors -o out --odom-topic /odom   # metric depth
  dna-depth finetune-bag robot_drive/ --init model.safetensors -o out --camera-height 0.5      # metric, no odometry
  dna-depth finetune-bag my_drive/ optim.lr=5e-5 -o out --image-topic /cam/image_raw/compressed --epochs 5
  dna-depth finetune-bag my_drive/ --camera-info front.yaml -o out   # a bag without camera_info
  dna-depth finetune-bag -o finetune_out --resume            # continue a killed run
  dna-depth finetune-bag -o finetune_out --resume --steps 2000   # ... or go further than its step limit
  dna-depth finetune-bag my_drive/ -o finetune_out --overwrite   # replace the run in finetune_out

BAG is a rosbag2 folder or a .db3/.mcap file (sqlite3 or MCAP storage; bags cut short
by a crash are read up to the damage). Without --init the networks start from random
weights (add model.pretrained=true model.pose_pretrained=true for ImageNet encoders).
Decoded frames are cached (--cache-dir), so later runs on the same bags start at once.
Outputs in OUTDIR: dna_depth_finetuned.safetensors (load it in the node), report.json,
loss_curves.png, depth_before_after.png, finetune.yaml (settings for --resume) and
training/ (the trainer's run folder). The metres come from --odom-topic (with the camera
mount from /tf_static), else --camera-height, else a metric --init model's own unit, which
is checked at the end (the result is labelled relative, with a warning, when it did not
hold); report.json and 'dna-depth info' name the source. KEY=VALUE overrides any training option of
'dna-depth train' (see config/*.yaml), e.g. data.batch_size=4 optim.lr=5e-5, anywhere on
the line. --resume of a run that has finished changes nothing.
"""

DATA_OPTIONS = ("image_topic", "camera_info_topic", "camera_info_file", "odom_topic", "rate", "height", "width",
                "undistort", "static_threshold", "min_speed", "frame_spacing", "val_fraction", "cache_dir")
"""Options that choose the frames; fixed for the life of a run (not accepted with --resume)."""

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fine-tuning options (shared by ``dna-depth finetune-bag`` and ``bag_finetune``)."""
    parser.add_argument("inputs", nargs="*", metavar="BAG_OR_KEY=VALUE",
                        help="bags (rosbag2 folders or .db3/.mcap files) and optional training overrides, "
                             "anywhere on the line")
    parser.add_argument("-o", "--output", metavar="OUTDIR", help="output folder (checkpoint, report, resume state)")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="start from this checkpoint (e.g. the one the node runs); default: random weights")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUTDIR with its saved settings (give only -o, --epochs, "
                             "--steps and training overrides)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an OUTDIR that holds one, replacing its outputs and training/")
    parser.add_argument("--int8", action="store_true",
                        help="also calibrate an int8 model of the fine-tuned network on the bags' training frames "
                             "and measure it with the other precisions (stored in the checkpoint when it met the "
                             "accuracy budget; needs NNCF)")
    parser.add_argument("--no-precision-record", dest="precision_record", action="store_false",
                        help="skip the final measurement of the fine-tuned network in every precision this machine "
                             "runs (float32, bf16, ...) against the accuracy budget, as 'dna-depth "
                             "calibrate-precision' does (about a minute): without that record the node's "
                             "precision 'auto' runs the network in float32")
    parser.add_argument("--list-topics", action="store_true",
                        help="list each bag's topics and the camera topics that would be used, then exit")
    data = parser.add_argument_group("frames taken from the bags")
    data.add_argument("--image-topic", metavar="TOPIC",
                      help="camera image topic (Image or CompressedImage); default: the only one")
    data.add_argument("--camera-info-topic", metavar="TOPIC",
                      help="CameraInfo topic; default: the image topic's camera_info sibling")
    data.add_argument("--camera-info", dest="camera_info_file", metavar="FILE",
                      help="the camera's calibration YAML (as camera_calibration writes it), used instead of "
                           "the bag's camera info: for bags recorded without one")
    data.add_argument("--odom-topic", metavar="TOPIC",
                      help="nav_msgs/Odometry topic: depth comes out in metres (the pose network's motion is "
                           "measured, and supervised, against it; the camera's mount on the base is read from "
                           "/tf_static when the bag has it)")
    data.add_argument("--camera-height", type=float, metavar="METRES",
                      help="height of the camera above the floor or road: depth comes out in metres (the floor "
                           "plane of the predicted depth is held this far below the camera, and measured at the "
                           "end); for ground robots and cars without odometry")
    data.add_argument("--rate", type=float, metavar="HZ",
                      help="frames per second taken from the camera (default 10; 0: all)")
    data.add_argument("--height", type=int, metavar="PIXELS",
                      help="training height in pixels, multiple of 32 (default: picked from the camera, aspect "
                           "ratio as close as possible within 640x192 pixels: 384x288 for 4:3, 448x256 for 16:9)")
    data.add_argument("--width", type=int, metavar="PIXELS",
                      help="training width in pixels, multiple of 32 (default: picked from the camera; with only "
                           "one of --height/--width the other follows the camera's aspect ratio)")
    data.add_argument("--no-undistort", dest="undistort", action="store_const", const=False,
                      help="do not undistort with the camera info: the topic is already rectified "
                           "(image_rect* topics are recognised by name)")
    data.add_argument("--static-threshold", type=float, metavar="GREY_LEVELS",
                      help="drop frames differing from the last kept one by less than this mean grey level "
                           "(default 2.0; without odometry)")
    data.add_argument("--min-speed", type=float, metavar="M_PER_S",
                      help="with odometry, drop frames while moving slower than this, m/s (default 0.2)")
    data.add_argument("--frame-spacing", type=int, metavar="K",
                      help="train on frames t-K, t, t+K. A slow robot moves too little between neighbouring "
                           "frames for the loss to see depth beyond a few metres. Default: with odometry, the "
                           "smallest K (up to 4) that puts 0.2 m between them; 1 without (give 2-3 for a robot "
                           "slower than about 2 m/s at 10 Hz)")
    data.add_argument("--val-fraction", type=float, metavar="FRACTION",
                      help="last fraction of each bag's duration kept for validation (default 0.1)")
    data.add_argument("--cache-dir", metavar="DIR",
                      help="decoded-frame cache (default ~/.cache/dna_depth/bag_frames, or $DNA_DEPTH_CACHE_DIR/"
                           "bag_frames; a temporary folder, with a warning, when that cannot be written)")
    training = parser.add_argument_group("training (shortcuts for KEY=VALUE overrides)")
    training.add_argument("--epochs", type=int, metavar="N", help="passes over the training triplets (default 10)")
    training.add_argument("--steps", type=int, metavar="N", help="stop after this many optimiser steps in total")
    training.add_argument("--batch-size", type=int, metavar="N", help="triplets per step (default 8)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune-bag",
        help="fine-tune a depth network on your own recorded ROS 2 bags (no ground truth needed)",
        description=(
            "Fine-tune DNA-Depth self-supervised on camera images recorded in ROS 2 bags: frames are "
            "taken from the camera topic (undistorted with its camera info, centre-cropped and resized "
            "exactly as the depth node prepares them, static and gap frames skipped), and "
            "the network learns by predicting each frame from its neighbours. "
            "With --odom-topic the depth becomes metric. Writes a checkpoint the depth node loads, "
            "and a report comparing the network before and after."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def split_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Separate bag paths from ``key.sub=value`` overrides (an existing path is always a bag)."""
    bags, overrides = [], []
    for item in inputs:
        (overrides if _OVERRIDE.match(item) and not Path(item).exists() else bags).append(item)
    return bags, overrides


def _list_topics(bags: list[str], args: argparse.Namespace) -> None:
    from dna_depth_core.data.rosbag.reader import RecordedBag, select_camera_topics

    for path in bags:
        bag = RecordedBag(path)
        print(f"{path}:")
        for topic, msgtype in sorted(bag.topics.items()):
            print(f"  {topic:40s} {msgtype:34s} {bag.message_counts.get(topic, 0):7d} messages")
        try:
            topics = select_camera_topics(bag, args.image_topic, args.camera_info_topic,
                                          need_camera_info=args.camera_info_file is None)
            print(f"  -> camera: {topics.image} with {topics.camera_info or args.camera_info_file}")
        except UserError as error:
            print(f"  -> {error}")


def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the training commands: damaged bags, skipped frames and worse
    results are news for the user, not for a developer: one line each."""
    print(f"warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    # The training modules log their progress; print it as plain lines, as the rest of the CLI does.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("dna_depth_core.training")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # every run says what is wrong with it, not only a process's first
            warnings.showwarning = print_warning
            return _run(args)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    bags, overrides = split_inputs(args.inputs)
    if args.list_topics:
        if not bags:
            raise UserError("--list-topics needs at least one bag")
        _list_topics(bags, args)
        return 0
    if not args.output:
        raise UserError("choose the output folder with -o OUTDIR")
    require_writable_dir(args.output, "-o")
    if args.cache_dir is not None:
        require_writable_dir(args.cache_dir, "--cache-dir")
    shortcuts = [
        f"{key}={value}"
        for key, value in (("optim.epochs", args.epochs), ("optim.max_steps", args.steps),
                           ("data.batch_size", args.batch_size))
        if value is not None
    ]
    from dna_depth_core.data.rosbag.dataset import BagDataConfig, build_bag_datasets
    from dna_depth_core.training.finetune import (
        FINETUNED_CHECKPOINT,
        finished_finetune,
        load_settings,
        make_settings,
        run_finetune,
    )

    from .calibrate_precision import has_precision_record

    if args.int8 and not args.precision_record:
        raise UserError("--int8 is part of the precision record that --no-precision-record skips; choose one")
    if args.resume:
        if args.overwrite:
            raise UserError("--resume continues the run in OUTDIR, --overwrite replaces it; choose one")
        given = [name for name in (*DATA_OPTIONS, "camera_height") if getattr(args, name) is not None]
        if bags or given or args.init:
            raise UserError(
                "--resume continues OUTDIR with its saved bags and frame options; drop "
                + ", ".join([*(["the bags"] if bags else []), *(["--init"] if args.init else []),
                             *(f"--{name.replace('_', '-')}" for name in given)])
            )
        settings = load_settings(args.output, overrides + shortcuts)
        finished = finished_finetune(args.output, settings)
        if finished:
            print(finished)
            checkpoint = Path(args.output) / FINETUNED_CHECKPOINT
            if args.precision_record and not has_precision_record(checkpoint):
                # The run was stopped while its precision was being measured.
                print(f"{checkpoint.name} has no precision record for its weights yet: measuring it")
                train = build_bag_datasets(settings.bags, settings.data).train if args.int8 else None
                _record_precision(checkpoint, train, args.int8)
            return 0
    else:
        if not bags:
            raise UserError("give at least one bag (a rosbag2 folder or a .db3/.mcap file), or --resume")
        if (Path(args.output) / "finetune.yaml").exists() and not args.overwrite:
            raise UserError(f"{args.output} already holds a fine-tune run; continue it with --resume, replace it "
                            "with --overwrite, or choose another -o")
        options = {name: getattr(args, name) for name in DATA_OPTIONS if getattr(args, name) is not None}
        settings = make_settings(bags, args.output, BagDataConfig(**options), args.init, overrides + shortcuts,
                                 camera_height=args.camera_height)
    result = run_finetune(settings, args.output, resume=args.resume, overwrite=args.overwrite)
    if args.precision_record and result is not None:
        _record_precision(result.checkpoint, result.datasets.train, args.int8)
    return 0


def _record_precision(checkpoint: Path, train_dataset, int8: bool) -> None:
    """Measure the fine-tuned network in every precision this machine runs (on the CPU, and on
    the GPU when there is one) against the accuracy budget and record the results in
    ``checkpoint``, so the node's ``auto`` runs the fastest that met it. With ``int8``, the
    int8 model is calibrated on up to 48 training frames of the bags (the centre frames of
    evenly spread training triplets of ``train_dataset``)."""
    import numpy as np

    from .calibrate_precision import record_precision

    calibration = None
    if int8:
        triplets = train_dataset.triplets
        picks = np.unique(np.linspace(0, len(triplets) - 1, min(48, len(triplets))).round().astype(int))
        frames = [np.asarray(train_dataset.sequences[int(triplets[i][0])].frames[int(triplets[i][2])]) for i in picks]
        calibration = (frames, f"{len(frames)} training frames of the fine-tune's bags")
    record_precision(checkpoint, "the fine-tuned network", int8, calibration)
