"""Datasets for self-supervised training and evaluation.

Every training dataset yields samples as dicts with the same keys, so the trainer does
not care where frames come from (KITTI, synthetic scenes, a recorded bag):

- ``"frames"``: float32 ``(3, 3, H, W)``, RGB in [0, 1]; index 0 is the source frame
  before the target (t-1), 1 the target (t), 2 the source frame after it (t+1). These
  are the un-augmented images the photometric loss compares; colour-jitter and flip
  augmentation are applied by the trainer.
- ``"intrinsics"``: float32 ``(3, 3)`` pinhole matrix in pixels for the H x W frames.
- ``"depth_gt"`` (optional): float32 ``(1, H, W)`` target-frame depth in metres, 0 where
  unknown.
- ``"source_distance"`` (optional): float32 ``(2,)``, metres the camera travelled from
  the target to each source frame (t-1, t+1), for speed supervision of the pose network.
- ``"target_to_source"`` (optional): float32 ``(2, 4, 4)``, the true rigid transforms
  mapping target-camera points (metres) to the t-1 and t+1 cameras (synthetic scenes
  know them), for ``true_motion`` training.
"""
