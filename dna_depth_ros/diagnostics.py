"""Counters and timings of the depth node, reported on ``/diagnostics``, and throttled logging."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from .bad_input import BAD_INPUT_KINDS

COUNTERS = ("received", "processed", "dropped", "skipped_no_subscribers", "processing_errors") + tuple(
    f"bad_input.{kind}" for kind in BAD_INPUT_KINDS
)
"""Every counter, reported as ``frames_<name>`` / ``bad_input.<kind>`` diagnostics values."""


@dataclass(frozen=True)
class FrameTiming:
    """Where the time of one processed frame went, seconds.

    Attributes:
        processing: from taking the frame off the hand-over slot to the last publish.
        forward: the network forward pass alone (part of ``processing``).
        latency: input header stamp to the last publish (``None`` for unstamped input).
        input_age: input header stamp to the start of processing: transport and waiting
            (``None`` for unstamped input).
    """

    processing: float
    forward: float
    latency: float | None
    input_age: float | None

    @property
    def overhead(self) -> float:
        """Everything the node spends on a frame besides the forward pass, seconds."""
        return self.processing - self.forward


@dataclass(frozen=True)
class StatisticsSnapshot:
    """Counters since start and the timings of the most recent frames."""

    counts: dict[str, int]
    timings: tuple[FrameTiming, ...]
    wall_time: float

    @property
    def bad_inputs(self) -> int:
        return sum(value for key, value in self.counts.items() if key.startswith("bad_input."))


class NodeStatistics:
    """Thread-safe counters (see :data:`COUNTERS`) and a window of recent frame timings.

    Args:
        window: number of most recent frames whose timings are kept.
    """

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._timings: deque[FrameTiming] = deque(maxlen=window)

    def count(self, name: str) -> None:
        """Add one to the counter ``name`` (one of :data:`COUNTERS`)."""
        if name not in self._counts:
            raise ValueError(f"unknown counter {name!r}; expected one of {COUNTERS}")
        with self._lock:
            self._counts[name] += 1

    def add_frame(self, timing: FrameTiming) -> None:
        """Record a processed frame."""
        with self._lock:
            self._counts["processed"] += 1
            self._timings.append(timing)

    def snapshot(self) -> StatisticsSnapshot:
        with self._lock:
            return StatisticsSnapshot(dict(self._counts), tuple(self._timings), time.monotonic())


def _percentiles_ms(values: list[float]) -> tuple[str, str]:
    if not values:
        return "", ""
    p50, p95 = np.percentile(np.asarray(values) * 1000.0, [50, 95])
    return f"{p50:.2f}", f"{p95:.2f}"


def diagnostic_status(
    current: StatisticsSnapshot, previous: StatisticsSnapshot, name: str, hardware_id: str, notes: dict[str, str]
) -> DiagnosticStatus:
    """One ``DiagnosticStatus`` summarising the node.

    Values: every counter (``frames_*``, ``bad_input.*``), the processing rate since
    ``previous`` (``rate_hz``), p50/p95 over the recent frames of ``latency_ms`` (input
    stamp to publish), ``forward_ms``, ``overhead_ms`` (everything but the forward pass),
    ``input_age_ms``, ``overhead_ratio`` (overhead p50 / forward p50), then ``notes``.
    Level WARN when bad inputs or processing errors occurred since ``previous``.
    """
    elapsed = max(current.wall_time - previous.wall_time, 1e-9)
    rate = (current.counts["processed"] - previous.counts["processed"]) / elapsed
    values = [
        KeyValue(key=f"frames_{key}" if "." not in key else key, value=str(value))
        for key, value in current.counts.items()
    ]
    values.append(KeyValue(key="rate_hz", value=f"{rate:.2f}"))
    timings = current.timings
    series = {
        "latency_ms": [t.latency for t in timings if t.latency is not None],
        "forward_ms": [t.forward for t in timings],
        "overhead_ms": [t.overhead for t in timings],
        "input_age_ms": [t.input_age for t in timings if t.input_age is not None],
    }
    for key, samples in series.items():
        p50, p95 = _percentiles_ms(samples)
        values += [KeyValue(key=f"{key}_p50", value=p50), KeyValue(key=f"{key}_p95", value=p95)]
    if timings:
        ratio = np.median(series["overhead_ms"]) / max(np.median(series["forward_ms"]), 1e-9)
        values.append(KeyValue(key="overhead_ratio", value=f"{ratio:.4f}"))
    values += [KeyValue(key=key, value=value) for key, value in notes.items()]

    new_problems = (current.bad_inputs - previous.bad_inputs) + (
        current.counts["processing_errors"] - previous.counts["processing_errors"]
    )
    if new_problems:
        level, message = DiagnosticStatus.WARN, f"{new_problems} bad input(s) or error(s) in the last {elapsed:.1f} s"
    elif rate > 0:
        latency_p50 = _percentiles_ms(series["latency_ms"])[0]
        level, message = (
            DiagnosticStatus.OK,
            f"{rate:.1f} Hz" + (f", latency p50 {latency_p50} ms" if latency_p50 else ""),
        )
    elif current.counts["skipped_no_subscribers"] > previous.counts["skipped_no_subscribers"]:
        level, message = DiagnosticStatus.OK, "idle: no subscribers to any output"
    else:
        level, message = DiagnosticStatus.OK, "waiting for images"
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)


class ThrottledLog:
    """Logs at most one message per key and period, saying how many were held back.

    Args:
        log: called with the text, e.g. a ROS logger's ``error``.
        period: seconds between two messages of the same key.
    """

    def __init__(self, log: Callable[[str], object], period: float = 5.0) -> None:
        self._log = log
        self._period = period
        self._last: dict[str, float] = {}
        self._held_back: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -float("inf")) < self._period:
                self._held_back[key] += 1
                return
            held_back = self._held_back.pop(key, 0)
            self._last[key] = now
        suffix = f" ({held_back} similar message(s) suppressed)" if held_back else ""
        self._log(f"{message}{suffix}")
