"""The preparation's one resampling against rectify-then-area-resize: time and agreement.

For each camera size and network size (``--cameras``, ``--networks``), with a wide-angle
plumb_bob lens (the robot camera's coefficients) and without one, a finely textured frame
(noise blurred to a couple of camera pixels, the worst case for aliasing and blur) is
prepared two ways:

- ``FramePlan.apply``: the project's preparation (one filtered, bilinear sampling at the
  network size; see :mod:`dna_depth_core.data.camera.preparation`);
- the reference: ``cv2.remap`` of the whole frame with the rectification maps, then
  ``cv2.resize(INTER_AREA)`` of the crop (what the preparation did until session 19).

Printed per row: the filter the plan picked (pyramid levels, box), the mean absolute
difference over the texture's standard deviation, the sharpness ratio (mean absolute
horizontal gradient, 1.0 = as sharp as the reference), and the median time of each,
measured in interleaved rounds in this process (OpenCV's threads as configured)::

    python benchmarks/frame_preparation.py
    python benchmarks/frame_preparation.py --cameras 1920x1080 --networks 448x256 --rounds 50
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from dna_depth_core.data.camera.calibration import CameraCalibration
from dna_depth_core.data.camera.preparation import FramePlan, plan_training_frames

WIDE_ANGLE = [-0.28, 0.07, 8e-4, -5e-4, 0.0]
"""plumb_bob coefficients of the robot-style synthetic camera."""


def fine_texture(height: int, width: int) -> np.ndarray:
    """uint8 RGB noise blurred to a couple of camera pixels (standard deviation ~55 levels)."""
    noise = np.random.default_rng(0).normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 300 + 128, 0, 255).astype(np.uint8)


def sharpness(image: np.ndarray) -> float:
    """Mean absolute horizontal gradient, grey levels per pixel."""
    return float(np.abs(np.diff(image.astype(np.float32), axis=1)).mean())


def sizes(text: str) -> list[tuple[int, int]]:
    """``"640x480,1280x720"`` -> ``[(480, 640), (720, 1280)]`` (height, width)."""
    return [tuple(int(value) for value in size.lower().split("x"))[::-1] for size in text.split(",")]


def reference(plan: FramePlan, image: np.ndarray) -> np.ndarray:
    x0, y0, crop_width, crop_height = plan.crop_box
    pinhole = plan.rectify(image)[y0 : y0 + crop_height, x0 : x0 + crop_width]
    return cv2.resize(pinhole, plan.network_size[::-1], interpolation=cv2.INTER_AREA)


def median_ms(functions: list, rounds: int) -> list[float]:
    """Median wall time of each function, called in interleaved rounds."""
    times = [[] for _ in functions]
    for _ in range(rounds):
        for function, spent in zip(functions, times):
            started = time.perf_counter()
            function()
            spent.append(time.perf_counter() - started)
    return [float(np.median(spent)) * 1000 for spent in times]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", default="640x480,1280x720,1920x1080", help="camera sizes WIDTHxHEIGHT")
    parser.add_argument("--networks", default="224x160,384x288,448x256", help="network sizes WIDTHxHEIGHT")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per row (default %(default)s)")
    args = parser.parse_args()
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; difference in texture standard deviations")
    print("| camera | lens | network | levels, box | mean difference | sharpness | apply ms | reference ms |")
    print("|---|---|---|---|---|---|---|---|")
    for height, width in sizes(args.cameras):
        image = fine_texture(height, width)
        camera = np.array([[width / 2, 0, width / 2 - 0.5], [0, width / 2, height / 2 - 0.5], [0, 0, 1]])
        for lens, distortion in (("wide-angle", WIDE_ANGLE), ("pinhole", [0.0] * 5)):
            calibration = CameraCalibration(width, height, camera, distortion=distortion)
            for network_size in sizes(args.networks):
                plan = plan_training_frames((height, width), network_size, calibration)
                prepared, expected = plan.apply(image), reference(plan, image)
                difference = np.abs(prepared.astype(np.float32) - expected).mean() / image.std()
                sharpness_ratio = sharpness(prepared) / sharpness(expected)
                apply_ms, reference_ms = median_ms([lambda: plan.apply(image), lambda: reference(plan, image)],
                                                   args.rounds)
                sampling = plan._network_sampling
                box = f"{sampling.levels}, {sampling.box[0]}x{sampling.box[1]}"
                kind = "exact area" if sampling.whole_factors else box
                print(f"| {width}x{height} | {lens} | {network_size[1]}x{network_size[0]} | {kind} | "
                      f"{difference:.3f} | {sharpness_ratio:.3f} | "
                      f"{apply_ms:.2f} | {reference_ms:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
