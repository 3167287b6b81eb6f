"""Shared test set-up: isolate DDS traffic per test run and keep torch small on 2 cores."""

import os
import random
import threading

# Before anything imports rclpy: a random domain and localhost-only discovery so parallel
# runs on one machine (and other ROS graphs) never see each other's topics.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def seeded():
    """Seed torch, numpy and random for a deterministic test."""
    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def ros():
    """A fresh rclpy context and a single-threaded executor spinning it on a thread, per
    test module: ``(context, executor)``; tests add and remove their nodes."""
    import rclpy  # here: collecting the suite must not need ROS
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield context, executor
    executor.shutdown()
    rclpy.shutdown(context=context)
    spinner.join(timeout=10)
