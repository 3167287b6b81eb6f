"""Fine-tuning on bags end to end: sample bag -> a few real training steps -> a checkpoint the node loads.

Tiny sizes (64 x 96, batch 2, one or a few steps) keep this within CI time on 2 cores.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dna_depth_core

from dna_depth_core.checkpoint import ModelMetadata, load_checkpoint, read_metadata, save_checkpoint
from dna_depth_core.cli import main as dna_depth
from dna_depth_core.inference import DepthEstimator
from dna_depth_core.networks import PoseNet, create_depth_net
from dna_depth_core.training import Trainer
from dna_depth_core.data.rosbag.reader import RecordedBag, decode_image, read_calibration
from dna_depth_core.data.rosbag.dataset import BagDataConfig, build_bag_datasets
from dna_depth_core.data.rosbag.ground_truth import ground_truth_depths
from dna_depth_core.data.rosbag.sample_bag import SAMPLE_START_TIME
from dna_depth_core.data.rosbag.transforms import camera_odometry, image_frame_id, read_static_transforms
from dna_depth_core.data.synthetic import SyntheticSceneConfig, generate_sequence, scene_config
from dna_depth_core.losses import SelfSupervisedLossConfig
from dna_depth_core.training.calibration import calibrate_depth_unit, consistent_translation_scale
from dna_depth_core.training import finetune_scale
from dna_depth_core.training.finetune import FINETUNED_CHECKPOINT, make_settings
from dna_depth_core.training.finetune_report import panel_indices
from dna_depth_ros.bag_finetune import main as bag_finetune

HEIGHT, WIDTH = 64, 96
TINY_RUN = ["--height", str(HEIGHT), "--width", str(WIDTH), "--batch-size", "2", "--val-fraction", "0.3"]
QUIET = ["data.num_workers=0", "runtime.progress=false", "runtime.log_every_steps=1", "--no-precision-record"]
"""Quiet, and without the final precision measurement (test_cli_routes.py runs that)."""
SHIPPED = Path(dna_depth_core.__file__).parent / "assets" / "dna_depth_synthetic.safetensors"
ROBOT_FRAMES, ROBOT_SIZE = 12, (96, 128)
ROBOT_RUN = ["--height", "96", "--width", "128", *TINY_RUN[4:]]
"""The robot bag at its own size: below it the shipped model's floor is too coarse to fit."""


@pytest.fixture(scope="module")
def sample_bags(tmp_path_factory):
    """The sample bag in both storage formats (16 rendered street frames)."""
    folder = tmp_path_factory.mktemp("bags")
    for storage in ("sqlite3", "mcap"):
        code = dna_depth(["make-sample-bag", str(folder / storage), "--format", storage, "--frames", "16",
                          "--height", str(HEIGHT), "--width", str(WIDTH)])
        assert code == 0
    return folder


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory):
    """A ground robot's bag (camera 0.5 m above the floor; /odom of base_link, /tf_static mount)."""
    path = tmp_path_factory.mktemp("robot") / "bag"
    assert dna_depth(["make-sample-bag", str(path), "--style", "robot", "--frames", str(ROBOT_FRAMES),
                      "--height", str(ROBOT_SIZE[0]), "--width", str(ROBOT_SIZE[1])]) == 0
    return path


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("init") / "random.safetensors"
    metadata = ModelMetadata(height=HEIGHT, width=WIDTH, pose_encoder="resnet18", provenance={"weights": "random"})
    save_checkpoint(path, create_depth_net("dna_depth_b0"), metadata, PoseNet("resnet18"))
    return path


def test_sample_bag_has_the_documented_topics(sample_bags, capsys):
    assert dna_depth(["make-sample-bag", str(sample_bags / "mcap")]) == 2
    assert "exists already" in capsys.readouterr().err
    bag = RecordedBag(sample_bags / "mcap")
    assert bag.topics == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/odom": "nav_msgs/msg/Odometry",
        "/camera/depth_gt": "sensor_msgs/msg/Image",
    }
    assert set(bag.message_counts.values()) == {16}
    depth = next(iter(bag.messages(["/camera/depth_gt"]))).deserialize()
    values = np.frombuffer(depth.data, np.float32)
    assert depth.encoding == "32FC1" and depth.header.frame_id == "camera_optical_frame"
    assert np.isnan(values).any() and np.nanmin(values) > 0  # sky is NaN, the rest metres
    odometry = [message.deserialize() for message in bag.messages(["/odom"])]
    assert odometry[0].header.frame_id == "odom" and odometry[0].child_frame_id == "base_link"
    assert 7.0 < odometry[5].twist.twist.linear.x < 9.0  # the street drive's 8 m/s, forward


def test_finetune_from_random_weights_gives_a_checkpoint_the_node_runs(sample_bags, random_checkpoint, tmp_path,
                                                                      capsys):
    output = tmp_path / "out"
    code = dna_depth(["finetune-bag", str(sample_bags / "mcap"), *QUIET, "-o", str(output), "--init",
                      str(random_checkpoint), "--image-topic", "/camera/image_raw/compressed", "--odom-topic", "/odom",
                      "--steps", "2", *TINY_RUN, "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    checkpoint = output / FINETUNED_CHECKPOINT
    metadata = read_metadata(checkpoint)
    assert metadata.metric  # speed-supervised with odometry
    assert (metadata.height, metadata.width) == (HEIGHT, WIDTH)
    (bag,) = metadata.provenance["bags"]
    assert bag["image_topic"] == "/camera/image_raw/compressed" and bag["odom_topic"] == "/odom"
    assert bag["camera_info_topic"] == "/camera/camera_info" and bag["bag"].endswith("mcap")
    assert metadata.provenance["step"] == 2
    # The random model has pose weights: its unit is measured at the start and speed-supervised,
    # and the fine-tuned pose network, measured against the odometry, gives depth_scale.
    assert metadata.provenance["starting_depth_unit_metres"] > 0
    assert 1 / 16 <= metadata.provenance["starting_translation_scale"] <= 16
    assert metadata.provenance["speed_supervision_weight"] > 0
    assert metadata.depth_scale > 0 and "photometric best fit" in metadata.provenance["depth_scale_calibration"]

    # Load it as the node does and get depth for a frame replayed from the bag.
    estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="eager")
    bag = RecordedBag(sample_bags / "sqlite3")
    frame = decode_image(next(iter(bag.messages(["/camera/image_raw"]))))
    depth = estimator.estimate(frame, read_calibration(bag, "/camera/camera_info"), resolution="input")
    assert depth.shape == frame.shape[:2] and np.isfinite(depth).all()  # trained on this camera: nothing cropped
    assert metadata.preparation.crop == "centre" and (metadata.height, metadata.width) == (HEIGHT, WIDTH)
    nearest, farthest = metadata.min_depth * metadata.depth_scale, metadata.max_depth * metadata.depth_scale
    assert nearest * 0.999 <= depth.min() and depth.max() <= farthest * 1.001

    report = json.loads((output / "report.json").read_text())
    assert report["steps"] == 2 and report["metric"] is True and report["evaluated_on"] == "validation"
    assert np.isfinite([report["photometric_before"], report["photometric_after"]]).all()
    assert report["metres_per_unit"] == pytest.approx(metadata.depth_scale)
    assert report["starting_metres_per_unit"] == pytest.approx(metadata.provenance["starting_depth_unit_metres"])
    assert report["ground_truth_topics"] == {str((sample_bags / "mcap").resolve()): "/camera/depth_gt"}
    # The calibrations at start and end say what they do (their progress bars follow runtime.progress).
    printed = capsys.readouterr().out
    assert "odometry: fitting the --init pose network" in printed and "metres per depth unit ..." in printed
    for picture in ("loss_curves.png", "depth_before_after.png"):
        assert (output / picture).read_bytes().startswith(b"\x89PNG")


def test_killed_finetune_resumes_where_it_stopped(sample_bags, monkeypatch, tmp_path, capsys):
    calls = []
    train_step = Trainer._train_step

    def killed_at_third_step(self, batch):
        calls.append(self.step)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C or a SIGINT from a job scheduler raises
        return train_step(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", killed_at_third_step)
    output = tmp_path / "out"
    arguments = [str(sample_bags / "sqlite3"), *QUIET, "runtime.checkpoint_every_steps=1", "-o", str(output)]
    assert bag_finetune([*arguments, *TINY_RUN, "--cache-dir", str(tmp_path / "cache")]) == 130
    assert "--resume" in capsys.readouterr().err
    assert not (output / FINETUNED_CHECKPOINT).exists()

    calls.clear()
    def counted(self, batch):
        calls.append(self.step)
        return train_step(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", counted)
    assert bag_finetune(["-o", str(output), "--resume", "--steps", "3"]) == 0
    assert calls == [2]  # continued after the two saved steps, trained only the third
    report = json.loads((output / "report.json").read_text())
    assert report["steps"] == 3 and report["stop_reason"] == "max_steps"
    assert read_metadata(output / FINETUNED_CHECKPOINT).provenance["step"] == 3


def test_finetune_argument_mistakes_are_one_line_errors(sample_bags, tmp_path, capsys):
    assert dna_depth(["finetune-bag", "-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", str(sample_bags / "sqlite3")]) == 2
    assert "-o OUTDIR" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", str(tmp_path / "no_such_bag"), "-o", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", str(sample_bags / "sqlite3"), "-o", str(tmp_path / "out"),
                      "--odom-topic", "/wheel_odom", *TINY_RUN, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--odom-topic must name a nav_msgs/msg/Odometry topic: /odom" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", str(sample_bags / "sqlite3"), "-o", str(tmp_path / "out"),
                      "--camera-height", "50"]) == 2
    assert "--camera-height is the camera's height above the floor in metres" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", "-o", str(tmp_path / "out"), "--resume", "--overwrite"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert dna_depth(["finetune-bag", str(sample_bags / "sqlite3"), "--list-topics"]) == 0
    assert "-> camera: /camera/image_raw with /camera/camera_info" in capsys.readouterr().out


def test_recorded_depth_lines_up_with_the_training_frames(tmp_path):
    """The report's ground truth: the bag's depth topic mapped onto the network's view (here a
    128x192 bag trained at 64x96) is the scene's depth rendered at 64x96, pixel for pixel."""
    bag = tmp_path / "bag"
    assert dna_depth(["make-sample-bag", str(bag), "--frames", "12", "--height", "128", "--width", "192"]) == 0
    config = BagDataConfig(height=HEIGHT, width=WIDTH, val_fraction=0.3, cache_dir=str(tmp_path / "cache"))
    validation = build_bag_datasets([bag], config).val
    indices = panel_indices(validation)
    truth = ground_truth_depths(validation, indices, config)
    assert truth.topics == {str(bag): "/camera/depth_gt"}
    rendered = generate_sequence(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=12), seed=0)
    for depth, index in zip(truth.depths, indices):
        expected = rendered.depths[validation.triplets[index][2]]  # frames are 10 Hz, all kept
        assert depth.shape == (HEIGHT, WIDTH)
        assert (np.isfinite(depth) == (expected > 0)).mean() > 0.99  # sky is unknown in both
        known = np.isfinite(depth) & (expected > 0)
        assert np.median(np.abs(depth[known] / expected[known] - 1)) < 0.01


def test_a_start_unit_refit_without_parallax_is_not_taken(sample_bags, random_checkpoint, tmp_path, capsys):
    """Odometry says the car drives on while every frame is the same picture: fitting the
    relative start's translations to its depth finds no minimum (it runs to the smallest
    multiplier), so no unit is measured at the start and speed supervision waits for the end."""
    from dna_depth_core.data.rosbag.sample_bag import CameraBagWriter

    street = RecordedBag(sample_bags / "sqlite3")
    picture = decode_image(next(iter(street.messages(["/camera/image_raw"]))))
    bag = tmp_path / "parked"
    camera = np.array([[WIDTH / 2, 0.0, WIDTH / 2], [0.0, WIDTH / 2, HEIGHT / 2], [0.0, 0.0, 1.0]])
    with CameraBagWriter(bag, "sqlite3") as writer:
        for index in range(12):
            stamp = SAMPLE_START_TIME + 0.1 * index
            writer.write_image("/camera/image_raw", stamp, picture, "rgb8")
            writer.write_camera_info("/camera/camera_info", stamp, HEIGHT, WIDTH, camera)
            writer.write_odometry("/odom", stamp, np.array([0.8 * index, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]),
                                  np.array([8.0, 0.0, 0.0]), np.zeros(3))
    output = tmp_path / "out"
    code = dna_depth(["finetune-bag", str(bag), *QUIET, "-o", str(output), "--init", str(random_checkpoint),
                      "--odom-topic", "/odom", "--steps", "1", *TINY_RUN, "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    printed = capsys.readouterr()
    assert re.search(r"warning: odometry: fitting the --init pose network's translations to its depth on the bags "
                     r"ran to the edge of the searched multipliers \(x 0.0625\), so it measured nothing", printed.err)
    assert "speed-supervised in that unit" not in printed.out
    metadata = read_metadata(output / FINETUNED_CHECKPOINT)
    assert metadata.provenance["speed_supervision_weight"] == 0.0
    assert metadata.provenance["starting_depth_unit_metres"] is None


def test_calibration_shows_progress(sample_bags, tmp_path, capsys):
    config = BagDataConfig(height=HEIGHT, width=WIDTH, odom_topic="/odom", val_fraction=0.0,
                           cache_dir=str(tmp_path / "cache"))
    dataset = build_bag_datasets([sample_bags / "sqlite3"], config).train
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, [0, 1]), batch_size=2)
    scale = consistent_translation_scale(create_depth_net("dna_depth_b0"), PoseNet("resnet10t"), loader,
                                         SelfSupervisedLossConfig(), torch.device("cpu"), progress=True)
    assert 1 / 16 <= scale <= 16
    shown = capsys.readouterr().err
    assert "pose fit: running the networks" in shown and "pose fit: translation multipliers" in shown
    assert "/35 " in shown  # the multiplier bar counts the 35 candidates (its last frame may be cleared)


class _ConstantMotion(torch.nn.Module):
    """A pose network that always predicts 0.05 units of forward motion."""

    def forward(self, earlier, later):
        batch = earlier.shape[0]
        return torch.zeros(batch, 3), torch.tensor([0.0, 0.0, 0.05]).repeat(batch, 1)


def test_depth_unit_is_odometry_over_predicted_motion(sample_bags, tmp_path):
    config = BagDataConfig(height=HEIGHT, width=WIDTH, odom_topic="/odom", val_fraction=0.0,
                           cache_dir=str(tmp_path / "cache"))
    dataset = build_bag_datasets([sample_bags / "sqlite3"], config).train
    distances = np.concatenate([dataset[i]["source_distance"].numpy() for i in range(len(dataset))])
    unit = calibrate_depth_unit(_ConstantMotion(), dataset, torch.device("cpu"))
    assert unit == pytest.approx(np.median(distances) / 0.05, rel=1e-5)
    assert 14 < unit < 18  # the street drive's 0.8 m per frame
    dataset.depth_unit = unit
    assert dataset[0]["source_distance"].numpy() == pytest.approx(distances[:2] / unit, rel=1e-5)


def test_odometry_without_starting_pose_weights_measures_the_unit_at_the_end(sample_bags, tmp_path, capsys):
    """A depth-only checkpoint (e.g. imported): train self-supervised, calibrate at the end."""
    init = tmp_path / "depth_only.safetensors"
    torch.manual_seed(1)
    save_checkpoint(init, create_depth_net("dna_depth_b0"), ModelMetadata(height=HEIGHT, width=WIDTH))
    output = tmp_path / "out"
    code = dna_depth(["finetune-bag", str(sample_bags / "sqlite3"), *QUIET, "-o", str(output), "--init", str(init),
                      "--odom-topic", "/odom", "--steps", "1", *TINY_RUN, "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    assert "measured against the odometry at the end" in capsys.readouterr().out
    metadata = read_metadata(output / FINETUNED_CHECKPOINT)
    assert metadata.metric and metadata.depth_scale > 0
    assert metadata.provenance["speed_supervision_weight"] == 0.0
    assert metadata.provenance["starting_depth_unit_metres"] is None


def test_camera_motion_comes_from_odometry_and_the_tf_static_mount(robot_bag, sample_bags):
    """The robot's odometry is base_link's; with the /tf_static mount the distances are the
    rendered camera's own travel. A bag without /tf_static says what it assumed."""
    bag = RecordedBag(robot_bag)
    static = read_static_transforms(bag)
    assert static["camera_link"][0] == "base_link" and static["camera_optical_frame"][0] == "camera_link"
    motion = camera_odometry(bag, "/odom", image_frame_id(bag, "/camera/image_raw"))
    config = scene_config("robot", *ROBOT_SIZE, frames_per_sequence=ROBOT_FRAMES)
    assert motion.camera_offset == pytest.approx([config.camera_forward, 0.0, config.camera_height], abs=1e-6)
    assert "/tf_static mount base_link -> camera_optical_frame" in motion.description
    sequence = generate_sequence(config, seed=0)
    stamps = SAMPLE_START_TIME + sequence.timestamps
    travelled = np.linalg.norm(np.diff(sequence.poses[:, :3, 3], axis=0), axis=1)
    assert motion.track.distance(stamps[:-1], stamps[1:]) == pytest.approx(travelled, rel=1e-4)

    street = RecordedBag(sample_bags / "sqlite3")
    assumed = camera_odometry(street, "/odom", "camera_optical_frame")
    assert assumed.camera_offset is None
    assert assumed.description == ("no /tf_static in the bag: the camera is assumed to move as base_link does "
                                   "(its lever arm is neglected)")


def test_camera_height_route_end_to_end(robot_bag, tmp_path, capsys):
    """--camera-height without odometry: the unit from the floor plane at the start (the training
    signal) and at the end; report.json, the internal checkpoints and 'dna-depth info' agree.
    At the shipped model's own size, so that a start kept as the output is measured where it runs."""
    output = tmp_path / "out"
    shipped = read_metadata(SHIPPED)
    code = dna_depth(["finetune-bag", str(robot_bag), *QUIET, "-o", str(output), "--init", str(SHIPPED),
                      "--camera-height", "0.5", "--steps", "1", "--height", str(shipped.height), "--width",
                      str(shipped.width), *TINY_RUN[4:], "--cache-dir", str(tmp_path / "cache")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "camera height: the starting model's floor plane gives" in printed.out
    # The robot bag's /tf_static mount gives the floor's direction (5 degrees of pitch).
    assert "floor normal from the /tf_static mount base_link -> camera_optical_frame: 5.0 degrees" in printed.out
    report = json.loads((output / "report.json").read_text())
    metres = report["metres_per_unit"]
    assert report["scale_source"] == "camera height" and report["metric"] and metres > 0
    assert report["depth_range_metres"] == pytest.approx([0.1 * metres, 100 * metres])
    assert report["scale_checks"]["ground_plane_metres_per_unit"] == pytest.approx(metres)
    assert report["scale_checks"]["floor_normal_from_mount"][1] == pytest.approx(np.cos(np.radians(5.0)))
    metadata = read_metadata(output / FINETUNED_CHECKPOINT)
    assert metadata.metric and metadata.depth_scale == pytest.approx(metres)
    assert metadata.provenance["scale_source"] == "camera height"
    assert "floor plane 0.5 m below the camera (--camera-height; its direction from the camera mount)" in \
        metadata.provenance["depth_scale_calibration"]
    for name in ("last.safetensors", "best.safetensors"):
        internal = read_metadata(output / "training" / name)
        assert (internal.depth_scale, internal.metric) == (metadata.depth_scale, True)
    # The one guardrail line on the nearest depth appears exactly when the range says so.
    assert ("cannot predict depth nearer than" in printed.err) == (0.1 * metres > 1.0)
    assert dna_depth(["info", str(output / FINETUNED_CHECKPOINT)]) == 0
    assert re.search(r"metric: .* m per network unit \(source: camera height\), depth .* m", capsys.readouterr().out)


def test_a_metric_start_at_another_pixel_scale_keeps_its_unit_corrected(sample_bags, tmp_path, capsys,
                                                                        monkeypatch):
    """The shipped model fine-tuned at 96x64 without odometry or camera height: its unit is kept,
    times what its depth at the training size is off from its depth at its own pixel scale."""
    from dna_depth_core.training import finetune

    monkeypatch.setattr(finetune, "worse_than_start", lambda *args, **kwargs: None)  # output the trained model
    monkeypatch.setattr(finetune_scale, "depth_ratio", lambda *args, **kwargs: (1.02, 0.01))  # and it held
    output = tmp_path / "out"
    assert dna_depth(["finetune-bag", str(sample_bags / "sqlite3"), *QUIET, "-o", str(output), "--init",
                      str(SHIPPED), *TINY_RUN, "--steps", "1", "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads((output / "report.json").read_text())
    ratio = report["scale_checks"]["pixel_scale_ratio"]
    assert abs(ratio - 1) > finetune_scale.PIXEL_SCALE_TOLERANCE, "the tiny size should be off the model's scale"
    assert report["scale_source"] == "starting model"
    assert report["metres_per_unit"] == pytest.approx(read_metadata(SHIPPED).depth_scale * ratio)
    assert "corrected" not in capsys.readouterr().err
    metadata = read_metadata(output / FINETUNED_CHECKPOINT)
    assert (metadata.height, metadata.width) == (HEIGHT, WIDTH) and metadata.depth_scale == pytest.approx(
        report["metres_per_unit"])
    assert f"the starting unit x {ratio:.3g} for its depth at the training size" in \
        metadata.provenance["depth_scale_calibration"]


def test_a_metric_starts_pose_translations_are_fitted_to_its_depth_before_they_anchor_it(sample_bags, tmp_path,
                                                                                         monkeypatch):
    """A metric start whose pose network says 3x the travel its depth implies (as the shipped
    one does in the held-out warehouse, driven slower than its training scenes) anchors a
    fine-tune without odometry or camera height by translations fitted to its depth: the
    fitted multiplier is a third of the unscaled start's and the anchor lengths agree. A
    resumed run applies the recorded multiplier without fitting again."""
    monkeypatch.setattr(finetune_scale, "check_start_pixel_scale", lambda *args: 1.0)  # not what is tested
    data = BagDataConfig(height=HEIGHT, width=WIDTH, cache_dir=str(tmp_path / "cache"), val_fraction=0.3)
    datasets = build_bag_datasets([str(sample_bags / "sqlite3")], data)

    def plan(inflation, settings=None):
        settings = settings or make_settings([str(sample_bags / "sqlite3")], tmp_path / "out", data,
                                             init=str(SHIPPED), overrides=["runtime.progress=false"])
        start = load_checkpoint(SHIPPED, with_pose=True)
        start.pose_net.scale_translation_(inflation)
        return settings, finetune_scale.plan_scale(settings, datasets, start, progress=False)

    as_shipped, as_shipped_plan = plan(1.0)
    inflated, inflated_plan = plan(3.0)
    assert inflated.scale_source == finetune_scale.STARTING_MODEL and inflated_plan.speed_weight > 0
    assert inflated.translation_scale == pytest.approx(as_shipped.translation_scale / 3, rel=0.03)
    torch.testing.assert_close(inflated_plan.train_dataset.lengths, as_shipped_plan.train_dataset.lengths,
                               rtol=0.03, atol=0.0)

    def no_fit(*args, **kwargs):
        raise AssertionError("a resumed run fits the translations again")

    monkeypatch.setattr(finetune_scale, "consistent_translation_scale", no_fit)
    resumed, resumed_plan = plan(3.0, inflated)
    assert resumed.translation_scale == inflated.translation_scale
    torch.testing.assert_close(resumed_plan.train_dataset.lengths, inflated_plan.train_dataset.lengths)


def test_worse_finetune_keeps_the_metric_start(sample_bags, tmp_path, capsys, monkeypatch):
    """A metric start (the shipped model) without odometry or camera height: a fine-tune made
    worse on purpose (a far too high rate) keeps the starting model as its output, says so in
    one line and records both errors; its unit holds, so it stays metric. Then --overwrite
    replaces the run, and a scale that does not hold is labelled relative with one warning."""
    output = tmp_path / "out"
    arguments = ["finetune-bag", str(sample_bags / "sqlite3"), *QUIET, "-o", str(output), "--init", str(SHIPPED),
                 *TINY_RUN, "--cache-dir", str(tmp_path / "cache")]
    assert dna_depth([*arguments, "--steps", "2", "optim.lr=0.02"]) == 0
    printed = capsys.readouterr()
    assert "keeping the metric starting model's unit" in printed.out
    report = json.loads((output / "report.json").read_text())
    assert report["photometric_best_checkpoint"] > report["photometric_before"]
    assert report["output_model"] == "starting model" and report["photometric_after"] == report["photometric_before"]
    worse = [line for line in printed.err.splitlines() if "made the validation photometric error worse" in line]
    assert len(worse) == 1 and "the output is the starting model" in worse[0]
    shipped = read_metadata(SHIPPED)
    assert report["scale_source"] == "starting model" and report["metric"]
    assert report["metres_per_unit"] == pytest.approx(shipped.depth_scale)
    assert report["scale_checks"]["depth_ratio_to_start"] == pytest.approx(1.0)
    # At 96x64 the shipped model runs at another pixel scale than its own: measured, said in
    # one line, and the start it keeps stays at its own size, unit and preparation.
    assert report["scale_checks"]["pixel_scale_ratio"] > 0
    assert len([line for line in (printed.out + printed.err).splitlines() if "its own pixel scale" in line]) == 1
    kept_metadata = read_metadata(output / FINETUNED_CHECKPOINT)
    assert (kept_metadata.height, kept_metadata.width, kept_metadata.preparation) == (
        shipped.height, shipped.width, shipped.preparation)
    kept, start = load_checkpoint(output / FINETUNED_CHECKPOINT).depth_net, load_checkpoint(SHIPPED).depth_net
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(kept.state_dict().values(),
                                                                 start.state_dict().values()))

    assert dna_depth([*arguments, "--steps", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    monkeypatch.setattr(finetune_scale, "depth_ratio", lambda *args, **kwargs: (1.6, 0.01))
    assert dna_depth([*arguments, "--steps", "1", "--overwrite"]) == 0
    printed = capsys.readouterr()
    report = json.loads((output / "report.json").read_text())
    assert report["steps"] == 1 and report["scale_source"] == "none" and not report["metric"]
    assert report["metres_per_unit"] is None and report["depth_range_metres"] is None
    assert len([line for line in printed.err.splitlines() if "scale did not hold" in line]) == 1
    assert not read_metadata(output / FINETUNED_CHECKPOINT).metric
    assert not read_metadata(output / "training" / "last.safetensors").metric
