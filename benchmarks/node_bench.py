"""What the depth node benchmarks share: a random-weight checkpoint, the node as its own
process with a parameters file, a spinning probe, and the Markdown table.

Used by ``node_latency.py`` and ``delivery.py`` (run from the repository root; Python puts
this folder on the path of a script it runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from rclpy.executors import SingleThreadedExecutor

from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
from dna_depth_core.networks import create_depth_net
from dna_depth_ros.probe import DepthNodeProbe

NODE_START_TIMEOUT_S = 180.0
"""How long the node process may take to come up: it imports torch and loads a network,
over a minute on a loaded 2-core machine."""


def random_checkpoint(directory: Path, height: int, width: int) -> Path:
    """A DNA-Depth-B0 with random weights (seed 0) at ``height x width``: speed does not
    depend on the weights, and the same weights keep the ONNX cache warm between runs."""
    path = directory / f"b0_random_{height}x{width}.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        save_checkpoint(path, create_depth_net("dna_depth_b0"), ModelMetadata(height=height, width=width))
    return path


def start_node(namespace: str, parameters: dict, directory: Path, threads: int) -> subprocess.Popen:
    """``python -m dna_depth_ros.depth_node`` in ``namespace`` with ``parameters`` (a nested
    dict, written as a parameters file) and ``threads`` torch/OpenMP threads, logging warnings only."""
    params_file = directory / f"{namespace.strip('/')}.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    command = [sys.executable, "-m", "dna_depth_ros.depth_node", "--ros-args", "-r", f"__ns:={namespace}"]
    command += ["--params-file", str(params_file), "--log-level", "warn"]
    return subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


def stop_node(node: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it; killed after 30 s."""
    node.send_signal(signal.SIGINT)
    try:
        node.wait(timeout=30)
    except subprocess.TimeoutExpired:
        node.kill()


@contextmanager
def running_node(
    namespace: str, parameters: dict, directory: Path, threads: int, context, **probe_options
) -> Iterator[tuple[subprocess.Popen, DepthNodeProbe]]:
    """The node process and a probe in its namespace spun on a thread, once the node has
    matched the probe's topics; both stopped on exit.

    Raises:
        RuntimeError: the node did not come up within :data:`NODE_START_TIMEOUT_S`.
    """
    node = start_node(namespace, parameters, directory, threads)
    executor = SingleThreadedExecutor(context=context)
    probe = DepthNodeProbe(namespace=namespace, context=context, **probe_options)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        if not probe.wait_for_node(timeout=NODE_START_TIMEOUT_S):
            raise RuntimeError(f"the depth node in {namespace} did not come up within {NODE_START_TIMEOUT_S:.0f} s")
        yield node, probe
    finally:
        stop_node(node)
        executor.shutdown()
        probe.destroy_node()


def machine_line() -> str:
    """``cpus N, load average a b c``: what the figures of a run on a shared machine depend on."""
    return f"cpus {os.cpu_count()}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"


def print_table(rows: list[dict[str, str]]) -> None:
    """Rows with the same keys as a Markdown table."""
    columns = list(rows[0])
    widths = [max(len(column), *(len(row[column]) for row in rows)) for column in columns]
    print("| " + " | ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        print("| " + " | ".join(row[column].ljust(width) for column, width in zip(columns, widths, strict=True)) + " |")
