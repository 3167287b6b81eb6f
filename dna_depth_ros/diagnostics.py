"""Counters and timings of the depth node, reported on ``/diagnostics``, and throttled logging."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from .bad_input import BAD_INPUT_KINDS

COUNTERS = (
    "received",
    "processed",
    "dropped",
    "skipped_no_subscribers",
    "processing_errors",
    "missed",
    "lost_in_transport",
) + tuple(f"bad_input.{kind}" for kind in BAD_INPUT_KINDS)
"""Every counter, reported as ``frames_<name>`` / ``bad_input.<kind>`` diagnostics values."""

LOSS_COUNTERS = ("missed", "lost_in_transport")
"""Counters of frames that a publisher sent but the node never got (see ``docs/ros_node.md``)."""

RATE_WINDOW_S = 5.0
"""Rates are measured over the frames of the last this many seconds (steady clock)."""

CLOCK_OFFSET_WARN_S = 1.0
"""Input age (header stamp to receipt, node clock) beyond which diagnostics warn that the
stamps are on another clock, e.g. a bag replayed without ``use_sim_time``."""


@dataclass(frozen=True)
class FrameTiming:
    """Where the time of one processed frame went, seconds.

    Attributes:
        processing: from taking the frame off the hand-over slot to the last publish.
        forward: the network forward pass alone (part of ``processing``).
        latency: receipt in the subscription callback to the last publish (steady clock):
            what the node adds, whatever clock stamped the frame.
        input_age: header stamp to receipt, on the node's clock (sim time with
            ``use_sim_time``); ``None`` for unstamped input or before the clock is set.
        finished: steady-clock time (``time.monotonic``) of the last publish.
        overhead_cpu: CPU time the inference thread spent on the frame outside the forward
            pass (``time.thread_time``; OpenCV's helper threads not included): the node's
            own work as a loaded machine's wall clock cannot show it.
    """

    processing: float
    forward: float
    latency: float
    input_age: float | None
    finished: float
    overhead_cpu: float | None = None

    @property
    def overhead(self) -> float:
        """Everything the node spends on a frame besides the forward pass, seconds."""
        return self.processing - self.forward


@dataclass(frozen=True)
class Problem:
    """Something diagnostics must report: ``level`` is a ``DiagnosticStatus`` level."""

    level: bytes
    message: str


@dataclass(frozen=True)
class StatisticsSnapshot:
    """Counters since start, the recent frames' timings and receipt times, and when it was taken.

    Attributes:
        counts: every counter of :data:`COUNTERS`.
        timings: the most recent processed frames.
        receipts: steady-clock times of the most recent received frames.
        wall_time: steady-clock time of the snapshot.
    """

    counts: dict[str, int]
    timings: tuple[FrameTiming, ...]
    receipts: tuple[float, ...]
    wall_time: float

    @property
    def bad_inputs(self) -> int:
        return sum(value for key, value in self.counts.items() if key.startswith("bad_input."))

    @property
    def lost(self) -> int:
        return sum(self.counts[name] for name in LOSS_COUNTERS)


class NodeStatistics:
    """Thread-safe counters (see :data:`COUNTERS`), recent frame timings and receipt times.

    Args:
        window: number of most recent frames whose timings and receipt times are kept.
    """

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._timings: deque[FrameTiming] = deque(maxlen=window)
        self._receipts: deque[float] = deque(maxlen=window)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (one of :data:`COUNTERS`)."""
        if name not in self._counts:
            raise ValueError(f"unknown counter {name!r}; expected one of {COUNTERS}")
        with self._lock:
            self._counts[name] += amount

    def add_receipt(self, received: float) -> None:
        """Record a frame received at steady-clock time ``received`` (counts ``received``)."""
        with self._lock:
            self._counts["received"] += 1
            self._receipts.append(received)

    def add_frame(self, timing: FrameTiming) -> None:
        """Record a processed frame."""
        with self._lock:
            self._counts["processed"] += 1
            self._timings.append(timing)

    def snapshot(self) -> StatisticsSnapshot:
        with self._lock:
            return StatisticsSnapshot(
                dict(self._counts), tuple(self._timings), tuple(self._receipts), time.monotonic()
            )


def _percentiles_ms(values: list[float]) -> tuple[str, str]:
    if not values:
        return "", ""
    p50, p95 = np.percentile(np.asarray(values) * 1000.0, [50, 95])
    return f"{p50:.2f}", f"{p95:.2f}"


def event_rate(times: list[float], now: float, window: float = RATE_WINDOW_S) -> float:
    """Events per second over those of ``times`` (steady-clock seconds) in the last
    ``window`` seconds before ``now``: ``(n - 1) / span``, 0 for fewer than two."""
    recent = [t for t in times if now - window <= t <= now]
    if len(recent) < 2 or recent[-1] <= recent[0]:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])


def diagnostic_status(
    current: StatisticsSnapshot,
    previous: StatisticsSnapshot,
    name: str,
    hardware_id: str,
    notes: dict[str, str],
    problems: Sequence[Problem] = (),
) -> DiagnosticStatus:
    """One ``DiagnosticStatus`` summarising the node.

    Values: every counter (``frames_*``, ``bad_input.*``); ``rate_hz`` (processed frames)
    and ``input_rate_hz`` (received frames) over the last :data:`RATE_WINDOW_S` seconds;
    p50/p95 over the recent frames of ``latency_ms`` (receipt to last publish),
    ``forward_ms``, ``overhead_ms`` (everything but the forward pass), ``overhead_cpu_ms``
    (its CPU time in the inference thread) and ``input_age_ms``
    (stamp to receipt, node clock); ``overhead_ratio`` (overhead p50 / forward p50); then
    ``notes``.

    Level and message: the worst of ``problems`` (transport), frames lost, bad inputs or
    processing errors since ``previous`` (WARN), and input stamps more than
    :data:`CLOCK_OFFSET_WARN_S` off the node clock (WARN); all of them joined with ``; ``.
    OK otherwise, with the rate and latency, "idle" or "waiting for images".
    """
    elapsed = max(current.wall_time - previous.wall_time, 1e-9)
    timings = current.timings
    rate = event_rate([t.finished for t in timings], current.wall_time)
    input_rate = event_rate(list(current.receipts), current.wall_time)
    values = [
        KeyValue(key=f"frames_{key}" if "." not in key else key, value=str(value))
        for key, value in current.counts.items()
    ]
    values += [KeyValue(key="rate_hz", value=f"{rate:.2f}"), KeyValue(key="input_rate_hz", value=f"{input_rate:.2f}")]
    series = {
        "latency_ms": [t.latency for t in timings],
        "forward_ms": [t.forward for t in timings],
        "overhead_ms": [t.overhead for t in timings],
        "overhead_cpu_ms": [t.overhead_cpu for t in timings if t.overhead_cpu is not None],
        "input_age_ms": [t.input_age for t in timings if t.input_age is not None],
    }
    for key, samples in series.items():
        p50, p95 = _percentiles_ms(samples)
        values += [KeyValue(key=f"{key}_p50", value=p50), KeyValue(key=f"{key}_p95", value=p95)]
    if timings:
        ratio = np.median(series["overhead_ms"]) / max(np.median(series["forward_ms"]), 1e-9)
        values.append(KeyValue(key="overhead_ratio", value=f"{ratio:.4f}"))
    values += [KeyValue(key=key, value=value) for key, value in notes.items()]

    problems = list(problems)
    lost = current.lost - previous.lost
    if lost:
        problems.append(
            Problem(DiagnosticStatus.WARN, f"{lost} frame(s) published but never received in the last {elapsed:.1f} s")
        )
    new_problems = (current.bad_inputs - previous.bad_inputs) + (
        current.counts["processing_errors"] - previous.counts["processing_errors"]
    )
    if new_problems:
        problems.append(
            Problem(DiagnosticStatus.WARN, f"{new_problems} bad input(s) or error(s) in the last {elapsed:.1f} s")
        )
    if series["input_age_ms"]:
        age = float(np.median(series["input_age_ms"]))
        if abs(age) > CLOCK_OFFSET_WARN_S:
            problems.append(
                Problem(
                    DiagnosticStatus.WARN,
                    f"input stamps are {abs(age):.1f} s {'behind' if age > 0 else 'ahead of'} the node clock "
                    "(a bag replayed without --clock and use_sim_time, or a camera on another clock); "
                    "outputs keep the input stamps",
                )
            )
    if problems:
        level = max(problem.level for problem in problems)
        message = "; ".join(problem.message for problem in problems)
    elif rate > 0:
        latency_p50 = _percentiles_ms(series["latency_ms"])[0]
        level, message = DiagnosticStatus.OK, f"{rate:.1f} Hz, latency p50 {latency_p50} ms"
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
