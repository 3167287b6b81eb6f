"""Turn a synthetic-scene training checkpoint into the checkpoint shipped with the package.

How the previous ``dna_depth_core/assets/dna_depth_synthetic.safetensors`` (scale-ambiguous depth
calibrated to a 55 m unit) was made:

1. train on synthetic street scenes, e.g.
   ``dna-depth train --config config/train_synthetic.yaml runtime.output_dir=runs/street``;
2. train a small pose network against that depth network, held (only the pose network
   learns), so that fine-tuning with odometry starts from a pose network that knows which
   way the camera moves::

       dna-depth train --config config/train_synthetic.yaml --init runs/street/best.safetensors \
           model.pose_encoder=resnet10t optim.pose_warmup_steps=1000000 optim.max_steps=300 \
           optim.ema_decay=0 runtime.output_dir=runs/street_pose

3. ``python scripts/package_shipped_checkpoint.py runs/street_pose/last.safetensors``.

The shipped file is now the metric-native model (depth in metres, 0.1-100 m, metric pose
network) made from ``config/train_metric_shipped.yaml``, whose header lists the exact
commands (a speed-supervised start, then training on the synthetic scenes' true motion)::

    OMP_NUM_THREADS=1 dna-depth train --config config/train_metric_shipped.yaml \
        --init runs/metric_truepose_start.safetensors runtime.output_dir=runs/metric_truepose
    python scripts/package_shipped_checkpoint.py runs/metric_truepose/last.safetensors --recipe "<the commands>"

This script keeps both networks (the node loads only the depth network; ``finetune-bag``
starts from both, so fine-tunes are speed-supervised in metres from step 1) and stores
them in float16 (half the size; the networks compute in float32). A metric checkpoint
(trained in metres, ``depth_scale`` 1) keeps its scale. A scale-ambiguous one is calibrated:
the median of the per-image median-scaling factors on held-out synthetic street sequences
(seeds training never saw) becomes ``depth_scale``, so the node publishes metres for scenes
like those. Everything is recorded in the checkpoint's provenance, and how the training
frames were made (``preparation``) is kept from the training checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from dna_depth_core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from dna_depth_core.evaluation.evaluate import (
    SYNTHETIC_PROTOCOL,
    SyntheticTestSet,
    estimator_predictor,
    evaluate_predictions,
)
from dna_depth_core.inference import DepthEstimator

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "dna_depth_core" / "assets" / "dna_depth_synthetic.safetensors"
CALIBRATION_SEED = 200_000
"""First seed of the calibration sequences: far from training (0...) and evaluation (100000...) seeds."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (e.g. runs/street/best.safetensors)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--sequences", type=int, default=2,
                        help="held-out street sequences for the scale of a checkpoint that is not metric")
    parser.add_argument("--recipe", default="",
                        help="the commands that made the checkpoint, recorded in the provenance")
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint, with_pose=True)
    metadata = checkpoint.metadata
    if metadata.metric:
        true_motion = metadata.provenance.get("config", {}).get("true_motion", {})
        how = ("speed supervision in metres" if not (true_motion.get("warp") or true_motion.get("pose_weight"))
               else "warped with it and the pose network supervised on it, metres")
        scale, scale_source = 1.0, f"true camera motion of the synthetic scenes ({how})"
        scale_record = f"metric from training ({how}): depth_scale {metadata.depth_scale:g} kept, no calibration"
        print("checkpoint is metric already: depth_scale stays", metadata.depth_scale)
    else:
        samples = SyntheticTestSet("street", args.sequences, CALIBRATION_SEED, metadata.height, metadata.width, 30)
        estimator = DepthEstimator(checkpoint.depth_net, metadata, device="cpu")
        result = evaluate_predictions(estimator_predictor(estimator), samples, SYNTHETIC_PROTOCOL, num_examples=0)
        scale, spread = result.scale_median, result.scale_std_relative
        print(f"scale calibration: factor {scale:.4f} (relative std {spread:.3f}) over {len(result.per_image)} frames")
        print(result.summary("median-scaled"))
        scale_source = "synthetic ground truth (median scaling)"
        scale_record = (f"depth_scale = median of per-image median-scaling factors ({scale:.4f}, relative std "
                        f"{spread:.3f}) on {args.sequences} held-out synthetic street sequences "
                        f"(seeds {CALIBRATION_SEED}+)")
    provenance = {
        "trained_on": f"synthetic scenes generated by dna_depth_core.data.synthetic (no real images): "
                      f"{metadata.provenance.get('dataset', 'see training')}",
        "purpose": "out-of-the-box demo weights; fine-tune on your own bag or train on KITTI for real cameras",
        "recipe": args.recipe or "not recorded",
        "training": metadata.provenance,
        "scale_source": scale_source,
        "scale_calibration": scale_record,
        "packaged_from": str(args.checkpoint),
    }
    # Keep the record of the weights training started from.
    init = metadata.provenance.get("init_checkpoint")
    if init is not None and Path(init).exists():
        provenance["init_checkpoint_provenance"] = read_metadata(init).provenance
    shipped = dataclasses.replace(
        metadata, depth_scale=metadata.depth_scale * scale, metric=True, provenance=provenance
    )
    save_checkpoint(args.output, checkpoint.depth_net, shipped, checkpoint.pose_net, storage_dtype=torch.float16)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
