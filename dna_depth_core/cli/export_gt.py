"""``dna-depth export-gt``: KITTI ground-truth depth maps for a test split, from the velodyne scans."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.kitti import read_split_file
from ..errors import UserError
from ..evaluation import export_ground_truth
from ..data.kitti_depth import CAMERA_Z, DEPTH_DEFINITION_LABELS, DEPTH_DEFINITIONS, PUBLISHED
from ..paths import require_writable_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-gt",
        help="make the KITTI ground-truth depth file 'dna-depth evaluate --data kitti' needs",
        description=(
            "Project each test image's velodyne scan into its camera with the KITTI calibration\n"
            "files and save all maps in one .npz file (metres, nearest point per pixel, 0 = no\n"
            "return). By default the maps are the published Eigen-split ground truth, identical\n"
            "to the Monodepth2 export's gt_depths.npz that the paper's table is computed on: each\n"
            "pixel holds the lidar point's forward distance x_velo, points with x_velo >= 0.\n"
            "If you already have that gt_depths.npz, skip this: 'dna-depth evaluate' reads it.\n"
            "Needs, under --data-root, each date folder's calib_cam_to_cam.txt and\n"
            "calib_velo_to_cam.txt and each drive's velodyne_points.\n\n"
            "The .npz holds 'entries' (the split lines, in order), 'depth_definition' and\n"
            "'depth_00000', 'depth_00001', ... (float32 maps at the original image size);\n"
            "np.load reads it without pickle. Example:\n"
            "  dna-depth export-gt --data-root KITTI_RAW --split-file test_files.txt -o gt_depths.npz"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-root", required=True, type=Path, help="KITTI raw root folder (holding 2011_09_26 ...)")
    parser.add_argument(
        "--split-file",
        required=True,
        type=Path,
        help="test split, one 'folder frame side' line per image (e.g. Eigen test_files.txt)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("gt_depths.npz"), help="output .npz file (default: %(default)s)"
    )
    parser.add_argument(
        "--depth-definition",
        choices=DEPTH_DEFINITIONS,
        default=PUBLISHED,
        help=(
            f"'{PUBLISHED}': the lidar's forward distance x_velo, as in published tables; '{CAMERA_Z}': "
            "depth along the camera axis, about 0.27 m less, NOT comparable with published tables "
            "(default: %(default)s)"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.data_root.is_dir():
        raise UserError(
            f"KITTI data root {str(args.data_root)!r} is not a folder; pass the folder holding 2011_09_26 etc."
        )
    require_writable_file(args.output, "-o")
    entries = read_split_file(args.split_file)
    export_ground_truth(args.data_root, entries, args.output, args.depth_definition)
    label = DEPTH_DEFINITION_LABELS[args.depth_definition]
    print(f"wrote {len(entries)} ground-truth depth maps ({label}) to {args.output}")
    if args.depth_definition == CAMERA_Z:
        print("note: camera-z ground truth is not comparable with published KITTI tables (they use x_velo)")
    return 0
