"""DNA-Depth and pose networks: sizes against the published figures, shapes, input checks,
train/eval behaviour, encoder variants and ImageNet weight loading."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from dna_depth_core.geometry.pose import pose_vector_to_transform
from dna_depth_core.networks import PoseNet, create_depth_net


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return create_depth_net("dna_depth_b0")


@pytest.mark.parametrize(("name", "total"), [("dna_depth_b0", 4.150e6), ("dna_depth_b1", 6.656e6)])
def test_parameter_counts_match_the_paper(name, total):
    net = create_depth_net(name)
    assert _parameters(net) == pytest.approx(total, rel=0.005)
    assert _parameters(net.decoder) == pytest.approx(0.5546e6, rel=0.0005)


@pytest.mark.parametrize(("name", "gmacs"), [("dna_depth_b0", 9.87), ("dna_depth_b1", 10.35)])
def test_multiply_adds_at_640x192_match_the_paper(name, gmacs):
    fvcore = pytest.importorskip("fvcore.nn")
    net = create_depth_net(name).eval()
    analysis = fvcore.FlopCountAnalysis(net, torch.rand(1, 3, 192, 640))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    assert analysis.total() / 1e9 == pytest.approx(gmacs, rel=0.03)  # fvcore counts multiply-adds


def test_output_shapes_train_and_eval(b0):
    images = torch.rand(2, 3, 64, 96)
    b0.train()
    disparities = b0(images)
    assert [tuple(d.shape) for d in disparities] == [(2, 1, 64 >> s, 96 >> s) for s in range(4)]
    assert all(((d > 0) & (d < 1)).all() for d in disparities)
    b0.eval()
    with torch.no_grad():
        disparity = b0(images)
        assert disparity.shape == (2, 1, 64, 96)
        assert len(b0(images, multiscale=True)) == 4


@pytest.mark.parametrize(
    ("images", "problem"),
    [
        (torch.rand(1, 3, 64, 80), "64x80"),
        (torch.rand(1, 4, 64, 64), r"shape \(1, 4, 64, 64\)"),
        (torch.rand(3, 64, 64), r"shape \(3, 64, 64\)"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "torch.uint8"),
    ],
    ids=["not-multiple-of-32", "wrong-channels", "no-batch", "integer"],
)
def test_bad_input_names_the_expected_shape(b0, images, problem):
    with pytest.raises(ValueError, match=problem) as error:
        b0(images)
    assert "(B, 3, H, W)" in str(error.value)


def test_dropout_on_the_two_deepest_levels_only_in_training(b0):
    seen = []
    hook = b0.decoder.deep_dropout.register_forward_hook(lambda _, inputs, output: seen.append((inputs[0], output)))
    images = torch.rand(2, 3, 64, 64)
    try:
        with torch.no_grad():
            b0.train()
            b0(images)
            train_calls, seen[:] = list(seen), []
            b0.eval()
            b0(images)
    finally:
        hook.remove()
    assert [features.shape[1] for features, _ in train_calls] == [112, 320]  # strides 16 and 32
    for features, dropped in train_calls:
        kept = dropped != 0
        assert 0.4 < kept.float().mean() < 0.6
        torch.testing.assert_close(dropped[kept], 2 * features[kept])  # p = 0.5, rescaled
    assert all(torch.equal(features, output) for features, output in seen)
    assert len(seen) == 2


@pytest.mark.parametrize("encoder", ["efficientnet_b0", "efficientnet_b1"])
def test_non_tensorflow_encoders_build(encoder):
    net = create_depth_net("dna_depth_b0", encoder=encoder).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_unknown_encoder_is_rejected():
    with pytest.raises(ValueError, match="unknown timm encoder"):
        create_depth_net("dna_depth_b0", encoder="efficientnet_b99")


def test_pretrained_weights_from_a_local_file(tmp_path):
    classifier = timm.create_model("tf_efficientnet_b0")
    generator = torch.Generator().manual_seed(3)
    weights = {k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
               for k, v in classifier.state_dict().items()}
    path = tmp_path / "tf_efficientnet_b0.safetensors"
    save_file(weights, str(path))

    encoder_state = create_depth_net("dna_depth_b0", pretrained=path).encoder.state_dict()
    assert len(encoder_state) > 300
    for key, value in encoder_state.items():
        assert torch.equal(value, weights[key]), key

    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_depth_net("dna_depth_b0", pretrained=tmp_path / "missing.safetensors")


def test_pretrained_download_offline_gives_clear_error(monkeypatch):
    original = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise ConnectionError("Failed to resolve 'huggingface.co'")
        return original(name, pretrained=False, **kwargs)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="could not download ImageNet weights") as error:
        create_depth_net("dna_depth_b0", pretrained=True)
    assert "pretrained='path/to/weights.safetensors'" in str(error.value)


def test_pose_net_outputs_become_transforms():
    torch.manual_seed(0)
    pose_net = PoseNet().eval()
    earlier, later = torch.rand(2, 3, 3, 64, 96)
    with torch.no_grad():
        axis_angle, translation = pose_net(earlier, later)
    assert axis_angle.shape == translation.shape == (3, 3)
    assert axis_angle.abs().max() > 0

    forward = pose_vector_to_transform(axis_angle, translation)
    backward = pose_vector_to_transform(axis_angle, translation, invert=True)
    assert forward.shape == backward.shape == (3, 4, 4)
    torch.testing.assert_close(forward[:, 3], torch.tensor([[0.0, 0.0, 0.0, 1.0]]).expand(3, 4))
    torch.testing.assert_close(forward[:, :3, 3], translation)
    torch.testing.assert_close(forward @ backward, torch.eye(4).expand(3, 4, 4), atol=1e-6, rtol=0)

    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        pose_net(earlier, later[:, :, :32])


@pytest.mark.parametrize("shape, channels_last, with_bias, input_grad", [
    ((2, 5, 7, 9), False, True, True),
    ((2, 8, 2, 3), True, True, True),
    ((1, 4, 12, 6), True, False, False),  # a first layer: only the weights learn
])
def test_reflection_padded_conv_trains_like_pad_then_convolve(shape, channels_last, with_bias, input_grad):
    """The border-term form (used when CPU training records the call) gives the padded
    form's output and gradients, to float rounding, on any size, layout and bias."""
    from dna_depth_core.networks.reflection_conv import reflection_padded_conv3x3

    generator = torch.Generator().manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape, generator=generator).to(memory_format=memory_format)
    weight = torch.randn(6, shape[1], 3, 3, generator=generator).to(memory_format=memory_format)
    bias = torch.randn(6, generator=generator) if with_bias else None
    upstream = torch.randn(shape[0], 6, *shape[2:], generator=generator)
    results = []
    for compute in (reflection_padded_conv3x3,
                    lambda *args: torch.nn.functional.conv2d(torch.nn.functional.pad(args[0], (1, 1, 1, 1),
                                                                                     mode="reflect"), *args[1:])):
        leaves = [x.clone().requires_grad_(input_grad), weight.clone().requires_grad_(),
                  bias.clone().requires_grad_() if with_bias else None]
        out = compute(*leaves)
        out.backward(upstream)
        results.append([out.detach()] + [leaf.grad for leaf in leaves if leaf is not None and leaf.requires_grad])
    assert len(results[0]) == len(results[1])
    for ours, padded in zip(*results):
        torch.testing.assert_close(ours, padded, rtol=1e-5, atol=1e-5)


def test_decoder_convolutions_train_without_the_padded_copy(b0):
    """In CPU training the decoder's Conv3x3 takes the border-term path; without autograd
    it is exactly the padded convolution."""
    conv = b0.decoder.nodes["x1"].conv
    x = torch.randn(2, conv[1].in_channels, 6, 10)
    trained = conv(x.requires_grad_())
    assert type(trained.grad_fn).__name__ == "_ReflectionPaddedConv3x3Backward"
    with torch.no_grad():
        evaluated = conv(x)
    assert torch.equal(evaluated, conv[1](conv[0](x.detach())))
    torch.testing.assert_close(trained.detach(), evaluated, rtol=1e-5, atol=1e-5)


def test_decoder_training_rewrites_compute_what_its_modules_compute(b0, monkeypatch):
    """In CPU training the fusion nodes' pointwise + 3x3 pair runs as one convolution and
    the disparity heads (with the full-resolution stage's last pointwise convolution) as
    one per-sample convolution; outputs and every gradient equal the module-by-module form."""
    from dna_depth_core.networks import depth_net

    decoder = b0.decoder
    torch.manual_seed(1)
    # Batch 5: a group of 4 samples and a group of 1 in the heads' per-sample convolution.
    features = [torch.randn(5, c, 64 // s, 96 // s) for c, s in zip(b0.encoder.feature_info.channels(),
                                                                    (2, 4, 8, 16, 32))]
    weights = [torch.rand(5, 1, 64 // 2 ** s, 96 // 2 ** s) for s in range(4)]

    def train_once():
        decoder.zero_grad(set_to_none=True)
        inputs = [f.clone().requires_grad_() for f in features]
        torch.manual_seed(2)  # the same dropout masks in both runs
        outputs = decoder(inputs)
        sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
        return outputs, [i.grad for i in inputs], {n: p.grad for n, p in decoder.named_parameters()}

    folded_heads, merged_nodes = [], []
    head_logits, merged_weights = depth_net.DisparityHead.folded_logits, depth_net.merged_pointwise_conv_weights
    monkeypatch.setattr(depth_net.DisparityHead, "folded_logits",
                        lambda self, *a, **k: folded_heads.append(1) or head_logits(self, *a, **k))
    monkeypatch.setattr(depth_net, "merged_pointwise_conv_weights",
                        lambda *a: merged_nodes.append(1) or merged_weights(*a))
    rewritten = train_once()
    assert len(folded_heads) == 4
    assert len(merged_nodes) == sum(node.merge_fuse_pointwise for node in decoder.nodes.values()) == 4  # level 1
    monkeypatch.setattr(depth_net, "cpu_training_rewrites_apply", lambda *a: False)
    plain = train_once()
    for ours, reference in zip(rewritten[0] + rewritten[1], plain[0] + plain[1]):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert rewritten[2].keys() == plain[2].keys()
    for name, reference in plain[2].items():
        scale = reference.abs().max().clamp_min(1e-6)
        torch.testing.assert_close(rewritten[2][name] / scale, reference / scale, rtol=0, atol=2e-5, msg=name)
