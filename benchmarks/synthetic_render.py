"""Rendering speed of the synthetic scene styles, side by side in one run.

Rows, each over ``--frames`` frames of one sequence (a fresh scene per row, seed 0):

- ``street`` and ``corridor`` at 640x192 (their camera);
- ``robot pinhole``: the ground-robot style at 640x480 with an ideal pinhole camera;
- ``robot``: the same through the default plumb_bob lens (renders a larger pinhole canvas
  that covers the raw image, then distorts it and rectifies the raw frame);
- ``robot bag``: ``make_sample_bag(style="robot")`` at 640x480, rendering and writing
  the bag (all topics), as ``dna-depth make-sample-bag OUT --style robot`` does.

Columns: frames per second and seconds per frame, wall clock, with the lens set up
beforehand (its one-off inversion of the distortion at every pixel is timed on its own
row, ``robot lens setup``, in seconds). Rows run one after the other in this process, so
load from other processes can differ between rows; rerun to compare.

Run (about a minute on an idle 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/synthetic_render.py
    python benchmarks/synthetic_render.py --frames 24
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dna_depth_core.data.rosbag.sample_bag import make_sample_bag
from dna_depth_core.data.synthetic import generate_sequence
from dna_depth_core.data.synthetic_robot import RobotSceneConfig
from dna_depth_core.data.synthetic_scenes import scene_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames per row (default 12)")
    args = parser.parse_args()

    start = time.perf_counter()
    RobotSceneConfig().lens()
    rows = [("robot lens setup", None, time.perf_counter() - start)]
    configs = {
        "street 640x192": scene_config("street", 192, 640, args.frames),
        "corridor 640x192": scene_config("corridor", 192, 640, args.frames),
        "robot pinhole 640x480": scene_config("robot", 480, 640, args.frames, distortion=False),
        "robot 640x480": scene_config("robot", 480, 640, args.frames),
    }
    for name, config in configs.items():
        start = time.perf_counter()
        generate_sequence(config, 0)
        rows.append((name, args.frames, time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        make_sample_bag(Path(folder) / "bag", style="robot", frames=args.frames, progress=False)
        rows.append(("robot bag 640x480", args.frames, time.perf_counter() - start))

    print("| row | frames/s | s/frame |\n|---|---|---|")
    for name, frames, seconds in rows:
        if frames is None:
            print(f"| {name} | | {seconds:.2f} s once |")
        else:
            print(f"| {name} | {frames / seconds:.2f} | {seconds / frames:.3f} |")


if __name__ == "__main__":
    main()
