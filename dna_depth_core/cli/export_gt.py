"""``dna-depth export-gt``: KITTI ground-truth depth maps for a test split, from the velodyne scans."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.kitti import read_split_file
from ..errors import UserError
from ..evaluation import export_ground_truth


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-gt",
        help="make the KITTI ground-truth depth file 'dna-depth evaluate --data kitti' needs",
        description=(
            "Project each test image's velodyne scan into its camera with the KITTI calibration\n"
            "files (the Eigen-split benchmark's ground truth: metres, nearest point per pixel,\n"
            "0 = no return) and save all maps in one .npz file. Needs, under --data-root, each\n"
            "date folder's calib_cam_to_cam.txt and calib_velo_to_cam.txt and each drive's\n"
            "velodyne_points.\n\n"
            "The .npz holds 'entries' (the split lines, in order) and 'depth_00000',\n"
            "'depth_00001', ... (float32 maps at the original image size); np.load reads it\n"
            "without pickle. Example:\n"
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.data_root.is_dir():
        raise UserError(
            f"KITTI data root {str(args.data_root)!r} is not a folder; pass the folder holding 2011_09_26 etc."
        )
    entries = read_split_file(args.split_file)
    export_ground_truth(args.data_root, entries, args.output)
    print(f"wrote {len(entries)} ground-truth depth maps to {args.output}")
    return 0
