"""``dna-depth make-sample-bag``: record a synthetic drive as a ROS 2 bag (no ROS install needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..paths import require_writable_dir

EPILOG = """\
styles:
  street    a 640x192 pinhole camera 1.65 m up on a car driving a city street at 8 m/s
  corridor  the same camera 1.2 m up, moving down an indoor aisle at 2 m/s
  robot     a ground robot's 640x480 wide-angle camera 0.5 m above the floor (90 degrees
            of pinhole field of view, strong plumb_bob barrel distortion), driving at about
            1 m/s through furnished rooms and corridors, turning through doorways

examples:
  dna-depth make-sample-bag sample_bag                       # 60 street frames, 640x192, sqlite3
  dna-depth make-sample-bag corridor.mcap_bag --format mcap --style corridor --frames 100
  dna-depth make-sample-bag robot_bag --style robot          # 60 distorted 640x480 frames
  dna-depth make-sample-bag low_robot --style robot --camera-height 0.3 --fov 70 --no-distortion

Topics, at 10 Hz: /camera/image_raw (Image rgb8), /camera/image_raw/compressed
(CompressedImage jpeg), /camera/camera_info (CameraInfo), /odom (nav_msgs/Odometry) and
/camera/depth_gt (32FC1 ground-truth depth in metres, NaN where unknown).
The robot style's image_raw is the distorted raw image; its camera_info has plumb_bob D,
R = I and P = K; /camera/depth_gt is in the rectified (P) geometry (compare predictions
on frames rectified with the camera info), /camera/depth_gt_raw in the raw geometry;
/odom is the base's motion, /tf carries odom -> base_link and /tf_static the camera
mount base_link -> camera_link -> camera_optical_frame.
Replay a bag with 'ros2 bag play OUT' or fine-tune on it with 'dna-depth finetune-bag OUT'.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data.synthetic import STYLES

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
    parser.add_argument("--style", choices=STYLES, default="street",
                        help="scene and camera (see 'styles' below; default: street)")
    parser.add_argument("--frames", type=int, default=60, help="number of camera frames at 10 Hz (default 60)")
    parser.add_argument("--height", type=int,
                        help="image height in pixels (default: 192, robot 480)")
    parser.add_argument("--width", type=int, help="image width in pixels (default 640)")
    parser.add_argument("--camera-height", type=float, metavar="METRES",
                        help="camera height above the floor or road (default: street 1.65, corridor 1.2, robot 0.5)")
    parser.add_argument("--fov", type=float, metavar="DEGREES",
                        help="horizontal field of view of the (rectified) pinhole camera, square pixels "
                             "(default: street and corridor KITTI's camera, about 81 at 640x192; robot 90)")
    parser.add_argument("--no-distortion", action="store_true",
                        help="robot style: an ideal pinhole camera instead of the distorting wide-angle lens")
    parser.add_argument("--seed", type=int, default=0, help="scene seed; the same seed gives the same bag (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.frames < 3:
        raise UserError(f"--frames must be at least 3 (a training triplet needs both neighbours), got {args.frames}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if Path(args.output).exists():
        raise UserError(f"{args.output!r} exists already; choose a new bag path or delete it")
    require_writable_dir(Path(args.output).parent, "OUT's folder")
    from ..data.rosbag.sample_bag import make_sample_bag

    path = make_sample_bag(args.output, storage=args.format, style=args.style, frames=args.frames,
                           height=args.height, width=args.width, seed=args.seed, camera_height=args.camera_height,
                           horizontal_fov_deg=args.fov, distortion=False if args.no_distortion else None)
    print(f"wrote {path} ({args.frames} {args.style} frames, {args.format})")
    return 0
