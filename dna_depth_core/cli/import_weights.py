"""``dna-depth import-weights``: convert the authors' published weights into a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from dna_depth_core.checkpoint import save_checkpoint
from dna_depth_core.errors import UserError
from dna_depth_core.import_weights import ENCODERS_BY_BLOCK_COUNT, SOURCE_REPOSITORY, import_authors_weights
from dna_depth_core.paths import require_writable_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-weights",
        help="convert the authors' published DNA-Depth weights into a .safetensors checkpoint",
        description=(
            "Convert a folder of the authors' published KITTI weights into this project's checkpoint\n"
            "format. The folder is Monodepth2-style (e.g. mono_640m_b0 from\n"
            f"{SOURCE_REPOSITORY}): encoder.pth and depth.pth, optionally\n"
            "pose_encoder.pth and pose.pth. The converted network gives the same disparities as the\n"
            "authors' model. The .pth files are loaded in PyTorch's weights-only mode, so they cannot\n"
            "run code."
        ),
        epilog="example:\n  dna-depth import-weights ~/Downloads/mono_640m_b0 -o dna_depth_b0_640x192.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="folder holding encoder.pth and depth.pth")
    parser.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.safetensors)")
    parser.add_argument(
        "--encoder", choices=sorted(ENCODERS_BY_BLOCK_COUNT.values()), default=None,
        help="EfficientNet variant of the weights (default: detected from encoder.pth)",
    )
    parser.add_argument("--height", type=int, default=None,
                        help="network input height in pixels (default: the one recorded in encoder.pth)")
    parser.add_argument("--width", type=int, default=None,
                        help="network input width in pixels (default: the one recorded in encoder.pth)")
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require_writable_file(args.output, "-o")
    if args.output.exists() and not args.force:
        raise UserError(f"{str(args.output)!r} already exists; pass --force to overwrite it")
    checkpoint = import_authors_weights(args.folder, encoder=args.encoder, height=args.height, width=args.width)
    save_checkpoint(args.output, checkpoint.depth_net, checkpoint.metadata, checkpoint.pose_net)
    metadata = checkpoint.metadata
    print(
        f"wrote {args.output}: {metadata.network.encoder}, input {metadata.width}x{metadata.height}, "
        f"{'with' if checkpoint.pose_net is not None else 'without'} pose network"
    )
    return 0
