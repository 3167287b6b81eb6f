"""The fused inference network's float64 check: once per network, and never for a wrong rewrite."""

import pytest
import torch

from dna_depth_core.inference import fused
from dna_depth_core.networks import create_depth_net


@pytest.fixture
def checks(tmp_path, monkeypatch):
    """The calls of the float64 check, with an empty verdict cache (memory and folder)."""
    monkeypatch.setenv("DNA_DEPTH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fused, "_VERIFIED", set())
    calls = []
    check = fused._check_rewrite

    def counted(*args):
        calls.append(args)
        check(*args)

    monkeypatch.setattr(fused, "_check_rewrite", counted)
    return calls


def test_the_check_runs_once_per_network_and_options(checks, monkeypatch):
    torch.manual_seed(0)
    net = create_depth_net("dna_depth_b0")
    fused.FusedDepthNet(net)
    fused.FusedDepthNet(net)
    assert len(checks) == 1
    monkeypatch.setattr(fused, "_VERIFIED", set())  # as in a new process: the marker file answers
    fused.FusedDepthNet(net)
    assert len(checks) == 1
    fused.FusedDepthNet(net, **fused.PORTABLE_REWRITES)
    assert len(checks) == 2
    with torch.no_grad():
        next(net.decoder.parameters()).add_(0.01)  # fine-tuned weights: a network of its own
    fused.FusedDepthNet(net)
    assert len(checks) == 3


def test_a_wrong_rewrite_is_refused_every_time(checks, monkeypatch, tmp_path):
    transposed = fused.upsampled_depthwise_as_transposed

    def slightly_wrong(depthwise):  # a tap off by 0.1 %: the kind of slip the check is for
        conv = transposed(depthwise)
        conv.weight.data[:, :, 0, 0] *= 1.001
        return conv

    monkeypatch.setattr(fused, "upsampled_depthwise_as_transposed", slightly_wrong)
    torch.manual_seed(0)
    net = create_depth_net("dna_depth_b0")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="differs from the original"):
            fused.FusedDepthNet(net)
    assert len(checks) == 2
    assert not list(tmp_path.rglob("*.ok"))
