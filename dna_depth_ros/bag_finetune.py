"""``ros2 run dna_depth_ros bag_finetune``: the ROS entry point of :mod:`dna_depth_core.training.finetune`.

Bag fine-tuning reads bags with rosbags and needs no ROS install; this executable exists so
that a ROS workspace finds it where ``ros2 run`` looks. It takes the same options as
``dna-depth finetune-bag``.
"""

from __future__ import annotations

import argparse
import sys

from dna_depth_core.allocator import keep_freed_memory_mapped
from dna_depth_core.errors import UserError
from dna_depth_core.paths import describe_os_error


def main(argv: list[str] | None = None) -> int:
    """``ros2 run dna_depth_ros bag_finetune``: the same options as ``dna-depth finetune-bag``."""
    from dna_depth_core.cli.finetune_bag import EPILOG, add_arguments, run

    parser = argparse.ArgumentParser(
        prog="ros2 run dna_depth_ros bag_finetune",
        description="Fine-tune DNA-Depth self-supervised on recorded ROS 2 bags (same as 'dna-depth finetune-bag').",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_intermixed_args(argv)  # KEY=VALUE overrides anywhere on the line
    # Training re-allocates gigabytes of activations every step: keep them in the heap, as
    # the dna-depth CLI does (see dna_depth_core.allocator).
    keep_freed_memory_mapped()
    try:
        return run(args)
    except UserError as error:
        print(f"bag_finetune: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"bag_finetune: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bag_finetune: interrupted (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
