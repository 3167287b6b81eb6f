"""Int8 post-training quantisation of a DNA-Depth network, calibrated on its own training frames.

:func:`quantize_int8` runs NNCF's post-training quantisation on the exported ONNX graph
and returns a QDQ ONNX model (``QuantizeLinear``/``DequantizeLinear`` pairs around int8
convolutions) that OpenVINO runs on the CPU's int8 units (VNNI, AMX) and ONNX Runtime
runs too. Activation ranges come from *calibration frames*, which must look like what the
network sees in use: frames of its own training data (:func:`training_frames`
regenerates the synthetic sequences a checkpoint was trained on, from its provenance; a
bag fine-tune passes its bag frames).

Quantisation is NNCF's default post-training scheme (symmetric per-tensor int8
activations, per-channel int8 weights, fast bias correction). Keeping depthwise
convolutions, the squeeze-excitation branches and the head in floating point was tried on
the shipped checkpoint: it cut the per-pixel p99 change only from about 9 to 7 % at 320x96
while losing most of the speed (OpenVINO then runs it no faster than bf16), so it is not done.

Whether the result is good enough is not assumed: ``dna-depth calibrate-precision``
measures it against ground truth and records the verdict; ``auto`` uses int8 only when it
met the budget.
"""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from ..checkpoint import ModelMetadata
from ..errors import UserError
from ..networks import DepthNet

DEFAULT_CALIBRATION_FRAMES = 48
"""Frames NNCF collects activation statistics on (its default is 300; 48 keep calibration under a minute on 2 cores)."""

FRAMES_PER_SEQUENCE = 8
"""Calibration frames taken from each regenerated training sequence (rendering a sequence costs seconds)."""


def training_frames(metadata: ModelMetadata, count: int = DEFAULT_CALIBRATION_FRAMES) -> tuple[list[np.ndarray], str]:
    """Regenerate up to ``count`` frames of the synthetic sequences the checkpoint was trained on.

    Reads ``provenance["training"]["config"]["data"]`` (written by ``dna-depth train``) and
    renders the first training sequences at the network input size, taking
    :data:`FRAMES_PER_SEQUENCE` evenly spaced frames of each.

    Returns:
        ``(frames, description)``: uint8 ``(h, w, 3)`` RGB frames and a one-line description.

    Raises:
        UserError: the checkpoint was not trained on synthetic data (its frames cannot be
            regenerated: calibrate on its bag with ``finetune-bag --int8`` instead).
    """
    from ..data.synthetic import SyntheticSceneConfig, generate_sequence

    data = (metadata.provenance.get("training") or {}).get("config", {}).get("data", {})
    synthetic = data.get("synthetic") if data.get("dataset") == "synthetic" else None
    if not synthetic:
        raise UserError(
            "the checkpoint's provenance does not name synthetic training data, so its training frames cannot "
            "be regenerated for int8 calibration; fine-tune with 'dna-depth finetune-bag --int8' to calibrate on "
            "the bag's frames, or measure without int8 (--no-int8)"
        )
    frames_per_sequence = int(synthetic.get("frames_per_sequence", 30))
    sequences = max(1, min(int(synthetic.get("train_sequences", 1)), -(-count // FRAMES_PER_SEQUENCE)))
    per_sequence = -(-count // sequences)
    config = SyntheticSceneConfig(style=synthetic.get("style", "street"), height=metadata.height,
                                  width=metadata.width, frames_per_sequence=max(frames_per_sequence, 3))
    first_seed = int(synthetic.get("seed", 0))
    frames: list[np.ndarray] = []
    for seed in range(first_seed, first_seed + sequences):
        images = generate_sequence(config, seed).images
        picks = np.linspace(0, len(images) - 1, min(per_sequence, len(images))).round().astype(int)
        frames.extend(images[i] for i in picks)
    frames = frames[:count]
    return frames, (f"{len(frames)} frames of the training data: synthetic {config.style} sequences, seeds "
                    f"{first_seed}..{first_seed + sequences - 1}, {metadata.width}x{metadata.height}")


def quantize_int8(depth_net: DepthNet, metadata: ModelMetadata, frames: list[np.ndarray]) -> bytes:
    """Int8 QDQ ONNX model (serialised) of ``depth_net`` at the metadata's input size, dynamic batch.

    Args:
        depth_net: the network (not modified).
        metadata: its metadata (input size; stored in the model like ``dna-depth export``).
        frames: calibration frames, uint8 ``(H, W, 3)`` RGB at the network input size.

    Raises:
        UserError: NNCF is not installed, no frames, or frames of another size.
    """
    import onnx

    from ..inference.model_cache import cached_onnx_model

    size = (metadata.height, metadata.width)
    if any(frame.shape != (*size, 3) for frame in frames):
        raise UserError(f"calibration frames must be {size[1]}x{size[0]} RGB (the network input size)")
    return quantize_onnx_int8(onnx.load(str(cached_onnx_model(depth_net, metadata))), frames)


def quantize_onnx_int8(model, frames: list[np.ndarray]) -> bytes:
    """:func:`quantize_int8` of an ONNX model (input ``image``, float32 RGB in [0, 1]) of any network."""
    try:
        import nncf
    except ImportError:
        raise UserError("int8 quantisation needs NNCF: pip install nncf (or pip install -e '.[export]')") from None
    from .onnx import INPUT_NAME

    if not frames:
        raise UserError("int8 calibration needs at least one frame")
    samples = [np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0 for frame in frames]
    dataset = nncf.Dataset(samples, lambda sample: {INPUT_NAME: sample})
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):  # NNCF draws progress bars
        quantized = nncf.quantize(model, dataset, subset_size=len(samples))
    return quantized.SerializeToString()
