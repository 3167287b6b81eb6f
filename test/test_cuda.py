"""The CUDA lane: run where an NVIDIA GPU is present (``pytest -m cuda``), skipped elsewhere.

An AMP training step, fp16 and TensorRT inference within the accuracy budget of float32
on ground truth, an NCCL DDP start and the depth node on CUDA. ``benchmarks/gpu_check.sh``
runs these with the ``gpu`` extra installed.
"""

from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dna_depth_core.checkpoint import load_checkpoint
from dna_depth_core.inference.backends import backend_available
from dna_depth_core.checkpoint import shipped_checkpoint_path
from test_ros_node import image_msg, running_node, scene, serve

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (the cuda lane runs on GPU machines)"),
]
CUDA = torch.device("cuda")


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DNA_DEPTH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def test_amp_training_step_on_cuda(tmp_path):
    from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
    from dna_depth_core.training import Trainer, load_train_config

    config = load_train_config(None, [
        "data.dataset=synthetic", "data.height=64", "data.width=96", "data.batch_size=2", "data.num_workers=0",
        "runtime.device=cuda", "runtime.amp=true", "runtime.progress=false", "runtime.checkpoint_every_steps=0",
        "runtime.log_every_steps=1", "runtime.image_every_steps=0", f"runtime.output_dir={tmp_path}",
        "optim.max_steps=2",
    ])
    data = SyntheticTripletDataset(SyntheticSceneConfig(height=64, width=96, frames_per_sequence=6), 1, 0)
    trainer = Trainer(config, data)
    before = {key: value.detach().clone() for key, value in trainer.depth_net.state_dict().items()}
    summary = trainer.fit()
    assert summary.steps == 2 and all(np.isfinite(record["loss"]) for record in summary.history)
    assert next(trainer.depth_net.parameters()).device.type == "cuda"
    changed = [key for key, value in trainer.depth_net.state_dict().items()
               if value.is_floating_point() and not torch.equal(value.cpu(), before[key].cpu())]
    assert changed, "an AMP step changed no weight (gradients lost to float16 overflow?)"


@pytest.mark.parametrize("precision, backend", [
    ("fp16", "eager"), ("fp32", "tensorrt"), ("fp16", "tensorrt"), ("fp32", "onnxruntime"), ("fp16", "onnxruntime"),
])
def test_gpu_configurations_meet_the_accuracy_budget(precision, backend):
    from dna_depth_core.evaluation.precision_budget import budget_test_sets, measure_configurations

    if not backend_available(backend, CUDA):
        pytest.skip(f"{backend} is not installed for CUDA (pip install -e '.[gpu]')")
    checkpoint = load_checkpoint(shipped_checkpoint_path())
    metadata = checkpoint.metadata
    test_sets = budget_test_sets(metadata.height, metadata.width, sequences=1, frames=4)
    (result,) = measure_configurations(checkpoint.depth_net, metadata, CUDA, [(precision, backend)], test_sets,
                                       rounds=3, log=lambda line: None)
    assert result.verdict.met, f"{precision} on {backend}: {result.verdict}"
    if precision == "fp16":
        assert result.change.pixel_change_p99 > 0  # really ran in half precision


def test_tensorrt_engine_is_cached_and_reused():
    from dna_depth_core.inference import DepthEstimator
    from dna_depth_core.paths import cache_dir

    if not backend_available("tensorrt", CUDA):
        pytest.skip("TensorRT is not installed (pip install -e '.[gpu]')")
    checkpoint = load_checkpoint(shipped_checkpoint_path())
    first = DepthEstimator(checkpoint.depth_net, checkpoint.metadata, device="cuda", backend="tensorrt",
                           precision="fp16")
    engines = sorted(cache_dir("tensorrt").glob("*.engine"))
    assert len(engines) == 1 and "_fp16_" in engines[0].name
    second = DepthEstimator(checkpoint.depth_net, checkpoint.metadata, device="cuda", backend="tensorrt",
                            precision="fp16")
    assert sorted(cache_dir("tensorrt").glob("*.engine")) == engines
    images = torch.rand(3, 3, checkpoint.metadata.height, checkpoint.metadata.width, device="cuda")
    torch.testing.assert_close(first.predict_disparity(images), second.predict_disparity(images))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nccl_worker(rank: int, world_size: int, port: int, results: str) -> None:
    import os

    import torch.distributed as dist

    from dna_depth_core.networks import create_depth_net
    from dna_depth_core.training.distributed import setup_distributed, teardown_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    if world_size == 1:  # one GPU: a one-rank NCCL group, which setup_distributed then uses as is
        torch.cuda.set_device(0)
        dist.init_process_group("nccl", rank=0, world_size=1)
    context = setup_distributed("cuda")
    assert dist.get_backend() == "nccl" and context.device.type == "cuda"
    torch.manual_seed(rank)
    model = torch.nn.parallel.DistributedDataParallel(create_depth_net("dna_depth_b0").to(context.device),
                                                      device_ids=[context.device.index])
    model(torch.rand(1, 3, 64, 96, device=context.device), multiscale=False).mean().backward()
    gradient = next(p.grad for p in model.parameters() if p.grad is not None).detach().cpu()
    torch.save({"gradient": gradient}, f"{results}/rank{rank}.pt")
    teardown_distributed(context)
    if dist.is_initialized():
        dist.destroy_process_group()


def test_nccl_ddp_starts_and_averages_gradients(tmp_path):
    world_size = min(torch.cuda.device_count(), 2)
    mp.spawn(_nccl_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size, join=True)
    gradients = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)["gradient"] for rank in range(world_size)]
    assert all(torch.isfinite(g).all() for g in gradients)
    assert all(torch.equal(gradients[0], g) for g in gradients[1:])  # DDP averaged them across ranks


@pytest.mark.ros
def test_depth_node_runs_on_cuda(ros, tmp_path):
    from dna_depth_core.checkpoint import ModelMetadata, save_checkpoint
    from dna_depth_core.networks import create_depth_net

    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, create_depth_net("dna_depth_b0"), ModelMetadata(height=64, width=96))
    with running_node(ros, checkpoint, {"device": "cuda", "precision": "fp16"}) as (node, probe):
        assert node._estimator.device.type == "cuda" and node._estimator.precision == "fp16"
        outputs = serve(probe, image_msg(probe, scene()))
        depth = np.frombuffer(bytes(outputs["depth/image"].data), dtype=np.float32)
        assert np.isfinite(depth).any()


def test_record_made_on_cuda_is_what_auto_runs_there(tmp_path):
    from dna_depth_core.evaluation.precision_budget import calibrate_checkpoint
    from dna_depth_core.inference import DepthEstimator

    source = shipped_checkpoint_path()
    output = tmp_path / "measured.safetensors"
    record, _ = calibrate_checkpoint(source, output, CUDA, int8=False, sequences=1, frames=3, rounds=3,
                                     log=lambda line: None)
    cuda_entries = [entry for entry in record.configurations if entry.device == "cuda"]
    assert {entry.precision for entry in cuda_entries} >= {"fp32", "fp16"}
    estimator = DepthEstimator.from_checkpoint(output, device="cuda")
    fastest = record.fastest_within_budget("cuda", lambda precision, backend: True)
    assert (estimator.precision, estimator.backend) == (fastest.precision, fastest.backend)
    assert dataclasses.asdict(fastest)["met"]
