"""The resume state of a training run: one file, written atomically, read without unpickling code.

``train_state.pt`` beside the run's checkpoints holds everything needed to continue a run
exactly where it stopped: network weights, optimiser, scheduler and gradient-scaler
state, epoch / batch / step counters, the best validation result so far, and the random
number generator states of every process (torch, CUDA, numpy, python, the augmentation
generator and the data loader's generator). Only tensors, numbers, strings and
containers are stored, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..paths import atomic_write

STATE_FILE_NAME = "train_state.pt"
"""Name of the resume state in the run folder."""

STATE_VERSION = 1
"""Layout version of the resume state; bumped when keys change meaning."""


def capture_rng_state(augment_generator: torch.Generator, loader_generator_state: torch.Tensor) -> dict[str, Any]:
    """This process's random number generator states, as plain tensors and numbers.

    Args:
        augment_generator: the CPU generator augmentation draws from.
        loader_generator_state: state of the data loader's generator to restore (the one
            at the start of the current epoch, so a resumed epoch seeds its workers alike).
    """
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
        "augment": augment_generator.get_state(),
        "loader": loader_generator_state.clone(),
    }


def restore_rng_state(state: dict[str, Any], augment_generator: torch.Generator) -> torch.Tensor:
    """Restore what :func:`capture_rng_state` captured; returns the data loader generator state."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    augment_generator.set_state(state["augment"])
    return state["loader"]


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a resume state atomically (a kill leaves the previous file intact)."""
    state = {"version": STATE_VERSION, **state}
    atomic_write(path, lambda temporary: torch.save(state, temporary))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a resume state written by :func:`save_training_state` (tensors loaded on the CPU).

    Raises:
        UserError: missing, unreadable, or written by an incompatible version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"cannot resume: no resume state {str(path)!r}. Check runtime.output_dir, or start the run "
            "without --resume"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise UserError(f"cannot resume: {str(path)!r} is not a readable resume state ({error})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UserError(
            f"cannot resume: {str(path)!r} was written by an incompatible version of dna_depth "
            f"(resume state version {state.get('version') if isinstance(state, dict) else '?'}, "
            f"expected {STATE_VERSION}); start a new run, optionally with --init from its last.safetensors"
        )
    return state
