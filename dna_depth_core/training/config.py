"""Training configuration: typed dataclasses whose defaults are the paper's recipe.

``TrainConfig()`` is DNA-Depth-B0 trained self-supervised on KITTI at 640x192 with
Monodepth2's recipe (Adam 1e-4 for 35 epochs then 1e-5 to 40, batch 16, frames
t-1/t/t+1, smoothness 1e-3, depth range 0.1-100, flip and colour-jitter augmentation).
Build one from YAML plus ``key.sub=value`` overrides with :func:`load_train_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_config, load_config, require
from ..data.kitti import RESAMPLING_METHODS
from ..losses import SelfSupervisedLossConfig
from ..networks import INPUT_DIVISOR, list_depth_nets
from .augment import AugmentationConfig

DATASETS = ("kitti", "synthetic")
"""Values of ``data.dataset`` the ``dna-depth train`` command can build."""


@dataclass
class ModelConfig:
    """Networks to train.

    Attributes:
        variant: depth network preset, ``dna_depth_b0`` (published, 4.15 M parameters) or
            ``dna_depth_b1``.
        encoder: timm encoder name replacing the preset's (e.g. ``efficientnet_b0``);
            ``None`` keeps the preset's TensorFlow-padded EfficientNet.
        pretrained: depth encoder initialisation: ``false`` (random), ``true`` (timm's
            ImageNet weights, downloaded) or the path of a local timm weight file.
        pose_encoder: timm ResNet of the pose network (``resnet18`` as published).
        pose_pretrained: pose encoder initialisation, like ``pretrained``.
    """

    variant: str = "dna_depth_b0"
    encoder: str | None = None
    pretrained: bool | str = False
    pose_encoder: str = "resnet18"
    pose_pretrained: bool | str = False

    def __post_init__(self) -> None:
        require(self.variant in list_depth_nets(),
                f"model.variant must be one of {list_depth_nets()}, got {self.variant!r}")


@dataclass
class KittiDataConfig:
    """KITTI raw data (not shipped: point at your copy).

    Attributes:
        root: folder holding ``2011_09_26`` etc.
        train_split: ``folder frame side`` split file of training triplets (e.g. the
            Eigen-Zhou ``train_files.txt``).
        val_split: split file for validation (e.g. Eigen-Zhou ``val_files.txt``); empty
            for no validation.
        image_ext: ``jpg``, ``png`` or ``auto`` (whichever exists).
        val_depth_gt: validate with projected lidar depth (AbsRel, needs
            ``velodyne_points`` and calibration) instead of the photometric loss.
        resample: image resizing, ``lanczos`` (Pillow's Lanczos, the reference loader's
            filter the paper's model was trained with) or ``area`` (OpenCV, faster).
    """

    root: str = ""
    train_split: str = ""
    val_split: str = ""
    image_ext: str = "auto"
    val_depth_gt: bool = False
    resample: str = "lanczos"

    def __post_init__(self) -> None:
        require(self.resample in RESAMPLING_METHODS,
                f"data.kitti.resample must be one of {list(RESAMPLING_METHODS)}, got {self.resample!r}")


@dataclass
class SyntheticSceneMix:
    """One entry of a mixed-style synthetic training set (``data.synthetic.mix``).

    Sequence counts and seed left ``None`` take ``data.synthetic``'s; camera options left
    ``None`` take the style's; frame count and frame rate are always ``data.synthetic``'s.

    Attributes:
        style: scene style (``street``, ``corridor`` or ``robot``).
        train_sequences: training sequences of this entry (``None``: ``data.synthetic``'s).
        val_sequences: held-out validation sequences of this entry (``None``: ``data.synthetic``'s).
        seed: seed of this entry's first training sequence; validation ones use
            ``seed + 1_000_000`` (``None``: ``data.synthetic.seed``).
        camera_height: camera height above the floor or road in metres (``None``: the style's).
        horizontal_fov_deg: horizontal field of view in degrees, square pixels (``None``: the style's).
        distortion: ``robot`` only, as ``data.synthetic.distortion``.
        frame_spacing: frames between the target and each source of this entry's
            training triplets (``None``: ``data.synthetic.frame_spacing``).
    """

    style: str = "street"
    train_sequences: int | None = None
    val_sequences: int | None = None
    seed: int | None = None
    camera_height: float | None = None
    horizontal_fov_deg: float | None = None
    distortion: bool | None = None
    frame_spacing: int | None = None


@dataclass
class SyntheticDataConfig:
    """Synthetic sequences generated on the fly (exact depth, deterministic).

    The camera renders at the network input size (``data.height`` x ``data.width``).

    Attributes:
        style: scene style of :data:`dna_depth_core.data.synthetic.STYLES`:
            ``street``, ``corridor`` or ``robot`` (a ground robot indoors).
        train_sequences: number of training sequences.
        val_sequences: number of held-out validation sequences (0: no validation).
        frames_per_sequence: frames rendered per sequence.
        fps: frame rate the camera motion is sampled at (Hz).
        seed: seed of the training scenes; validation scenes use ``seed + 1_000_000``.
        camera_height: camera height above the floor or road in metres; ``None``
            (default): the style's (street 1.65, corridor 1.2, robot 0.5).
        horizontal_fov_deg: horizontal field of view of the (rectified) pinhole camera in
            degrees, square pixels; ``None`` (default): the style's (street and corridor
            KITTI's camera, robot 90).
        distortion: ``robot`` only: frames recorded through the robot's plumb_bob
            wide-angle lens and rectified with its calibration, as on a robot (``None``,
            default, or true), or rendered by an ideal pinhole camera (false).
        frame_spacing: frames between the target and each source of a training triplet
            (1, default: neighbours; 2 doubles a slow camera's baseline). Validation
            triplets always use neighbours.
        mix: train on several styles and cameras at once: a list of
            :class:`SyntheticSceneMix` entries, each rendered with its own options and
            concatenated (training and validation); empty (default): ``style`` and the
            camera options above only.
    """

    style: str = "street"
    train_sequences: int = 16
    val_sequences: int = 2
    frames_per_sequence: int = 30
    fps: float = 10.0
    seed: int = 0
    camera_height: float | None = None
    horizontal_fov_deg: float | None = None
    distortion: bool | None = None
    frame_spacing: int = 1
    mix: list[SyntheticSceneMix] = field(default_factory=list)

    def __post_init__(self) -> None:
        spacings = [self.frame_spacing] + [entry.frame_spacing for entry in self.mix if entry.frame_spacing is not None]
        require(all(spacing >= 1 for spacing in spacings),
                f"data.synthetic.frame_spacing (and each mix entry's) must be >= 1, got {spacings}")


@dataclass
class DataConfig:
    """Training data and loading.

    Attributes:
        dataset: ``kitti`` or ``synthetic`` (for the command line; the :class:`Trainer`
            API takes any dataset object yielding the samples of :mod:`dna_depth_core.data`).
        height: network input height in pixels (multiple of 32).
        width: network input width in pixels (multiple of 32).
        batch_size: samples per optimiser step and process (with N processes the
            effective batch is N times larger).
        num_workers: data-loading worker processes per training process.
        frame_offsets: offsets of the (previous, target, next) frames; the middle one must
            be 0.
        kitti: options of ``dataset: kitti``.
        synthetic: options of ``dataset: synthetic``.
    """

    dataset: str = "kitti"
    height: int = 192
    width: int = 640
    batch_size: int = 16
    num_workers: int = 4
    frame_offsets: tuple[int, int, int] = (-1, 0, 1)
    kitti: KittiDataConfig = field(default_factory=KittiDataConfig)
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)

    def __post_init__(self) -> None:
        require(self.dataset in DATASETS, f"data.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        for key in ("height", "width"):
            size = getattr(self, key)
            require(size > 0 and size % INPUT_DIVISOR == 0,
                    f"data.{key} must be a positive multiple of {INPUT_DIVISOR}, got {size}")
        require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        require(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        offsets = self.frame_offsets
        require(offsets[0] < 0 and offsets[1] == 0 and offsets[2] > 0,
                f"data.frame_offsets must be (previous < 0, 0, next > 0), e.g. [-1, 0, 1]; got {list(offsets)}")


@dataclass
class OptimConfig:
    """Optimiser and schedule.

    Attributes:
        lr: Adam learning rate of the first epochs.
        betas: Adam ``(beta1, beta2)``.
        weight_decay: L2 weight decay (0 in the recipe).
        epochs: passes over the training set.
        lr_milestones: epochs (0-based) at whose start the learning rate is multiplied by
            ``lr_gamma``; ``[35]`` gives 1e-4 for epochs 0-34 and 1e-5 for 35-39.
        lr_gamma: factor applied at each milestone.
        max_steps: stop after this many optimiser steps in total (0: run all epochs).
        pose_warmup_steps: for this many first steps only the pose network learns and the
            depth network is held (weights and batch-norm statistics). For fine-tuning a
            trained depth network whose pose network starts untrained: the random motion
            estimates would otherwise pull the depth off what it already knows. 0 in the
            recipe.
        ema_decay: keep an exponential moving average of both networks' weights with this
            decay per step (e.g. 0.995: about the last 200 steps; timm's ``ModelEmaV3``
            with warm-up, so early steps average over fewer); validation and checkpoints
            then use the averaged weights. Smooths out the step-to-step swings of short
            or high-learning-rate runs. 0 (off) in the recipe.
        activation_checkpointing: keep only the outputs of the encoders' stages and the
            decoder's nodes for backward and recompute the rest there: the same losses,
            gradients and batch-norm statistics with less memory, for one more forward
            pass per step: B0 at 640x192, batch 4, on a CPU peaks at 3.0-3.2 GB instead
            of 5.3-5.5 GB for 20-30 % more time per step; batch 16 at 8.8 GB instead of
            19.8 GB (``benchmarks/train_step.py``). Off by default.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    epochs: int = 40
    lr_milestones: list[int] = field(default_factory=lambda: [35])
    lr_gamma: float = 0.1
    max_steps: int = 0
    pose_warmup_steps: int = 0
    ema_decay: float = 0.0
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"optim.epochs must be >= 1, got {self.epochs}")
        require(self.max_steps >= 0, f"optim.max_steps must be >= 0, got {self.max_steps}")
        require(self.pose_warmup_steps >= 0, f"optim.pose_warmup_steps must be >= 0, got {self.pose_warmup_steps}")
        require(0.0 <= self.ema_decay < 1.0,
                f"optim.ema_decay must be in [0, 1) (0: no weight averaging), got {self.ema_decay}")
        require(all(b >= 0 for b in self.lr_milestones),
                f"optim.lr_milestones must be epochs >= 0, got {self.lr_milestones}")


@dataclass
class ValidationConfig:
    """Validation after epochs; picks ``best.safetensors``.

    With ground-truth depth in the validation samples the criterion is AbsRel (per
    image, median-scaled unless the run is metric, averaged over images), otherwise the
    photometric loss; both lower-is-better.

    Attributes:
        every_epochs: validate after every this many epochs (0: never).
        min_depth: ground-truth pixels need ``depth > min_depth`` (metres).
        max_depth: ground-truth pixels need ``depth < max_depth`` (metres).
        garg_crop: restrict AbsRel to the Garg crop (KITTI protocol).
    """

    every_epochs: int = 1
    min_depth: float = 1e-3
    max_depth: float = 80.0
    garg_crop: bool = False

    def __post_init__(self) -> None:
        require(self.every_epochs >= 0, f"validation.every_epochs must be >= 0, got {self.every_epochs}")


@dataclass
class TrueMotionConfig:
    """Training on data that knows the camera's true motion (samples with
    ``target_to_source``, e.g. ``data.dataset: synthetic``); off by default, so training on
    KITTI or a bag is unchanged.

    Self-supervised depth is only known up to scale; the true motion (metres) fixes it
    exactly, in the depth network through the warp and in the pose network through its
    supervision, so both come out metric.

    Attributes:
        warp: the photometric loss warps the sources with the true target-to-source
            transforms instead of the pose network's estimates (the depth network alone
            must explain the images, in metres). Off by default.
        pose_weight: weight of the pose supervision: the pose network's estimated
            target-to-source transforms against the true ones (see
            :func:`~dna_depth_core.training.objective.pose_loss`: the translation error
            relative to the distance travelled, plus ``rotation_weight`` times the rotation
            error in radians). 0 (default): none.
        rotation_weight: weight of the rotation error (radians) against the relative
            translation error inside the pose supervision (10: an error of 0.01 rad counts
            like a 10 % error of the translation).
        min_distance: metres; the relative translation error divides by
            ``max(distance travelled, min_distance)``, so a camera standing still does
            not blow it up.
    """

    warp: bool = False
    pose_weight: float = 0.0
    rotation_weight: float = 10.0
    min_distance: float = 0.02

    @property
    def enabled(self) -> bool:
        """Whether training needs the samples' true motion."""
        return self.warp or self.pose_weight > 0

    def __post_init__(self) -> None:
        require(self.pose_weight >= 0, f"true_motion.pose_weight must be >= 0, got {self.pose_weight}")
        require(self.rotation_weight >= 0, f"true_motion.rotation_weight must be >= 0, got {self.rotation_weight}")
        require(self.min_distance > 0, f"true_motion.min_distance must be > 0 (metres), got {self.min_distance}")


@dataclass
class RuntimeConfig:
    """Where and how the run executes.

    Attributes:
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``. Under
            torchrun each process uses ``cuda:LOCAL_RANK``.
        amp: mixed precision (float16 autocast + gradient scaling); only on CUDA, CPU
            always trains in float32.
        channels_last: channels-last memory format for networks and inputs.
        seed: seeds weights, augmentation, data order and dropout; the same seed gives
            the same run on the CPU.
        output_dir: run folder: ``last.safetensors``, ``best.safetensors``,
            ``train_state.pt`` (resume), ``config.yaml``, ``tensorboard/``.
        checkpoint_every_steps: also write ``last.safetensors`` and the resume state
            every this many steps (0: at epoch ends only), so a killed run loses little.
        log_every_steps: TensorBoard scalars every this many steps.
        image_every_steps: TensorBoard images (input, disparity, auto-mask) every this
            many steps (0: never).
        time_limit_minutes: stop cleanly (checkpoint + resume state) after this wall
            time, e.g. a cluster job limit (0: no limit).
        progress: show a progress bar.
        tensorboard: write TensorBoard logs.
    """

    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    output_dir: str = "runs/dna_depth"
    checkpoint_every_steps: int = 1000
    log_every_steps: int = 50
    image_every_steps: int = 500
    time_limit_minutes: float = 0.0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for key in ("checkpoint_every_steps", "image_every_steps"):
            require(getattr(self, key) >= 0, f"runtime.{key} must be >= 0, got {getattr(self, key)}")
        require(self.log_every_steps >= 1, f"runtime.log_every_steps must be >= 1, got {self.log_every_steps}")
        require(self.time_limit_minutes >= 0,
                f"runtime.time_limit_minutes must be >= 0, got {self.time_limit_minutes}")


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are the paper's KITTI recipe.

    Attributes:
        model: networks.
        data: data and loading.
        optim: optimiser and schedule.
        loss: self-supervised loss weights and depth range.
        augmentation: flips and colour jitter.
        validation: validation and best-checkpoint criterion.
        runtime: device, precision, seed, output and logging.
        speed_weight: weight of speed supervision: an L1 loss between the length of the
            pose network's translation and the true distance travelled (samples'
            ``source_distance``, metres). Any value > 0 makes depth metric (checkpoints
            say ``metric: true``); 0 trains scale-ambiguous depth as in the paper.
        true_motion: warp with and/or supervise the pose network on the data's true
            camera motion; either makes depth metric too.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: SelfSupervisedLossConfig = field(default_factory=SelfSupervisedLossConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    speed_weight: float = 0.0
    true_motion: TrueMotionConfig = field(default_factory=TrueMotionConfig)

    def __post_init__(self) -> None:
        require(self.speed_weight >= 0, f"speed_weight must be >= 0, got {self.speed_weight}")


def check_train_config(config: TrainConfig) -> None:
    """Check a :class:`TrainConfig` again after its fields were changed (building one checks
    it): every section's ``__post_init__`` (see :func:`dna_depth_core.config.check_config`).

    Raises:
        ConfigError: (a :class:`~dna_depth_core.errors.UserError`) naming the key, for
            values no run could use.
    """
    check_config(config)


def load_train_config(source: str | Path | dict | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A checked :class:`TrainConfig` from defaults, a YAML file (or mapping) and overrides.

    Args:
        source: YAML path, mapping, or ``None`` for the defaults.
        overrides: ``["optim.lr=2e-4", "data.batch_size=8"]``, applied last.

    Raises:
        UserError: unreadable or malformed YAML, unknown keys, wrong types, invalid values.
    """
    return load_config(TrainConfig, source, overrides)
