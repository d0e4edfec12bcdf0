"""Properties every registered super-resolution method must have (the ``SRModel`` contract), parametrised over
``course_utils.sr.MODELS``: shapes and range, batch independence, device and dtype kept, determinism given a
generator, bad input refused by name. Each method is built with its registered ``tiny`` configuration."""
import pytest
import torch

from course_utils import sr

sr.import_paper_modules()
NAMES = sorted(sr.MODELS)


def _tiny(name):
    spec = sr.MODELS[name]
    scale = spec.scales[0] if spec.scales else 2
    torch.manual_seed(0)
    return sr.build_model(name, scale, **spec.tiny), scale


def _low(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _sides(model):
    """(h, w) of a low-res test input: 3r x 2r for models that take any size >= their receptive field r, or the one
    size a fixed-size model takes (``low_size``, e.g. PULSE: its generator's size / scale)."""
    fixed = getattr(model, "low_size", None)
    if fixed is not None:
        return fixed, fixed
    r = max(model.receptive_field, 4)
    return 3 * r, 2 * r


@pytest.mark.parametrize("name", NAMES)
def test_shapes_range_and_grey_or_rgb(name):
    model, s = _tiny(name)
    assert isinstance(model, sr.SRModel) and model.scale == s
    h, w = _sides(model)
    rgb = model.upscale(_low(3, h, w), generator=torch.Generator().manual_seed(0))
    assert rgb.shape == (3, s * h, s * w) and rgb.dtype == torch.float32
    assert 0 <= rgb.min() and rgb.max() <= 1
    grey = model.upscale(_low(1, h, w), generator=torch.Generator().manual_seed(0))
    assert grey.shape == (1, s * h, s * w)


@pytest.mark.parametrize("name", NAMES)
def test_batch_independence_dtype_and_determinism(name):
    model, s = _tiny(name)
    side = _sides(model)[1]
    batch = _low(2, 3, side, side)
    both = model.upscale(batch, generator=torch.Generator().manual_seed(3))
    again = model.upscale(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(both, again)                                       # same generator, same output
    if not model.stochastic:
        first = model.upscale(batch[:1], generator=torch.Generator().manual_seed(3))
        assert torch.allclose(both[:1], first, atol=1e-5)                 # one image does not see the other
    assert model.upscale(batch.double(), generator=torch.Generator().manual_seed(3)).dtype == torch.float64
    assert model.upscale(batch).device == batch.device
    model.train()
    model.upscale(batch)
    assert model.training                                                 # upscale restores the mode


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_refused_by_name(name):
    model, _ = _tiny(name)
    side = _sides(model)[1]
    with pytest.raises(ValueError, match="low contains NaN"):
        model.upscale(torch.full((3, side, side), float("nan")))
    with pytest.raises(ValueError, match=r"low values must lie in \[0, 1\]"):
        model.upscale(_low(3, side, side) * 2)
    with pytest.raises(ValueError, match="low must have shape"):
        model.upscale(_low(side, side))
    with pytest.raises(ValueError, match="low must have 1 or 3 channel"):
        model.upscale(_low(2, side, side))
    with pytest.raises(TypeError, match="low must be a floating-point tensor"):
        model.upscale((_low(3, side, side) * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        model.upscale(_low(3, side, side), generator=0)


def test_registry_names_and_unknown_name():
    assert {"bicubic", "srcnn", "espcn", "vdsr", "srresnet", "srgan"} <= set(NAMES)
    with pytest.raises(ValueError, match="name must be one of"):
        sr.build_model("edsr", 4)
    with pytest.raises(ValueError, match="scale"):
        sr.build_model("srcnn", 1)
