"""Camera motion of the pinhole styles, and the rotation convention every style shares."""

from __future__ import annotations

import math

import numpy as np

from .config import SyntheticSceneConfig

def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about the down axis (> 0 turns right), then pitch
    about the camera x axis (> 0 looks down), then roll about the optical axis."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def _trajectory(rng: np.random.Generator, config: SyntheticSceneConfig, lane_x: float) -> np.ndarray:
    """Smooth camera-to-world poses, float64 (N, 4, 4): forward at about ``speed`` with a
    gentle weave, heading wobble, pitch wobble and a slight bounce."""
    times = np.arange(config.frames_per_sequence) / config.fps
    speed = config.speed
    # Speed varies by +-10 % with a period of 4-8 s; distance is its exact integral.
    omega = 2 * math.pi / rng.uniform(4.0, 8.0)
    phase = rng.uniform(0, 2 * math.pi)
    distance = speed * (times + 0.1 / omega * (np.sin(omega * times + phase) - math.sin(phase)))
    weave = 0.25 if config.style == "street" else 0.15
    wavelength = rng.uniform(6.0, 10.0) * speed
    weave_phase = rng.uniform(0, 2 * math.pi)
    k = 2 * math.pi / wavelength
    lateral = lane_x + weave * np.sin(k * distance + weave_phase)
    heading = np.arctan(weave * k * np.cos(k * distance + weave_phase))

    def wobble(amplitude_deg: float) -> np.ndarray:
        period = rng.uniform(2.5, 6.0)
        return math.radians(amplitude_deg) * np.sin(2 * math.pi * times / period + rng.uniform(0, 2 * math.pi))

    yaw = heading + wobble(config.yaw_amplitude_deg)
    pitch = wobble(config.pitch_amplitude_deg)
    roll = wobble(0.3)
    height = config.camera_height + 0.02 * np.sin(2 * math.pi * times / rng.uniform(0.8, 1.5) + rng.uniform(0, 6.3))
    poses = np.tile(np.eye(4), (len(times), 1, 1))
    for i in range(len(times)):
        poses[i, :3, :3] = _rotation(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = (lateral[i], -height[i], distance[i])
    return poses
