"""The trainer on real synthetic data at a tiny resolution: learning, exact resume, DDP, config."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset, Subset

from dna_depth_core.checkpoint import load_checkpoint, read_metadata
from dna_depth_core.cli import main as cli_main
from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
from dna_depth_core.errors import UserError
from dna_depth_core.training import (
    BEST_CHECKPOINT, LAST_CHECKPOINT, STATE_FILE_NAME, Trainer, load_train_config, speed_loss,
)

HEIGHT, WIDTH = 64, 96


def _triplets(seed: int = 0) -> SyntheticTripletDataset:
    """One synthetic street sequence of 6 frames: 4 triplets at 64x96."""
    return SyntheticTripletDataset(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=6), 1, seed)


@pytest.fixture(scope="module")
def triplets():
    return _triplets()


def _config(output_dir, *overrides):
    return load_train_config(None, [
        "data.dataset=synthetic", f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2",
        "data.num_workers=0", "runtime.progress=false", "runtime.checkpoint_every_steps=0",
        "runtime.log_every_steps=1", "runtime.image_every_steps=0", f"runtime.output_dir={output_dir}",
        *overrides,
    ])


def _repeat(dataset: Dataset, times: int) -> Subset:
    return Subset(dataset, [index % len(dataset) for index in range(times * len(dataset))])


def test_training_lowers_photometric_loss_and_writes_checkpoints(tmp_path, triplets):
    # Overfit 4 triplets for 30 steps (one epoch of the repeated set): a real optimisation
    # of the real networks and loss, which must bring the photometric error down.
    config = _config(tmp_path, "data.batch_size=4", "optim.lr=1e-3", "optim.epochs=1",
                     "runtime.log_every_steps=5", "runtime.image_every_steps=10")
    summary = Trainer(config, _repeat(triplets, 30), val_dataset=triplets).fit()

    photometric = [record["photometric"] for record in summary.history]
    assert len(photometric) == 30 and summary.steps == 30 and summary.stop_reason == "completed"
    first, last = sum(photometric[:5]) / 5, sum(photometric[-5:]) / 5
    assert last < 0.9 * first, f"photometric loss did not go down: first 5 steps {first:.4f}, last 5 {last:.4f}"

    # Synthetic samples carry depth_gt, so best.safetensors is chosen on AbsRel.
    assert summary.best_criterion == "abs_rel" and 0 < summary.best_value < 1
    assert summary.validation[0]["metrics"]["photometric"] > 0
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT, STATE_FILE_NAME, "config.yaml"):
        assert (tmp_path / name).is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    metadata = read_metadata(tmp_path / LAST_CHECKPOINT)
    assert (metadata.height, metadata.width, metadata.metric) == (HEIGHT, WIDTH, False)
    assert metadata.pose_encoder == "resnet18"
    assert metadata.provenance["step"] == 30 and metadata.provenance["epochs_completed"] == 1
    # Counted as the progress bar shows them: step 1 and epoch 1 are the first.
    assert [record["epoch"] for record in summary.history] == [1] * 30
    assert summary.validation[0]["epoch"] == 1 and (summary.epochs_completed, summary.epochs) == (1, 1.0)
    assert metadata.provenance["config"]["optim"]["lr"] == pytest.approx(1e-3)
    assert metadata.provenance["validation"]["criterion"] == "abs_rel"
    checkpoint = load_checkpoint(tmp_path / LAST_CHECKPOINT, with_pose=True)
    assert checkpoint.pose_net is not None


class SimulatedKill(Exception):
    """Stands for the process being killed: nothing after it runs."""


class CrashAfter(Dataset):
    """Wraps a dataset and raises :class:`SimulatedKill` after ``limit`` samples were read."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        # +1: the Trainer reads sample 0 once at start to record how the frames were prepared.
        self.dataset, self.limit, self.reads = dataset, limit + 1, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        self.reads += 1
        if self.reads > self.limit:
            raise SimulatedKill
        return self.dataset[index]


def test_resume_after_a_kill_continues_exactly(tmp_path, triplets):
    # 8 samples, batch 2: 4 steps per epoch; 6 steps cross an epoch boundary and the
    # learning-rate milestone at epoch 1.
    data = _repeat(triplets, 2)
    overrides = ["optim.max_steps=6", "optim.lr_milestones=[1]", "runtime.seed=3"]
    uninterrupted = Trainer(_config(tmp_path / "a", *overrides), data).fit()

    # The same run killed while loading step 4; its last step checkpoint is from step 3,
    # in the middle of epoch 0, so resuming must skip the batches already seen.
    crashing = Trainer(_config(tmp_path / "b", *overrides, "runtime.checkpoint_every_steps=3"), CrashAfter(data, 6))
    with pytest.raises(SimulatedKill):
        crashing.fit()
    assert read_metadata(tmp_path / "b" / LAST_CHECKPOINT).provenance["step"] == 3
    expected = uninterrupted.history
    # Same seed, same run (TensorBoard stores float32).
    assert logged_losses(crashing) == pytest.approx([r["loss"] for r in expected[:3]], rel=1e-6)

    resumed = Trainer(_config(tmp_path / "b", *overrides), data).fit(resume=True)
    assert [r["step"] for r in resumed.history] == [4, 5, 6]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in expected[3:]]
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in expected[3:]]
    assert resumed.steps == 6 and resumed.epochs_completed == 1
    final_a = load_checkpoint(tmp_path / "a" / LAST_CHECKPOINT).depth_net.state_dict()
    final_b = load_checkpoint(tmp_path / "b" / LAST_CHECKPOINT).depth_net.state_dict()
    assert all(torch.equal(final_a[key], final_b[key]) for key in final_a)


def test_weight_average_is_what_checkpoints_hold_and_it_resumes_exactly(tmp_path, triplets):
    data = _repeat(triplets, 2)
    overrides = ["optim.ema_decay=0.9", "runtime.seed=3", "optim.lr=1e-3"]

    def float_weights(module):
        return {key: value.clone() for key, value in module.state_dict().items() if value.is_floating_point()}

    # Known answer: timm's warm-up averages step k (1-based) with decay min(0.9, 1 - k ** -2/3),
    # which is 0 at the first step (the average starts as a copy) and 1 - 2 ** -2/3 at the second.
    one_step = Trainer(_config(tmp_path / "one", *overrides, "optim.max_steps=1"), data)
    one_step.fit()
    after_first = float_weights(one_step.depth_net)
    saved = load_checkpoint(tmp_path / "one" / LAST_CHECKPOINT).depth_net.state_dict()
    assert all(torch.allclose(saved[key], value) for key, value in after_first.items())

    two_steps = Trainer(_config(tmp_path / "two", *overrides, "optim.max_steps=2"), data)
    two_steps.fit()
    decay = 1 - 2 ** (-2 / 3)
    saved = load_checkpoint(tmp_path / "two" / LAST_CHECKPOINT).depth_net.state_dict()
    raw = float_weights(two_steps.depth_net)
    assert any(not torch.allclose(saved[key], raw[key]) for key in raw), "the checkpoint holds the raw weights"
    for key, value in raw.items():
        torch.testing.assert_close(saved[key], decay * after_first[key] + (1 - decay) * value, rtol=1e-5, atol=1e-6)

    # A killed run resumes its averages too: the same final checkpoint as without the kill.
    uninterrupted = _config(tmp_path / "a", *overrides, "optim.max_steps=4")
    Trainer(uninterrupted, data).fit()
    killed = _config(tmp_path / "b", *overrides, "optim.max_steps=4", "runtime.checkpoint_every_steps=2")
    with pytest.raises(SimulatedKill):
        Trainer(killed, CrashAfter(data, 4)).fit()
    with pytest.raises(UserError, match="optim.ema_decay"):
        Trainer(_config(tmp_path / "b", "runtime.seed=3", "optim.lr=1e-3", "optim.max_steps=4"), data).fit(resume=True)
    Trainer(_config(tmp_path / "b", *overrides, "optim.max_steps=4"), data).fit(resume=True)
    final_a = load_checkpoint(tmp_path / "a" / LAST_CHECKPOINT, with_pose=True)
    final_b = load_checkpoint(tmp_path / "b" / LAST_CHECKPOINT, with_pose=True)
    for network in ("depth_net", "pose_net"):
        a, b = getattr(final_a, network).state_dict(), getattr(final_b, network).state_dict()
        assert all(torch.equal(a[key], b[key]) for key in a), network


def logged_losses(trainer: Trainer) -> list[float]:
    """Losses of the steps a (crashed) trainer completed, read back from its TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trainer.output_dir / "tensorboard"))
    events.Reload()
    return [event.value for event in sorted(events.Scalars("train/loss"), key=lambda event: event.step)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, output_dir: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    config = _config(output_dir, "data.batch_size=1", "optim.max_steps=3", "runtime.device=cpu")
    trainer = Trainer(config, _triplets())
    summary = trainer.fit()
    torch.save({
        "depth": trainer.depth_net.state_dict(),
        "pose": trainer.pose_net.state_dict(),
        "losses": [record["loss"] for record in summary.history],
        "world_size": trainer.context.world_size,
    }, f"{output_dir}/rank{rank}.pt")


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert [result["world_size"] for result in ranks] == [2, 2]
    assert len(ranks[0]["losses"]) == len(ranks[1]["losses"]) == 3
    # Each rank trained on its own shard of the data ...
    assert ranks[0]["losses"] != ranks[1]["losses"]
    # ... yet gradients were averaged, so the weights are the same everywhere.
    for part in ("depth", "pose"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), f"{part}.{key} differs between ranks"
    saved = load_checkpoint(tmp_path / LAST_CHECKPOINT).depth_net.state_dict()
    assert all(torch.equal(saved[key], ranks[0]["depth"][key]) for key in saved)
    assert read_metadata(tmp_path / LAST_CHECKPOINT).provenance["processes"] == 2


def test_speed_supervision_makes_a_metric_checkpoint_and_init_loads_it(tmp_path, triplets):
    summary = Trainer(_config(tmp_path / "metric", "speed_weight=0.05", "optim.max_steps=1"), triplets).fit()
    assert summary.history[0]["speed"] > 0
    metadata = read_metadata(tmp_path / "metric" / LAST_CHECKPOINT)
    assert metadata.metric and metadata.depth_scale == 1.0

    fine_tune = Trainer(_config(tmp_path / "fine"), triplets, init_checkpoint=tmp_path / "metric" / LAST_CHECKPOINT)
    stored = load_checkpoint(tmp_path / "metric" / LAST_CHECKPOINT, with_pose=True)
    for mine, theirs in ((fine_tune.depth_net, stored.depth_net), (fine_tune.pose_net, stored.pose_net)):
        reference = theirs.state_dict()
        assert all(torch.equal(value, reference[key]) for key, value in mine.state_dict().items())


def test_pose_warmup_holds_the_depth_network_and_trains_the_pose_network(tmp_path, triplets):
    trainer = Trainer(_config(tmp_path, "optim.lr=1e-3", "optim.max_steps=3", "optim.pose_warmup_steps=2"), triplets)
    depth_start = {key: value.clone() for key, value in trainer.depth_net.state_dict().items()}
    pose_start = {key: value.clone() for key, value in trainer.pose_net.state_dict().items()}

    def changed(network, start):
        """Names of the parameters and buffers (batch-norm statistics) that differ from ``start``."""
        return [key for key, value in network.state_dict().items() if not torch.equal(value, start[key])]

    trainer.fit()  # stops at max_steps=3: two warm-up steps, then one step of both networks
    assert trainer.step == 3
    assert changed(trainer.pose_net, pose_start) and changed(trainer.depth_net, depth_start)
    assert any("running_mean" in key for key in changed(trainer.depth_net, depth_start))
    held = Trainer(_config(tmp_path / "held", "optim.lr=1e-3", "optim.max_steps=2", "optim.pose_warmup_steps=2"),
                   triplets)
    depth_start = {key: value.clone() for key, value in held.depth_net.state_dict().items()}
    held.fit()
    assert changed(held.depth_net, depth_start) == []


def test_speed_loss_known_answer():
    translations = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    assert speed_loss(translations, torch.tensor([[5.0, 2.0]])).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        speed_loss(translations, torch.tensor([5.0, 2.0]))


def test_speed_supervision_without_distances_is_a_user_error(tmp_path, triplets):
    class NoDistance(Dataset):
        def __len__(self):
            return len(triplets)

        def __getitem__(self, index):
            sample = dict(triplets[index])
            del sample["source_distance"]
            return sample

    with pytest.raises(UserError, match="source_distance"):
        Trainer(_config(tmp_path, "speed_weight=0.1", "optim.max_steps=1"), NoDistance()).fit()


def test_config_yaml_overrides_and_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  dataset: synthetic\n  batch_size: 4\noptim:\n  lr: 2.0e-4\n")
    config = load_train_config(path, ["optim.epochs=3", "augmentation.hue=0.05"])
    assert (config.data.dataset, config.data.batch_size, config.optim.lr) == ("synthetic", 4, 2e-4)
    assert (config.optim.epochs, config.augmentation.hue) == (3, 0.05)
    # Untouched keys keep the paper's recipe.
    assert (config.data.height, config.data.width, config.optim.lr_milestones) == (192, 640, [35])
    assert config.loss.smoothness_weight == 1e-3 and config.augmentation.brightness == (0.8, 1.2)

    with pytest.raises(UserError, match="learning_rate"):
        load_train_config(path, ["optim.learning_rate=1"])
    with pytest.raises(UserError, match="data.height must be a positive multiple of 32"):
        load_train_config(path, ["data.height=100"])
    with pytest.raises(UserError, match="frame_offsets"):
        load_train_config(path, ["data.frame_offsets=[0,1,2]"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  dataset: [synthetic\n  height: 96\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_train_config(broken)


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: {lr: 1e-4\n")
    assert cli_main(["train", "--config", str(broken)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dna-depth train: error: config file") and "Traceback" not in error

    assert cli_main(["train", "data.dataset=imagenet"]) == 2
    assert "data.dataset must be one of" in capsys.readouterr().err

    assert cli_main(["train", "--print-config", "data.dataset=synthetic", "optim.lr=5e-4"]) == 0
    printed = capsys.readouterr().out
    assert "dataset: synthetic" in printed and "lr: 0.0005" in printed
