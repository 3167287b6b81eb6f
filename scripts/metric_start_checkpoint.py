"""Re-express a metric checkpoint in 1 m depth units: the starting point of the metric-native shipped model.

The shipped street model before it was metric-native predicted depth in units of about
55 m (``depth_scale``), so its depth range was 5.5-5,500 m. Training it on in metres from
those weights would first have to move every output by that factor, which Adam at 1e-4
does slowly. This script moves it at once instead:

- the depth network's four disparity heads get one constant added to their pre-sigmoid
  bias, chosen (bisection) so that the median depth in metres the network predicts on
  rendered street frames is the same as before (exact only where the sigmoid is in its
  tail; the training that follows fixes the rest);
- the pose network's translation outputs are multiplied by ``depth_scale`` (metres);
- the result says ``depth_scale`` 1, ``metric`` true, and records what was done.

Usage::

    python scripts/metric_start_checkpoint.py dna_depth_core/assets/dna_depth_synthetic.safetensors \\
        -o runs/metric_start.safetensors --height 160 --width 224
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from dna_depth_core.checkpoint import load_checkpoint, save_checkpoint
from dna_depth_core.data.synthetic import generate_sequence, scene_config
from dna_depth_core.geometry.depth import disp_to_depth

PROBE_SEED = 300_000
"""Seed of the street sequence the bias shift is fitted on (not a training seed)."""


def head_biases(depth_net: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The pre-sigmoid output biases of every disparity head (one per scale)."""
    return [head.conv.pointwise.bias for head in depth_net.decoder.heads]


def median_depth(depth_net: torch.nn.Module, images: torch.Tensor, min_depth: float, max_depth: float) -> float:
    """Median predicted depth (network units) of ``images`` ``(N, 3, H, W)`` in [0, 1]."""
    with torch.no_grad():
        disparity = depth_net(images, multiscale=False)[0]
    return float(disp_to_depth(disparity, min_depth, max_depth).median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="metric checkpoint with a pose network")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--height", type=int, default=160, help="frames rendered for the fit (pixels)")
    parser.add_argument("--width", type=int, default=224)
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint, with_pose=True)
    metadata, depth_net, pose_net = checkpoint.metadata, checkpoint.depth_net.eval(), checkpoint.pose_net
    if not metadata.metric or pose_net is None:
        raise SystemExit("the checkpoint must be metric and carry a pose network")
    scale = metadata.depth_scale
    sequence = generate_sequence(scene_config("street", args.height, args.width, 8, horizontal_fov_deg=81.0),
                                 PROBE_SEED)
    images = torch.from_numpy(sequence.images).permute(0, 3, 1, 2).float() / 255.0
    target = median_depth(depth_net, images, metadata.min_depth, metadata.max_depth) * scale
    originals = [bias.detach().clone() for bias in head_biases(depth_net)]
    low, high = -12.0, 4.0
    for _ in range(30):
        shift = (low + high) / 2
        with torch.no_grad():
            for bias, original in zip(head_biases(depth_net), originals):
                bias.copy_(original + shift)
        # A lower pre-sigmoid output is a smaller disparity, a larger depth.
        if median_depth(depth_net, images, metadata.min_depth, metadata.max_depth) > target:
            low = shift
        else:
            high = shift
    with torch.no_grad():
        translation = pose_net.decoder[-1]
        translation.weight[3:] *= scale
        translation.bias[3:] *= scale
    reached = median_depth(depth_net, images, metadata.min_depth, metadata.max_depth)
    print(f"head bias shift {shift:+.3f}: median street depth {reached:.2f} m (before: {target:.2f} m)")
    provenance = {
        "made_by": "scripts/metric_start_checkpoint.py",
        "source": str(args.checkpoint),
        "source_depth_scale": scale,
        "head_bias_shift": shift,
        "pose_translation_factor": scale,
        "fit": f"median depth on street sequence seed {PROBE_SEED} at {args.width}x{args.height}: {target:.3f} m",
        "source_provenance": metadata.provenance,
    }
    save_checkpoint(args.output, depth_net, dataclasses.replace(metadata, depth_scale=1.0, provenance=provenance),
                    pose_net)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
