"""Metres per depth unit from the floor: fitted tilt against the camera mount's, on a model's depth.

For held-out synthetic sequences of each style (seeds 900001+, network size, 90 degrees,
the style's camera height; ground-robot styles through an ideal pinhole lens), the depth
network's depth of each frame goes through
:func:`~dna_depth_core.geometry.ground_plane.ground_plane_scale` twice, once fitting the
floor's tilt and once with the floor's true direction given (``floor_normal``: what a
robot's camera mount says; for the ground-robot styles the renderer's camera is fixed on
a base on a level floor), and both are compared with the unit that makes the depth of the
floor metric: the median over the true floor pixels of true / predicted depth. Printed as
one markdown table, medians over the frames with a floor in view:

- ``free``: metres per unit with the tilt fitted, and the fitted tilt (degrees);
- ``mount``: metres per unit with the true floor direction, and the true tilt;
- ``floor metric``: the unit that puts the predicted floor at its true depth;
- ``truth``: the fitted unit on the true depth (1.000: the fit itself is exact).

Run (about a minute on one CPU core)::

    OMP_NUM_THREADS=1 python benchmarks/ground_plane_tilt.py
    python benchmarks/ground_plane_tilt.py --checkpoint finetuned/dna_depth_finetuned.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dna_depth_core.checkpoint import load_checkpoint, shipped_checkpoint_path  # noqa: E402
from dna_depth_core.data.synthetic import GROUND_ROBOT_STYLES, generate_sequence, scene_config  # noqa: E402
from dna_depth_core.geometry import disp_to_depth  # noqa: E402
from dna_depth_core.geometry.ground_plane import NoGroundPlaneError, ground_plane_scale  # noqa: E402

ROWS = (("robot", 0.5), ("robot", 0.3), ("warehouse", 0.4), ("corridor", 1.2), ("street", 1.65))
"""``(style, camera height in metres)`` of each row."""

FIRST_SEED = 900001


def measure_row(depth_net, metadata, style: str, camera_height: float, sequences: int, frames: int) -> list[str]:
    lens = {"distortion": False} if style in GROUND_ROBOT_STYLES else {}
    config = scene_config(style, metadata.height, metadata.width, frames_per_sequence=frames,
                          camera_height=camera_height, horizontal_fov_deg=90.0, **lens)
    rows = []
    for seed in range(FIRST_SEED, FIRST_SEED + sequences):
        sequence = generate_sequence(config, seed)
        for image, true_depth in zip(sequence.images, sequence.depths):
            batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                depth = disp_to_depth(depth_net(batch), metadata.min_depth, metadata.max_depth)[0, 0].numpy()
            depth = depth * metadata.depth_scale
            try:
                truth = ground_plane_scale(true_depth, sequence.intrinsics, camera_height)
                free = ground_plane_scale(depth, sequence.intrinsics, camera_height)
                mount = ground_plane_scale(depth, sequence.intrinsics, camera_height, floor_normal=truth.normal)
            except NoGroundPlaneError:
                continue
            floor = truth.inliers.numpy()
            rows.append((free.scale, free.tilt_deg, mount.scale, truth.tilt_deg,
                         np.median(true_depth[floor] / depth[floor]), truth.scale))
    if not rows:
        return [style, f"{camera_height:g}", "0", "-", "-", "-", "-"]
    free, free_tilt, mount, tilt, metric, truth = np.median(np.array(rows), axis=0)
    return [style, f"{camera_height:g}", f"{len(rows)} of {sequences * frames}", f"{free:.3f} ({free_tilt:.1f})",
            f"{mount:.3f} ({tilt:.1f})", f"{metric:.3f}", f"{truth:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", default=str(shipped_checkpoint_path()), help="depth checkpoint")
    parser.add_argument("--sequences", type=int, default=2, help="held-out sequences per row")
    parser.add_argument("--frames", type=int, default=8, help="frames per sequence")
    parser.add_argument("--size", metavar="WxH",
                        help="render and run at this network size (multiples of 32) instead of the checkpoint's, "
                             "e.g. the size a fine-tune for another camera picks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(args.checkpoint)
    depth_net, metadata = checkpoint.depth_net.eval(), checkpoint.metadata
    if args.size:
        try:
            width, height = (int(value) for value in args.size.lower().split("x"))
        except ValueError:
            parser.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
        if min(width, height) < 32 or width % 32 or height % 32:
            parser.error(f"--size needs both sides multiples of 32 (the network's stride), got {args.size!r}")
        metadata = dataclasses.replace(metadata, height=height, width=width)
    print(f"# Floor-plane unit of {Path(args.checkpoint).name} ({metadata.width}x{metadata.height}, "
          f"{metadata.depth_scale:g} m per unit as stored)\n")
    header = ["style", "camera height (m)", "frames with a floor", "free: m/unit (tilt deg)",
              "mount: m/unit (tilt deg)", "floor metric: m/unit", "truth: m/unit"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for style, height in ROWS:
        print("| " + " | ".join(measure_row(depth_net, metadata, style, height, args.sequences, args.frames)) + " |",
              flush=True)


if __name__ == "__main__":
    main()
