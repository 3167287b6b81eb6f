"""``dna-depth info``: what a checkpoint holds (architecture, input size, frame preparation, depth range, sizes)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path, PurePath
from typing import Any

from torch import nn

from dna_depth_core.checkpoint import Checkpoint, load_checkpoint, read_metadata
from dna_depth_core.data.camera.preparation import ASPECT_TOLERANCE
from dna_depth_core.inference.precision import PrecisionRecord, read_checkpoint_precision, weights_fingerprint


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show a checkpoint's architecture, input size, depth range and parameter counts",
        description=(
            "Print what a DNA-Depth checkpoint (.safetensors) holds: encoder, network input size, "
            "input normalisation, how its training frames were prepared from camera images (the depth node "
            "prepares camera frames the same way), the depth range its disparities map to, whether depth is metric, "
            "whether a pose network is stored, what 'dna-depth calibrate-precision' measured (the reduced "
            "precisions that met the accuracy budget, which precision 'auto' runs), a short summary of where the "
            "weights came from, and parameter counts. Loading the networks also checks that the file is complete."
        ),
    )
    parser.add_argument("checkpoint", type=Path,
                        help="checkpoint file written by 'dna-depth train', 'dna-depth finetune-bag' or "
                             "'dna-depth import-weights'")
    parser.add_argument("--verbose", action="store_true",
                        help="print the whole provenance record (training configuration, file paths) instead of "
                             "a summary")
    parser.add_argument("--json", action="store_true", help="print one JSON object (everything) instead of text")
    parser.set_defaults(handler=run)


def count_parameters(module: nn.Module | None) -> int:
    """Number of learnable scalars (BatchNorm running statistics are not counted)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def summarize(checkpoint: Checkpoint, record: PrecisionRecord | None = None) -> dict[str, Any]:
    """Metadata, parameter counts and the precision record (``None`` without one), as plain JSON-able data.

    The record's ``for_these_weights`` says whether it was measured for this checkpoint's
    weights (``auto`` ignores it otherwise); ``fastest_within_budget`` maps each device type
    to the entry ``auto`` prefers where every backend can run (``None``: nothing met the budget).
    """
    net = checkpoint.depth_net
    precision = None
    if record is not None:
        devices = sorted({entry.device for entry in record.configurations})
        fastest = {device: record.fastest_within_budget(device, lambda precision, backend: True) for device in devices}
        precision = {**dataclasses.asdict(record), "for_these_weights": record.weights == weights_fingerprint(net),
                     "fastest_within_budget": {device: entry and dataclasses.asdict(entry)
                                               for device, entry in fastest.items()}}
    return {
        "metadata": dataclasses.asdict(checkpoint.metadata),
        "precision": precision,
        "parameters": {
            "encoder": count_parameters(net.encoder),
            "decoder": count_parameters(net.decoder),
            "total": count_parameters(net),
            "pose": count_parameters(checkpoint.pose_net),
        },
    }


def _millions(count: int) -> str:
    return f"{count:,} ({count / 1e6:.3f} M)"


SUMMARY_WIDTH = 150
"""Characters of one provenance entry in the summary; --verbose shows all of it."""

SUMMARY_FIRST = ("tool", "dataset", "step", "epochs_completed", "epoch", "validation", "created")
"""Entries of a nested provenance record that its summary starts with, when present."""


def _looks_like_path(text: str) -> bool:
    return "/" in text and " " not in text or text.startswith(("/", "~")) or (len(text) > 2 and text[1:3] == ":\\")


def _short(value: Any, nested: bool = False) -> str | None:
    """One line for a provenance value: paths as their file names, floats to 4 digits,
    dicts as their scalar entries (one level), lists as their length; ``None`` to leave out."""
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, str):
        return PurePath(value).name if _looks_like_path(value) else value
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, list):
        items = [_short(item, nested=True) for item in value]
        if all(isinstance(item, (str, int, float)) for item in value) and len(value) <= 4:
            return ", ".join(item for item in items if item)
        return f"{len(value)} entries"
    if nested or not isinstance(value, dict):
        return None
    if set(value) == {"criterion", "value"}:
        return f"{value['criterion']} {_short(value['value'])}"
    parts = []
    first = [key for key in SUMMARY_FIRST if key in value]
    for key, item in [(key, value[key]) for key in first] + [(k, v) for k, v in value.items() if k not in first]:
        if key == "validation" and isinstance(item, dict):
            text = _short(item)
        else:
            text = _short(item, nested=True)
        if text is not None:
            parts.append(f"{key} {text}")
    return ", ".join(parts) or None


def provenance_lines(provenance: dict[str, Any], verbose: bool = False) -> list[str]:
    """The provenance record as indented lines: a summary (no configuration, file names
    instead of paths), or with ``verbose`` every entry, nested ones as JSON."""
    if not provenance:
        return ["  (none recorded)"]
    lines = []
    for key, value in provenance.items():
        if verbose:
            text = json.dumps(value, indent=2).replace("\n", "\n    ") if isinstance(value, (dict, list)) else value
        else:
            text = _short(value)
            if text is not None and len(text) > SUMMARY_WIDTH:
                text = text[: SUMMARY_WIDTH - 4].rstrip(" ,") + " ..."
        if text is not None:
            lines.append(f"  {key}: {text}")
    if not verbose:
        lines.append("  (--verbose for the whole record: training configuration, file paths)")
    return lines


def preparation_lines(preparation: dict[str, Any], height: int, width: int) -> list[str]:
    """The checkpoint's :class:`~dna_depth_core.data.camera.FramePreparation` record as two
    lines: how camera images became its ``width x height`` training frames, and the training
    camera's intrinsics normalised by that size."""
    images = "rectified (raw images undistorted first)" if preparation["rectified"] else "raw images, not rectified"
    if preparation["crop"] == "centre":
        fitting = f"centre crop to the input's aspect ratio (no stretching), resize to {width} x {height}"
    else:
        fitting = (f"resize to {width} x {height} whole when within {ASPECT_TOLERANCE:.0%} of its aspect ratio, "
                   "else centre crop first")
    return [
        f"preparation     {images}; {fitting}",
        f"                training camera fx/W {preparation['fx']:.4g}, fy/H {preparation['fy']:.4g}, "
        f"cx/W {preparation['cx']:.4g}, cy/H {preparation['cy']:.4g}",
    ]


def precision_lines(precision: dict[str, Any] | None) -> list[str]:
    """The precision record (:func:`summarize`'s ``"precision"``) as lines: per device, what met the budget
    and the fastest of those, which precision ``auto`` runs when that backend is installed."""
    if precision is None:
        return ["precision       no record: 'auto' runs float32 (measure the reduced precisions with "
                "'dna-depth calibrate-precision CHECKPOINT -o OUTPUT')"]
    if not precision["for_these_weights"]:
        return ["precision       the record was measured for other weights: 'auto' ignores it and runs float32 "
                "(measure again with 'dna-depth calibrate-precision')"]
    lines = []
    for device, fastest in precision["fastest_within_budget"].items():
        entries = sorted((entry for entry in precision["configurations"] if entry["device"] == device),
                         key=lambda entry: entry["latency_ms"])
        measured = ", ".join(
            f"{entry['precision']} {entry['backend']} {entry['latency_ms']:.1f} ms "
            f"({'meets' if entry['met'] else 'fails'}, p99 {entry['pixel_change_p99']:.2%})" for entry in entries
        )
        choice = (f"fastest within the accuracy budget {fastest['precision']} on {fastest['backend']} ('auto' "
                  "runs it where that can run)" if fastest else "nothing met the budget: 'auto' runs float32")
        lines.append(f"{'precision' if not lines else '':16s}{device} at {precision['width']}x{precision['height']}: "
                     f"{choice}; measured {measured}")
    lines.append(f"                measured on {precision['machine']}; {precision['test_data']}")
    return lines


def format_summary(path: Path, summary: dict[str, Any], verbose: bool = False) -> str:
    """Human-readable text of :func:`summarize`'s result (the provenance summarised unless ``verbose``)."""
    meta, counts = summary["metadata"], summary["parameters"]
    network = meta["network"]
    if network["input_mean"] is None and network["input_std"] is None:
        normalisation = "none (network takes RGB in [0, 1])"
    else:
        normalisation = f"mean {network['input_mean']}, std {network['input_std']} (on RGB in [0, 1])"
    source = meta["provenance"].get("scale_source") or "not recorded"
    if meta["metric"]:
        unit = meta["depth_scale"]
        scale = (f"metric: {unit:.4g} m per network unit (source: {source}), depth "
                 f"{meta['min_depth'] * unit:.3g} to {meta['max_depth'] * unit:.4g} m")
    else:
        scale = f"relative: depth is known only up to scale (source: {source}; align it, e.g. by median scaling)"
    lines = [
        f"checkpoint      {path}",
        f"encoder         {network['encoder']} (decoder width {network['decoder_channels']})",
        f"input size      {meta['width']} x {meta['height']} (width x height)",
        f"normalisation   {normalisation}",
        *preparation_lines(meta["preparation"], meta["height"], meta["width"]),
        f"depth range     {meta['min_depth']:g} to {meta['max_depth']:g} network units "
        "(disparity 1 -> min, 0 -> max)",
        f"depth scale     {scale}",
        f"pose network    {meta['pose_encoder'] or 'not stored'}",
        f"parameters      encoder {_millions(counts['encoder'])}, decoder {_millions(counts['decoder'])}",
        f"                total   {_millions(counts['total'])}",
    ]
    if meta["pose_encoder"]:
        lines.append(f"                pose    {_millions(counts['pose'])}")
    lines += precision_lines(summary["precision"])
    lines.append("provenance")
    lines += provenance_lines(meta["provenance"], verbose)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    metadata = read_metadata(args.checkpoint)
    record, _ = read_checkpoint_precision(args.checkpoint)
    summary = summarize(load_checkpoint(args.checkpoint, with_pose=metadata.pose_encoder is not None), record)
    print(json.dumps(summary, indent=2) if args.json else format_summary(args.checkpoint, summary, args.verbose))
    return 0
