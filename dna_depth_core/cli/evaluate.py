"""``dna-depth evaluate``: depth metrics of a checkpoint on KITTI Eigen test images or synthetic scenes."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..checkpoint import read_metadata
from ..data.synthetic import GROUND_ROBOT_STYLES, STYLES
from ..devices import resolve_device
from ..errors import UserError
from ..evaluation import (
    KITTI_EIGEN_PROTOCOL,
    SYNTHETIC_PROTOCOL,
    KittiEigenTestSet,
    SyntheticTestSet,
    evaluate_checkpoint,
    write_report,
)
from ..data.kitti_depth import PUBLISHED
from ..paths import require_writable_dir

DEFAULT_SYNTHETIC_SEED = 100_000
"""First seed of the held-out synthetic sequences; keep training seeds away from it."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a checkpoint's depth accuracy (AbsRel, RMSE, d<1.25...)",
        description=(
            "Run a checkpoint on test images and compare its depth with ground truth using the\n"
            "KITTI Eigen-split protocol: prediction resized to the ground truth, pixels with\n"
            "0.001 < depth < --max-depth metres, median scaling per image for scale-ambiguous\n"
            "models, predictions clamped. Prints a table and writes metrics.json, metrics.csv\n"
            "(one row per image) and examples.png (inputs, predictions and ground truth side by\n"
            "side) to --output-dir.\n\n"
            "KITTI:     --data kitti --data-root KITTI_RAW --split-file test_files.txt\n"
            "           --gt-depths gt_depths.npz   (the published gt_depths.npz, or make it once\n"
            "           with 'dna-depth export-gt'; the Garg crop is applied; metrics.json names\n"
            "           the ground-truth definition)\n"
            "Synthetic: --data synthetic   (freshly generated held-out scenes with exact depth;\n"
            "           no crop, no download needed)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="model .safetensors file to evaluate")
    parser.add_argument(
        "--data", required=True, choices=("kitti", "synthetic"), help="test data: KITTI Eigen split or synthetic scenes"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("evaluation"), help="where reports go (default: %(default)s)"
    )
    parser.add_argument(
        "--device", default="auto", help="'auto' (GPU if available), 'cpu', 'cuda' or 'cuda:N' (default: %(default)s)"
    )
    parser.add_argument(
        "--median-scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scale each prediction by median(gt)/median(pred); default: on, off for checkpoints marked metric",
    )
    parser.add_argument(
        "--max-depth", type=float, default=80.0, help="evaluate ground truth below this, metres (default: %(default)s)"
    )
    parser.add_argument(
        "--num-examples", type=int, default=4, help="images shown in examples.png (default: %(default)s)"
    )
    kitti = parser.add_argument_group("KITTI (--data kitti)")
    kitti.add_argument("--data-root", type=Path, help="KITTI raw root folder (holding 2011_09_26 ...)")
    kitti.add_argument(
        "--split-file", type=Path, help="test split, one 'folder frame side' line per image (e.g. Eigen test_files.txt)"
    )
    kitti.add_argument(
        "--gt-depths",
        type=Path,
        help="ground-truth .npz for the same split: the published gt_depths.npz or one from 'dna-depth export-gt'",
    )
    kitti.add_argument(
        "--image-ext", choices=("auto", "jpg", "png"), default="auto", help="KITTI image format (default: %(default)s)"
    )
    synthetic = parser.add_argument_group("synthetic (--data synthetic)")
    synthetic.add_argument("--style", choices=STYLES, default="street", help="scene style (default: %(default)s)")
    synthetic.add_argument(
        "--num-sequences", type=int, default=4, help="held-out sequences to generate (default: %(default)s)"
    )
    synthetic.add_argument(
        "--frames-per-sequence", type=int, default=10, help="frames evaluated per sequence (default: %(default)s)"
    )
    synthetic.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SYNTHETIC_SEED,
        help="seed of the first sequence; sequence i uses seed+i (default: %(default)s)",
    )
    synthetic.add_argument("--height", type=int,
                           help="image height in pixels (default: the checkpoint's input height; robot: 480)")
    synthetic.add_argument("--width", type=int,
                           help="image width in pixels (default: the checkpoint's input width; robot: 640)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.num_examples < 0:
        raise UserError(f"--num-examples must be >= 0, got {args.num_examples}")
    if args.max_depth <= KITTI_EIGEN_PROTOCOL.min_depth:
        raise UserError(f"--max-depth must be above {KITTI_EIGEN_PROTOCOL.min_depth} m, got {args.max_depth}")
    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"--device {args.device!r}: {error}") from None
    require_writable_dir(args.output_dir, "--output-dir")
    metadata = read_metadata(args.checkpoint)
    if args.data == "kitti":
        required = {"--data-root": args.data_root, "--split-file": args.split_file, "--gt-depths": args.gt_depths}
        missing = [option for option, value in required.items() if value is None]
        if missing:
            raise UserError(f"--data kitti needs {', '.join(missing)}; see 'dna-depth evaluate --help'")
        if not args.gt_depths.is_file():
            raise UserError(
                f"ground-truth file {str(args.gt_depths)!r} does not exist; create it first with "
                f"'dna-depth export-gt --data-root {args.data_root} --split-file {args.split_file} -o {args.gt_depths}'"
            )
        samples = KittiEigenTestSet(args.data_root, args.split_file, args.gt_depths, args.image_ext)
        ground_truth = samples.ground_truth
        if ground_truth.depth_definition != PUBLISHED:
            print(
                f"note: {args.gt_depths} holds {ground_truth.definition_label} ground truth "
                f"({ground_truth.definition_source}), not the published x_velo: the numbers are not comparable "
                f"with published tables; re-export with 'dna-depth export-gt' (default --depth-definition {PUBLISHED})"
            )
        protocol = KITTI_EIGEN_PROTOCOL
        source = {
            "data": "kitti",
            "data_root": str(args.data_root),
            "split_file": str(args.split_file),
            "gt_depths": str(args.gt_depths),
            "gt_definition": ground_truth.definition_label,
            "gt_definition_source": ground_truth.definition_source,
        }
    else:
        # The robot's camera is a 640x480 one whatever the network size: frames are prepared for it.
        camera_size = (480, 640) if args.style in GROUND_ROBOT_STYLES else (metadata.height, metadata.width)
        height = args.height or camera_size[0]
        width = args.width or camera_size[1]
        if height <= 0 or width <= 0:
            raise UserError(f"--height and --width must be positive, got {height} and {width}")
        if args.frames_per_sequence < 3:  # a rendered sequence is at least one triplet
            raise UserError(f"--frames-per-sequence must be at least 3, got {args.frames_per_sequence}")
        if args.num_sequences < 1 or args.seed < 0:
            raise UserError(f"--num-sequences must be at least 1 and --seed >= 0, got {args.num_sequences} and "
                            f"{args.seed}")
        samples = SyntheticTestSet(args.style, args.num_sequences, args.seed, height, width, args.frames_per_sequence)
        protocol = SYNTHETIC_PROTOCOL
        source = {
            "data": "synthetic",
            "style": args.style,
            "num_sequences": args.num_sequences,
            "seed": args.seed,
            "frames_per_sequence": args.frames_per_sequence,
            "height": height,
            "width": width,
        }
    protocol = dataclasses.replace(protocol, max_depth=args.max_depth)
    result = evaluate_checkpoint(
        args.checkpoint,
        samples,
        protocol,
        median_scaling=args.median_scaling,
        device=args.device,
        num_examples=args.num_examples,
    )
    print(result.summary(name=args.checkpoint.name))
    paths = write_report(result, args.output_dir, context={"checkpoint": str(args.checkpoint), **source})
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0
