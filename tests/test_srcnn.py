"""SRCNN, ESPCN, VDSR (notebook 04's paper module)."""
import pytest
import torch

from course_utils import operators as ops, sr, srcnn


@pytest.mark.parametrize("name", ["bicubic", "srcnn", "espcn", "vdsr"])
@pytest.mark.parametrize("scale", [2, 3])
def test_models_map_low_res_y_to_high_res_y(name, scale):
    model = sr.build_model(name, scale)
    y = torch.rand(2, 1, 22, 21)
    assert model(y).shape == (2, 1, 22 * scale, 21 * scale)


def test_model_sizes_follow_the_papers():
    assert srcnn.SRCNN(3).n_parameters == 9 * 9 * 64 + 64 + 5 * 5 * 64 * 32 + 32 + 5 * 5 * 32 + 1
    assert srcnn.ESPCN(3).conv3.out_channels == 9          # s^2 sub-pixel channels
    convs = [m for m in srcnn.VDSR(3).body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 20 and all(m.kernel_size == (3, 3) for m in convs)


def test_vdsr_starts_at_bicubic_and_is_residual():
    y = torch.rand(1, 1, 16, 16)
    model = srcnn.VDSR(2, depth=4)
    assert torch.allclose(model(y), ops.Upsample(2)(y))
    torch.nn.init.normal_(model.body[-1].weight)
    assert not torch.allclose(model(y), ops.Upsample(2)(y))


def test_espcn_is_a_pixel_shuffle_of_low_res_features():
    model = srcnn.ESPCN(2)
    y = torch.rand(1, 1, 12, 12)
    f = torch.tanh(model.conv2(torch.tanh(model.conv1(y))))
    channels = model.conv3(f)                               # (1, 4, 12, 12) in low-res space
    out = model(y)
    for i in range(2):
        for j in range(2):
            assert torch.allclose(out[0, 0, i::2, j::2], channels[0, 2 * i + j], atol=1e-6)


def test_models_reject_bad_input():
    model = srcnn.SRCNN(3)
    with pytest.raises(ValueError, match="1 channel"):
        model(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="receptive field"):
        srcnn.VDSR(3)(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="scale"):
        srcnn.ESPCN(1)
    with pytest.raises(ValueError, match="name"):
        sr.build_model("edsr", 3)


def test_clip_gradients_bounds_every_entry():
    model = srcnn.SRCNN(2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 50.0)
    sr.clip_gradients(model, theta=0.01, lr=0.001)        # bound theta / lr = 10
    assert max(float(p.grad.abs().max()) for p in model.parameters()) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="theta"):
        sr.clip_gradients(model, theta=0, lr=0.1)


def test_multiply_adds_per_output_pixel():
    three_layers, espcn = srcnn.SRCNN(3), srcnn.ESPCN(3)
    assert srcnn.multiply_adds(three_layers) == pytest.approx(81 * 64 + 25 * 64 * 32 + 25 * 32)
    assert srcnn.multiply_adds(espcn) == pytest.approx((25 * 64 + 9 * 64 * 32 + 9 * 32 * 9) / 9)
    assert srcnn.multiply_adds(srcnn.Bicubic(3)) == 0


def test_plain_vdsr_is_not_residual_and_the_comparison_is_fair():
    y = torch.rand(1, 1, 12, 12)
    zero_plain = srcnn.VDSR(2, depth=4, residual=False, zero_last=True)
    assert torch.allclose(zero_plain(y), torch.zeros(1, 1, 24, 24))      # zero last layer, no bicubic added
    # the default plain network is He-initialised throughout, like the residual one built with zero_last=False:
    # the same initialisation scheme, so a residual-vs-plain comparison is not decided by the start
    torch.manual_seed(0)
    plain = srcnn.VDSR(2, depth=4, residual=False)
    torch.manual_seed(0)
    residual = srcnn.VDSR(2, depth=4, residual=True, zero_last=False)
    for a, b in zip(plain.parameters(), residual.parameters()):
        assert torch.equal(a, b)
    bicubic = srcnn.Bicubic(2)(y)
    assert torch.allclose(residual(y), plain(y) + bicubic, atol=1e-6)
