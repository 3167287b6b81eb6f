"""Which torch device a command runs on: ``--device``/``device:=`` values resolved once.

Training, inference, evaluation and the precision tools all take the same spelling
(``auto``, ``cpu``, ``cuda``, ``cuda:N``); this is the one place that turns it into a
:class:`torch.device`.
"""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return resolved
