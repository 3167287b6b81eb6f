"""Rendering speed of the synthetic scene styles, side by side in one run.

Rows, each over ``--frames`` frames of one sequence (a fresh scene per row, seed 0):

- ``street`` and ``corridor`` at 640x192 (their camera);
- ``robot pinhole``: the ground-robot style at 640x480 with an ideal pinhole camera;
- ``robot``: the same through the default plumb_bob lens (renders a larger pinhole canvas
  that covers the raw image, then distorts it and rectifies the raw frame);
- ``robot bag``: ``make_sample_bag(style="robot")`` at 640x480, rendering and writing
  the bag (all topics), as ``dna-depth make-sample-bag OUT --style robot`` does.

Columns: frames per second and seconds per frame, wall clock, and the process's CPU
seconds per frame (with ``OMP_NUM_THREADS=1`` the renderer runs on one core, so that is
what an idle core takes, whatever else loads the machine). The lens is set up beforehand:
its one-off inversion of the distortion at every pixel is timed on its own row, ``robot
lens setup``. Rows run one after the other in this process.

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
from dna_depth_core.data.synthetic import RobotSceneConfig, generate_sequence, scene_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames per row (default 12)")
    args = parser.parse_args()

    def timed(run) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        return time.perf_counter() - wall, time.process_time() - cpu

    rows = [("robot lens setup (once per camera)", None, *timed(RobotSceneConfig))]  # it builds and caches the lens
    configs = {
        "street 640x192": scene_config("street", 192, 640, args.frames),
        "corridor 640x192": scene_config("corridor", 192, 640, args.frames),
        "robot pinhole 640x480": scene_config("robot", 480, 640, args.frames, distortion=False),
        "robot 640x480": scene_config("robot", 480, 640, args.frames),
    }
    for name, config in configs.items():
        rows.append((name, args.frames, *timed(lambda config=config: generate_sequence(config, 0))))
    with tempfile.TemporaryDirectory() as folder:
        bag = Path(folder) / "bag"
        rows.append(("robot bag 640x480", args.frames,
                     *timed(lambda: make_sample_bag(bag, style="robot", frames=args.frames, progress=False))))

    print("| row | frames/s | s/frame | CPU s/frame |\n|---|---|---|---|")
    for name, frames, wall, cpu in rows:
        if frames is None:
            print(f"| {name} | | {wall:.3f} | {cpu:.3f} |")
        else:
            print(f"| {name} | {frames / wall:.2f} | {wall / frames:.3f} | {cpu / frames:.3f} |")

if __name__ == "__main__":
    main()
