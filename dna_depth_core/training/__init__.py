"""Self-supervised training of DNA-Depth: config, augmentation, objective, trainer.

``Trainer(config, train_dataset, val_dataset).fit()`` is the library entry point;
``dna-depth train`` wraps it with datasets built from the config.
"""

from .augment import AugmentationConfig, augment_batch, apply_color_jitter, flip_horizontally, sample_color_jitter
from .config import (
    DataConfig, KittiDataConfig, ModelConfig, OptimConfig, RuntimeConfig, SyntheticDataConfig, TrainConfig,
    ValidationConfig, check_train_config, load_train_config,
)
from .objective import ObjectiveOutput, compute_objective, predict_target_to_source, speed_loss
from .run_folder import BEST_CHECKPOINT, LAST_CHECKPOINT, TrainingSummary, check_run_folder, finished_run
from .startup import build_networks
from .trainer import Trainer
from .state import STATE_FILE_NAME

__all__ = [
    "BEST_CHECKPOINT", "LAST_CHECKPOINT", "STATE_FILE_NAME", "AugmentationConfig", "DataConfig", "KittiDataConfig",
    "ModelConfig", "ObjectiveOutput", "OptimConfig", "RuntimeConfig", "SyntheticDataConfig", "TrainConfig",
    "Trainer", "TrainingSummary", "ValidationConfig", "apply_color_jitter", "augment_batch", "build_networks",
    "check_run_folder", "check_train_config", "compute_objective", "finished_run", "flip_horizontally",
    "load_train_config", "predict_target_to_source", "sample_color_jitter", "speed_loss",
]
