import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import operators as ops
from course_utils.images import load_skimage, modcrop


def pil_float_resize(image, size, method):
    """PIL's resize in float ("F") mode: PIL's own algorithm without its 8-bit intermediate rounding."""
    planes = [np.asarray(Image.fromarray(c.numpy().astype(np.float32), mode="F").resize(size, method))
              for c in image]
    return torch.from_numpy(np.stack(planes))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kernel, method", [("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)])
def test_downsample_matches_pil_away_from_border(scale, kernel, method):
    x = modcrop(load_skimage("astronaut", size=192), scale)
    ours = ops.Downsample(scale, kernel, clamp=False)(x)
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    theirs = pil_float_resize(x, (w, h), method)
    diff = (ours - theirs).abs()[:, 3:-3, 3:-3]
    assert diff.max() < 1 / 255


def test_downsample_8bit_pil_agrees_on_average():
    # PIL's 8-bit path rounds (and clips) between its passes: we still agree to well under a grey level on average
    x = load_skimage("coffee", size=240)
    ours = ops.Downsample(4)(x)
    pil = Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize((60, 60), Image.BICUBIC)
    theirs = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255).permute(2, 0, 1)
    assert (ours - theirs).abs()[:, 3:-3, 3:-3].mean() < 0.5 / 255


@pytest.mark.parametrize("kernel, method", [("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)])
def test_upsample_matches_pil_away_from_border(kernel, method):
    low = load_skimage("chelsea", size=40)
    ours = ops.Upsample(3, kernel, clamp=False)(low)
    theirs = pil_float_resize(low, (120, 120), method)
    assert (ours - theirs).abs()[:, 12:-12, 12:-12].max() < 1 / 255


def test_resize_matrix_rows_are_averages_and_constant_is_preserved():
    for n_in, n_out in [(12, 4), (9, 3), (5, 20)]:
        m = ops.resize_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in)
        assert torch.allclose(m.sum(1), torch.ones(n_out, dtype=m.dtype))
    flat = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(ops.Downsample(4)(flat), torch.full((3, 4, 4), 0.3))


def test_downsample_is_linear_and_batched(rgb):
    down = ops.Downsample(2, clamp=False)
    a, b = rgb, rgb.flip(-1)
    assert torch.allclose(down(0.3 * a + 0.7 * b), 0.3 * down(a) + 0.7 * down(b), atol=1e-6)
    batch = down(torch.stack([a, b]))
    assert batch.shape == (2, 3, 24, 24)
    assert torch.allclose(batch[1], down(b))


def test_noise_is_deterministic_given_generator_and_has_right_sigma():
    x = torch.full((3, 128, 128), 0.5)
    noise = ops.GaussianNoise(25, clip=False)
    y1 = noise(x, torch.Generator().manual_seed(3))
    y2 = noise(x, torch.Generator().manual_seed(3))
    y3 = noise(x, torch.Generator().manual_seed(4))
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert (y1 - x).std().item() == pytest.approx(25 / 255, rel=0.03)
    clipped = ops.GaussianNoise(100)(x, torch.Generator().manual_seed(0))
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_blur_preserves_mean_and_smooths(rgb):
    blurred = ops.GaussianBlur(2.0)(rgb)
    assert blurred.shape == rgb.shape
    assert blurred.mean().item() == pytest.approx(rgb.mean().item(), abs=2e-3)
    tv = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()  # noqa: E731
    assert tv(blurred) < 0.6 * tv(rgb)


def test_masks():
    g = torch.Generator().manual_seed(0)
    m = ops.bernoulli_mask((64, 64), drop=0.5, generator=g)
    assert m.shape == (1, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert m.mean().item() == pytest.approx(0.5, abs=0.05)
    assert torch.equal(m, ops.bernoulli_mask((64, 64), 0.5, torch.Generator().manual_seed(0)))
    blocks = ops.block_mask((64, 64), n_blocks=3, block_size=8, generator=g)
    assert 1 - 3 * 64 / 4096 <= blocks.mean().item() < 1
    text = ops.text_mask((96, 128))
    assert text.shape == (1, 1, 96, 128) and 0.5 < text.mean().item() < 0.99
    assert torch.equal(text, ops.text_mask((96, 128)))


def test_inpaint_and_compose(rgb):
    mask = ops.bernoulli_mask(rgb.shape[-2:], 0.3, torch.Generator().manual_seed(1))
    y = ops.Inpaint(mask)(rgb)
    assert torch.equal(y[:, mask[0, 0] == 0], torch.zeros_like(y[:, mask[0, 0] == 0]))
    assert torch.equal(y[:, mask[0, 0] == 1], rgb[:, mask[0, 0] == 1])
    chain = ops.compose(ops.GaussianBlur(1.0), ops.Downsample(2), ops.GaussianNoise(10))
    assert not chain.linear
    g = torch.Generator().manual_seed(0)
    out = chain(rgb, g)
    manual = ops.GaussianNoise(10)(ops.Downsample(2)(ops.GaussianBlur(1.0)(rgb)), torch.Generator().manual_seed(0))
    assert out.shape == (3, 24, 24) and torch.allclose(out, manual)


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_images_are_refused_with_the_argument_named(rgb):
    down = ops.Downsample(2)
    with pytest.raises(ValueError, match=r"x must have shape .*got shape \(48, 48\)"):
        down(rgb[0])
    with pytest.raises(TypeError, match="x must be a floating-point"):
        down((rgb * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"x values must lie in \[0, 1\]"):
        down(rgb * 2)
    bad = rgb.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        down(bad)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        down(rgb.numpy())


def test_bad_parameters_are_refused(rgb):
    with pytest.raises(ValueError, match="not divisible by scale=5"):
        ops.Downsample(5)(rgb)
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        ops.Downsample(0)
    with pytest.raises(TypeError, match="scale must be an integer"):
        ops.Downsample(2.5)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        ops.GaussianNoise(-1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ops.GaussianBlur(0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        ops.Downsample(2, kernel="nearest")
    with pytest.raises(ValueError, match="drop must be <= 1"):
        ops.bernoulli_mask(8, drop=1.5)
    with pytest.raises(ValueError, match="too small for a blur"):
        ops.GaussianBlur(5)(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="generator"):
        ops.GaussianNoise(5)(rgb, generator=3)
    with pytest.raises(TypeError, match=r"operators\[1\]"):
        ops.Compose(ops.Identity(), lambda x: x)


def test_mask_of_wrong_shape_is_refused(rgb):
    with pytest.raises(ValueError, match="mask of size .* does not match x"):
        ops.Inpaint(torch.ones(32, 32))(rgb)
    with pytest.raises(ValueError, match="only 0 .* and 1"):
        ops.Inpaint(torch.full((48, 48), 0.5))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        ops.Inpaint(np.ones((48, 48)))


# ------------------------------------------------------------------------------ properties of every operator

def _all_operators(size=24):
    mask = ops.bernoulli_mask(size, 0.5, torch.Generator().manual_seed(0))
    return {"identity": ops.Identity(), "noise": ops.GaussianNoise(25), "down": ops.Downsample(2),
            "down_lanczos": ops.Downsample(3, kernel="lanczos"), "up": ops.Upsample(2), "blur": ops.GaussianBlur(1.0),
            "inpaint": ops.Inpaint(mask), "compose": ops.Compose(ops.GaussianBlur(1.0), ops.Downsample(2)),
            "compose_noisy": ops.Compose(ops.Downsample(2), ops.GaussianNoise(10))}


@pytest.mark.parametrize("name", list(_all_operators()))
def test_operator_properties(name):
    op = _all_operators()[name]
    g = torch.Generator().manual_seed(1)
    x, y = 0.2 + 0.6 * torch.rand(2, 3, 24, 24, generator=g)      # values far from 0 and 1: no clipping
    if op.linear:   # A(a x + b y) = a A(x) + b A(y)
        assert torch.allclose(op(0.3 * x + 0.7 * y), 0.3 * op(x) + 0.7 * op(y), atol=1e-5)
        batch = op(torch.stack([x, y]))                            # batching: the same as one by one
        assert torch.allclose(batch[0], op(x), atol=1e-6) and torch.allclose(batch[1], op(y), atol=1e-6)
    else:           # random: seeded draws repeat, other seeds differ
        same = op(x, torch.Generator().manual_seed(5)), op(x, torch.Generator().manual_seed(5))
        assert torch.equal(*same)
        assert not torch.equal(same[0], op(x, torch.Generator().manual_seed(6)))
    out = op(x.double(), torch.Generator().manual_seed(0))        # dtype kept
    assert out.dtype == torch.float64 and out.dim() == 3
    with pytest.raises(ValueError, match="x contains NaN"):
        op(torch.full((3, 24, 24), float("nan")))
    with pytest.raises(ValueError, match=r"x values must lie in \[0, 1\]"):
        op(x * 3)


def test_downsample_projection_is_the_nearest_consistent_image():
    gen = torch.Generator().manual_seed(0)
    A = ops.Downsample(4, clamp=False)
    x, low = torch.rand(2, 3, 32, 24, generator=gen), torch.rand(2, 3, 8, 6, generator=gen)
    p = A.project(x, low)
    assert torch.allclose(A.forward(p, None), low, atol=1e-5)                # explains the input exactly
    assert torch.allclose(A.project(p, low), p, atol=1e-5)                   # a projection: idempotent
    consistent = A.project(torch.rand(2, 3, 32, 24, generator=gen), low)    # any other consistent image is farther
    assert (p - x).norm() < (consistent - x).norm()
    assert torch.allclose(A.project(x, A.forward(x, None)), x, atol=1e-5)    # already consistent: unchanged
    with pytest.raises(ValueError, match="low must be 8x6"):
        A.project(x, low[..., :5])
