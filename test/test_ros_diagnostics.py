"""The depth node's diagnostics summary on made-up statistics: values, rates, levels, messages."""

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from dna_depth_ros.diagnostics import (
    COUNTERS,
    RATE_WINDOW_S,
    FrameTiming,
    NodeStatistics,
    Problem,
    StatisticsSnapshot,
    diagnostic_status,
    event_rate,
)

pytestmark = pytest.mark.ros

NAME = "/cam/dna_depth: depth"


def snapshot(wall_time, counts=None, timings=(), receipts=()):
    full = {name: 0 for name in COUNTERS}
    full.update(counts or {})
    return StatisticsSnapshot(full, tuple(timings), tuple(receipts), wall_time)


def frames(count, rate, end, age=0.020):
    """``count`` frames at ``rate`` Hz, the last one published at steady time ``end``."""
    ends = [end - (count - 1 - index) / rate for index in range(count)]
    return [FrameTiming(processing=0.110, forward=0.100, latency=0.150, input_age=age, finished=t) for t in ends]


def status_of(current, previous, problems=()):
    status = diagnostic_status(current, previous, NAME, "dna_depth", {"device": "cpu"}, problems)
    return status, {pair.key: pair.value for pair in status.values}


def test_values_and_rates_come_from_the_recent_frames_on_the_steady_clock():
    timings = frames(60, rate=10.0, end=1000.0)
    receipts = [t.finished - 0.15 for t in timings]
    counts = {"received": 60, "processed": 60}
    # Read right after the last frame, long after the previous diagnostics: still 10 Hz
    # (a replay burst once reported 0.00 here), latency from receipt, not from the stamp.
    status, values = status_of(snapshot(1000.01, counts, timings, receipts), snapshot(0.0))
    assert status.level == DiagnosticStatus.OK and status.message == "10.0 Hz, latency p50 150.00 ms"
    assert values["rate_hz"] == "10.00" and values["input_rate_hz"] == "10.00"
    assert values["frames_processed"] == "60" and values["frames_missed"] == "0"
    assert values["latency_ms_p50"] == "150.00" and values["input_age_ms_p50"] == "20.00"
    assert values["forward_ms_p50"] == "100.00" and values["overhead_ms_p50"] == "10.00"
    assert values["overhead_ratio"] == "0.1000" and values["device"] == "cpu"
    # Once no frame came for the rate window, the rate says so.
    later = snapshot(1000.0 + RATE_WINDOW_S + 0.1, counts, timings, receipts)
    status, values = status_of(later, snapshot(1000.01, counts, timings, receipts))
    assert values["rate_hz"] == "0.00" and status.message == "waiting for images"


def test_event_rate_needs_two_events_in_the_window():
    assert event_rate([], 10.0) == 0.0
    assert event_rate([9.5], 10.0) == 0.0
    assert event_rate([1.0, 9.0, 9.5, 10.0], 10.0, window=2.0) == pytest.approx(2.0)


def test_new_loss_bad_input_and_problems_warn_together():
    previous = snapshot(10.0)
    counts = {"received": 3, "missed": 2, "lost_in_transport": 1, "bad_input.empty_image": 1}
    transport = Problem(DiagnosticStatus.ERROR, "/cam/image: 1 publisher(s) with incompatible QoS")
    status, values = status_of(snapshot(11.0, counts), previous, [transport])
    assert status.level == DiagnosticStatus.ERROR
    assert status.message.split("; ") == [
        "/cam/image: 1 publisher(s) with incompatible QoS",
        "3 frame(s) published but never received in the last 1.0 s",
        "1 bad input(s) or error(s) in the last 1.0 s",
    ]
    assert values["frames_missed"] == "2" and values["frames_lost_in_transport"] == "1"
    # Nothing new since: OK again.
    assert status_of(snapshot(12.0, counts), snapshot(11.0, counts))[0].level == DiagnosticStatus.OK


@pytest.mark.parametrize("age, words", [(3.0e7, "behind"), (-5.0, "ahead of")])
def test_stamps_on_another_clock_warn_but_latency_stays_the_nodes(age, words):
    timings = frames(20, rate=10.0, end=50.0, age=age)
    status, values = status_of(snapshot(50.0, {"processed": 20}, timings), snapshot(0.0))
    assert status.level == DiagnosticStatus.WARN and f"s {words} the node clock" in status.message
    assert values["latency_ms_p50"] == "150.00"


def test_node_statistics_counts_receipts_and_amounts():
    statistics = NodeStatistics(window=3)
    for received in (1.0, 2.0, 3.0, 4.0):
        statistics.add_receipt(received)
    statistics.count("missed", 5)
    current = statistics.snapshot()
    assert current.counts["received"] == 4 and current.receipts == (2.0, 3.0, 4.0) and current.lost == 5
    with pytest.raises(ValueError, match="unknown counter"):
        statistics.count("nonsense")


def test_sequence_gaps_of_each_publisher_count_as_missed_frames():
    from dna_depth_ros.transport import TransportMonitor

    counted = []
    monitor = TransportMonitor(node=None, log_warning=print, count=lambda name, amount: counted.append((name, amount)))

    def frame(publisher, sequence):
        gid = {"implementation_identifier": "rmw_fastrtps_cpp", "data": bytes([publisher]) * 16}
        monitor.on_frame({"publication_sequence_number": sequence, "publisher_gid": gid}, received=0.0)

    for sequence in (7, 8, 11):  # the first one seen starts the count: 9 and 10 are missing
        frame(1, sequence)
    frame(2, 1)  # another publisher (or the camera restarted): its own numbering
    frame(2, 3)
    frame(1, 10)  # late / reordered: not a gap
    frame(1, 12)
    monitor.on_frame({"publication_sequence_number": None, "publisher_gid": None}, received=0.0)  # unnumbered
    assert counted == [("missed", 2), ("missed", 1)]
