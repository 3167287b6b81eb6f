"""How a model's metric depth changes with the network size, and whether fine-tuning's check sees it.

A monocular network judges distance partly by how many pixels things span, so the same
view run at another focal length in pixels than the model was trained at reads nearer
(larger) or farther (smaller). ``finetune-bag`` measures this on a bag's frames before it
trains (:func:`~dna_depth_core.training.calibration.pixel_scale_check`: the model's depth
at the training size against its depth on the same frames resized to its own focal
length in pixels) and corrects a metric start's unit by it. This benchmark compares that
check with ground truth on held-out synthetic sequences (seeds 900001+, 90 degrees
horizontal field of view; ground-robot styles through an ideal pinhole lens), per style
and network size:

- ``true / predicted``: the median over frames of each frame's median true / predicted
  depth (pixels with truth below 80 m): 1.0 is metric at that size;
- ``check``: the factor the check finds (``-`` at the model's own focal length in pixels,
  where there is nothing to compare) and the size it compared with;
- ``corrected``: ``true / predicted`` after the correction (``true / (predicted x check)``).

Run (a few minutes on one core)::

    python benchmarks/pixel_scale.py
    python benchmarks/pixel_scale.py --checkpoint my.safetensors --sizes 320x240,640x480
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dna_depth_core.checkpoint import load_checkpoint, shipped_checkpoint_path  # noqa: E402
from dna_depth_core.data.synthetic import GROUND_ROBOT_STYLES, SyntheticTripletDataset, scene_config  # noqa: E402
from dna_depth_core.geometry import disp_to_depth  # noqa: E402
from dna_depth_core.training.calibration import pixel_scale_check  # noqa: E402

FIRST_SEED = 900001
MAX_TRUE_DEPTH = 80.0


def size_list(text: str) -> list[tuple[int, int]]:
    """``"128x96,448x256"`` -> ``[(96, 128), (256, 448)]`` (height, width)."""
    try:
        sizes = [tuple(int(value) for value in item.lower().split("x"))[::-1] for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are WIDTHxHEIGHT separated by commas, got {text!r}") from None
    if any(len(size) != 2 or min(size) < 32 or size[0] % 32 or size[1] % 32 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes are WIDTHxHEIGHT with both sides multiples of 32, got {text!r}")
    return sizes


@torch.no_grad()
def true_over_predicted(depth_net, metadata, dataset, samples: int) -> float:
    ratios = []
    for index in np.linspace(0, len(dataset) - 1, min(samples, len(dataset))).round().astype(int):
        sample = dataset[int(index)]
        disparity = depth_net(sample["frames"][1][None], multiscale=False)
        depth = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)[0, 0] * metadata.depth_scale
        truth = torch.as_tensor(sample["depth_gt"]).squeeze()
        valid = (truth > 0) & (truth < MAX_TRUE_DEPTH)
        ratios.append(float(torch.median(truth[valid] / depth[valid])))
    return float(np.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", default=str(shipped_checkpoint_path()), help="metric depth checkpoint")
    parser.add_argument("--styles", default="warehouse,robot,street", help="comma-separated scene styles")
    parser.add_argument("--sizes", type=size_list, default=size_list("128x96,224x160,384x288,448x256"),
                        help="network sizes WIDTHxHEIGHT (multiples of 32)")
    parser.add_argument("--sequences", type=int, default=2, help="held-out sequences per row")
    parser.add_argument("--frames", type=int, default=8, help="frames compared per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(args.checkpoint)
    depth_net, metadata = checkpoint.depth_net.eval(), checkpoint.metadata
    model_focal_px = metadata.preparation.fx * metadata.width
    depth_range = (metadata.min_depth, metadata.max_depth)
    print(f"# Depth against network size: {Path(args.checkpoint).name} (trained at {metadata.width}x"
          f"{metadata.height}, focal {model_focal_px:.0f} px, {metadata.depth_scale:g} m per unit)\n")
    header = ["style", "size", "focal (px)", "true / predicted", "check (compared at)", "corrected"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for style in (name.strip() for name in args.styles.split(",")):
        for height, width in args.sizes:
            lens = {"distortion": False} if style in GROUND_ROBOT_STYLES else {}
            config = scene_config(style, height, width, frames_per_sequence=args.frames + 2,
                                  horizontal_fov_deg=90.0, **lens)
            dataset = SyntheticTripletDataset(config, args.sequences, seed=FIRST_SEED)
            truth = true_over_predicted(depth_net, metadata, dataset, args.frames)
            check = pixel_scale_check(depth_net, dataset, model_focal_px, depth_range, torch.device("cpu"),
                                      max_samples=args.frames)
            focal = float(dataset[0]["intrinsics"][0, 0])
            if check is None:
                cells = ["-", f"{truth:.3f}"]
            else:
                reference = f"{check.reference_size[1]}x{check.reference_size[0]}"
                cells = [f"{check.ratio:.3f} ({reference})", f"{truth / check.ratio:.3f}"]
            print(f"| {style} | {width}x{height} | {focal:.0f} | {truth:.3f} | " + " | ".join(cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
