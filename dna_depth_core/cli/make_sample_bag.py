"""``dna-depth make-sample-bag``: record a synthetic drive as a ROS 2 bag (no ROS install needed)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  dna-depth make-sample-bag sample_bag                       # 60 street frames, 640x192, sqlite3
  dna-depth make-sample-bag corridor.mcap_bag --format mcap --style corridor --frames 100

Topics: /camera/image_raw (Image rgb8), /camera/image_raw/compressed (CompressedImage jpeg),
/camera/camera_info (CameraInfo), /odom (nav_msgs/Odometry) and /camera/depth_gt (32FC1
ground-truth depth in metres, NaN where unknown), at 10 Hz. Replay it with
'ros2 bag play OUT' or fine-tune on it with 'dna-depth finetune-bag OUT'.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-sample-bag",
        help="write a ROS 2 bag of a rendered synthetic drive (camera, calibration, odometry, true depth)",
        description=(
            "Render a synthetic scene (exact depth, known camera motion) and record it as a ROS 2 bag, "
            "the way a robot's camera driver would publish it. Useful to try the depth node and bag "
            "fine-tuning without a robot, and to measure depth error against the ground truth."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output", metavar="OUT", help="bag folder to create (must not exist)")
    parser.add_argument("--format", choices=("sqlite3", "mcap"), default="sqlite3",
                        help="storage format: sqlite3 (.db3, the ROS 2 Humble default) or mcap (default: sqlite3)")
    parser.add_argument("--style", default="street", help="scene: street (8 m/s drive) or corridor (2 m/s indoors)")
    parser.add_argument("--frames", type=int, default=60, help="number of camera frames at 10 Hz (default 60)")
    parser.add_argument("--height", type=int, default=192, help="image height in pixels (default 192)")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels (default 640)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed; the same seed gives the same bag (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dna_depth_core.data.rosbag.sample_bag import make_sample_bag

    path = make_sample_bag(args.output, storage=args.format, style=args.style, frames=args.frames,
                           height=args.height, width=args.width, seed=args.seed)
    print(f"wrote {path} ({args.frames} frames of {args.width}x{args.height}, {args.style}, {args.format})")
    return 0
