"""Messages the node cannot use: one exception type, counted per kind, never fatal."""

from __future__ import annotations

BAD_INPUT_KINDS = (
    "unsupported_encoding",
    "empty_image",
    "invalid_step",
    "data_size_mismatch",
    "image_too_large",
    "undecodable_image",
    "invalid_camera_info",
    "camera_info_mismatch",
)
"""Every kind of bad input the node recognises; each has its own diagnostics counter."""


class BadInput(Exception):
    """An input message the node has to skip (bad encoding, size, calibration...).

    The node logs it (throttled per kind), counts it in diagnostics and keeps serving.

    Args:
        kind: one of :data:`BAD_INPUT_KINDS`.
        message: what is wrong with the message and, where possible, how to fix the sender.
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in BAD_INPUT_KINDS:
            raise ValueError(f"unknown bad-input kind {kind!r}; expected one of {BAD_INPUT_KINDS}")
        super().__init__(message)
        self.kind = kind
