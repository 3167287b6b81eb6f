"""Activation checkpointing: keep fewer activations for backward and recompute the rest.

With checkpointing on (:meth:`~dna_depth_core.networks.DepthNet.set_activation_checkpointing`,
:meth:`~dna_depth_core.networks.PoseNet.set_activation_checkpointing`), a checkpointed
segment keeps only its inputs in the forward pass and runs again in the backward pass to
rebuild its activations: less memory for one more forward pass. Gradients are unchanged
(the recomputation replays the segment's random draws, e.g. stochastic depth).

The one side effect of the second forward pass is a second update of batch-norm running
statistics; :func:`batch_norm_statistics_restored` around the backward pass undoes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_checkpointed(enabled: bool, function, *inputs):
    """``function(*inputs)``, as a checkpointed segment when ``enabled`` and gradients are recorded."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(function, *inputs, use_reentrant=False)
    return function(*inputs)


@contextmanager
def batch_norm_statistics_restored(*networks: nn.Module) -> Iterator[None]:
    """Give the networks' batch-norm running statistics back the values they had on entry.

    Wrap the backward pass of checkpointed networks in it: the forward pass has updated
    the statistics once, as without checkpointing, and the recomputation in backward
    would update them a second time.
    """
    buffers = [
        buffer
        for network in networks
        for module in network.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)
        if buffer is not None
    ]
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)
