"""``dna-depth info``: what a checkpoint holds (architecture, input size, depth range, sizes)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from dna_depth_core.checkpoint import Checkpoint, load_checkpoint, read_metadata


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a checkpoint's architecture, input size, depth range and parameter counts",
        description=(
            "Print what a DNA-Depth checkpoint (.safetensors) holds: encoder, network input size, "
            "input normalisation, the depth range its disparities map to, whether depth is metric, "
            "whether a pose network is stored, where the weights came from, and parameter counts. "
            "Loading the networks also checks that the file is complete."
        ),
    )
    parser.add_argument("checkpoint", type=Path,
                        help="checkpoint file written by 'dna-depth train' or 'dna-depth import-weights'")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=run)


def count_parameters(module: nn.Module | None) -> int:
    """Number of learnable scalars (BatchNorm running statistics are not counted)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def summarize(checkpoint: Checkpoint) -> dict[str, Any]:
    """Metadata plus parameter counts, as plain JSON-able data."""
    net = checkpoint.depth_net
    return {
        "metadata": dataclasses.asdict(checkpoint.metadata),
        "parameters": {
            "encoder": count_parameters(net.encoder),
            "decoder": count_parameters(net.decoder),
            "total": count_parameters(net),
            "pose": count_parameters(checkpoint.pose_net),
        },
    }


def _millions(count: int) -> str:
    return f"{count:,} ({count / 1e6:.3f} M)"


def format_summary(path: Path, summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`summarize`'s result."""
    meta, counts = summary["metadata"], summary["parameters"]
    network = meta["network"]
    if network["input_mean"] is None and network["input_std"] is None:
        normalisation = "none (network takes RGB in [0, 1])"
    else:
        normalisation = f"mean {network['input_mean']}, std {network['input_std']} (on RGB in [0, 1])"
    if meta["metric"]:
        scale = f"metric: depth x {meta['depth_scale']:g} is in metres"
    else:
        scale = "relative: depth is known only up to scale (align it, e.g. by median scaling)"
    lines = [
        f"checkpoint      {path}",
        f"encoder         {network['encoder']} (decoder width {network['decoder_channels']})",
        f"input size      {meta['width']} x {meta['height']} (width x height)",
        f"normalisation   {normalisation}",
        f"depth range     {meta['min_depth']:g} to {meta['max_depth']:g} network units "
        "(disparity 1 -> min, 0 -> max)",
        f"depth scale     {scale}",
        f"pose network    {meta['pose_encoder'] or 'not stored'}",
        f"parameters      encoder {_millions(counts['encoder'])}, decoder {_millions(counts['decoder'])}",
        f"                total   {_millions(counts['total'])}",
    ]
    if meta["pose_encoder"]:
        lines.append(f"                pose    {_millions(counts['pose'])}")
    provenance = meta["provenance"] or {"(none recorded)": ""}
    lines.append("provenance")
    for key, value in provenance.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    metadata = read_metadata(args.checkpoint)
    summary = summarize(load_checkpoint(args.checkpoint, with_pose=metadata.pose_encoder is not None))
    print(json.dumps(summary, indent=2) if args.json else format_summary(args.checkpoint, summary))
    return 0
