"""The fine-tune's report: validation frames' depth before and after, loss curves, report.json.

:func:`write_depth_panel` draws the depth of the starting and the fine-tuned model (colour
bars in metres, or relative units) beside the bag's recorded depth when it has a depth
topic; :func:`write_loss_curves` draws the trainer's history (training losses per step,
validation per epoch and at the end); :func:`write_report` writes ``report.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from torch.utils.data import Dataset

from ..geometry import disp_to_depth
from ..paths import atomic_write
from .run_folder import TrainingSummary

LOSS_TERMS = ("loss", "photometric", "smoothness", "speed", "ground_plane")
"""Training losses of the trainer's history that get a panel when present."""


@dataclass
class PanelModel:
    """One depth column of the fine-tune report: a depth network and its unit.

    Attributes:
        title: column title.
        depth_net: the network.
        metres_per_unit: metres per network depth unit on these bags; ``None`` when the
            model's depth is relative (shown in its own units).
    """

    title: str
    depth_net: torch.nn.Module
    metres_per_unit: float | None


@torch.no_grad()
def _depth(model: PanelModel, image: torch.Tensor, depth_range: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` depth of ``model`` on one ``(3, H, W)`` image, in metres or network units."""
    model.depth_net.eval()
    device = next(model.depth_net.parameters()).device
    disparity = model.depth_net(image[None].to(device), multiscale=False)[0, 0].float().cpu()
    return disp_to_depth(disparity, *depth_range).numpy() * (model.metres_per_unit or 1.0)


def _colour_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """2nd to 98th percentile of the finite positive values of ``maps``, never empty."""
    values = np.concatenate([np.ones(0), *(m[np.isfinite(m) & (m > 0)] for m in maps)])
    if values.size == 0:
        values = np.ones(1)
    low, high = np.percentile(values, [2, 98])
    return float(low), float(max(high, low * 1.05))


def _show_depth(figure: Figure, axis, depth: np.ndarray, colour_range: tuple[float, float], metric: bool) -> None:
    """``depth`` on ``axis`` (near = bright, log scale) with a colour bar in metres or relative units."""
    colour_map = colormaps["magma_r"].with_extremes(bad="#9a9a9a")  # grey: no ground truth (sky)
    image = axis.imshow(np.ma.masked_invalid(depth), cmap=colour_map, norm=LogNorm(*colour_range, clip=True),
                        interpolation="nearest")
    bar = figure.colorbar(image, ax=axis, fraction=0.05, pad=0.02)
    bar.set_label("depth (m)" if metric else "depth (relative units)")
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())


def write_depth_panel(
    path: Path,
    dataset: Dataset,
    models: list[PanelModel],
    depth_range: tuple[float, float],
    ground_truth: list[np.ndarray | None] | None = None,
    count: int = 4,
) -> None:
    """PNG of ``count`` evenly spaced samples (see :func:`panel_indices`): the target frame,
    its ground truth when given, and each model's depth, coloured on a log scale (near =
    bright) with a colour bar in metres, or in the model's own units for a relative one.
    In a row, ground truth and metric models share one colour range (the ground truth's
    when there is one), so colours compare.

    Args:
        path: the PNG to write.
        dataset: samples with ``frames`` ``(3, 3, H, W)``.
        models: the depth columns (before and after fine-tuning).
        depth_range: ``(min_depth, max_depth)`` of the networks' disparity, network units.
        ground_truth: per sample of :func:`panel_indices`, float ``(H, W)`` metres (NaN
            where unknown) or ``None``; ``None`` for no ground-truth column.
    """
    indices = panel_indices(dataset, count)
    with_truth = ground_truth is not None and any(depth is not None for depth in ground_truth)
    height, width = dataset[0]["frames"].shape[-2:]
    columns = 1 + int(with_truth) + len(models)
    figure = Figure(figsize=(3.6 * columns, (3.2 * height / width + 0.5) * len(indices)))
    axes = figure.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        image = dataset[int(index)]["frames"][1]
        truth = ground_truth[row] if with_truth else None
        depths = [_depth(model, image, depth_range) for model in models]
        metric_maps = [depth for depth, model in zip(depths, models) if model.metres_per_unit is not None]
        shared = _colour_range([truth] if truth is not None else metric_maps)
        cells = [("input", None, None)]
        if with_truth:
            cells.append(("ground truth", truth, True))
        cells += [(model.title, depth, model.metres_per_unit is not None) for model, depth in zip(models, depths)]
        for column, (title, depth, metric) in enumerate(cells):
            axis = axes[row, column]
            axis.set_axis_off()
            if row == 0:
                axis.set_title(title)
            if column == 0:
                axis.imshow(image.permute(1, 2, 0).numpy())
            elif depth is None:
                axis.text(0.5, 0.5, "no ground truth\nfor this frame", ha="center", va="center",
                          transform=axis.transAxes)
            else:
                _show_depth(figure, axis, depth, shared if metric else _colour_range([depth]), metric)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def panel_indices(dataset: Dataset, count: int = 4) -> list[int]:
    """The samples the depth panel shows: ``count`` evenly spaced ones."""
    return [int(i) for i in np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))]


MARKERS_UP_TO = 60
"""Curves with at most this many points are drawn with a marker per point."""


def write_loss_curves(
    path: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    photometric_before_after: tuple[float, float, int] | None = None,
) -> None:
    """PNG with one panel per loss term (training per logged step, validation per epoch);
    short curves get a marker per point, so one or two steps still show.

    Args:
        photometric_before_after: ``(before, after, last step)``: the validation
            photometric error of the starting and the fine-tuned model, drawn at step 0 and
            at the last step of the photometric panel.
    """
    names = sorted({tag.split("/", 1)[1] for tag in curves} | ({"photometric"} if photometric_before_after else set()))
    figure = Figure(figsize=(4 * max(len(names), 1), 3))
    axes = figure.subplots(1, max(len(names), 1), squeeze=False)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no losses were logged", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
    for axis, name in zip(axes[0], names):
        for split, line in (("train", "-"), ("val", "--")):
            if f"{split}/{name}" in curves:
                steps, values = curves[f"{split}/{name}"]
                marker = "o" if len(steps) <= MARKERS_UP_TO else ""
                axis.plot(steps, values, marker + line, label=split, markersize=4)
        if name == "photometric" and photometric_before_after is not None:
            before, after, last_step = photometric_before_after
            axis.plot([0, last_step], [before, after], "s:", color="black", markersize=5,
                      label="validation, start and end")
        axis.set_title(name + (" (model units)" if name == "speed" else ""))
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = axis.get_xlim()
        if high - low < 2:  # a single step: room on both sides, integer ticks
            axis.set_xlim((low + high) / 2 - 1, (low + high) / 2 + 1)
        axis.legend(fontsize="small")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def history_curves(summary: TrainingSummary) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loss curves from the trainer's history of this run (or of its resumed part):
    ``"train/<term>"`` per step and ``"val/photometric"`` per validation, as
    ``(steps, values)`` arrays."""
    curves = {}
    steps = np.array([record["step"] for record in summary.history])
    for key in LOSS_TERMS:
        if summary.history and key in summary.history[0]:
            curves[f"train/{key}"] = (steps, np.array([record[key] for record in summary.history]))
    validated = [entry for entry in summary.validation if "photometric" in entry["metrics"]]
    if validated:
        curves["val/photometric"] = (np.array([entry["step"] for entry in validated]),
                                     np.array([entry["metrics"]["photometric"] for entry in validated]))
    return curves


def write_report(path: Path, report: dict[str, Any]) -> None:
    """``report.json``: ``report`` as indented JSON, written atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(report, indent=2)))
