"""PULSE (notebook 07): the face world, the StyleGAN2 generator and its rosinality layout, the search, the
generator training, evaluation, exercises and the panel. Everything runs on tiny untrained generators."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import checkpoints, faces, operators, pretrained, pulse, sr, stylegan, train
from course_utils.exercises import pulse as ex
from course_utils.widgets import pulse as panels

TINY = dict(size=16, style_dim=16, n_mlp=2, channel_base=128, channel_max=16)


@pytest.fixture(scope="module")
def G():
    """A tiny untrained 16 px generator with its Gaussian fit (W+ of 6 latents, 5 noise maps). Its RGB layers are
    scaled down so that its images span about [0, 1] like a trained generator's (untrained: about [-9, 4])."""
    torch.manual_seed(0)
    model = stylegan.StyleGenerator(**TINY)
    with torch.no_grad():
        for to_rgb in [model.to_rgb1, *model.to_rgbs]:
            to_rgb.conv.weight.mul_(0.1)
    stylegan.fit_gaussian(model, n=4000)
    return model.eval()


def _own(G, scale=4, seed=5):
    """A low-res input that G itself produced: DS(G(w)) for random sphere latents v (W+) and noise maps.
    -> (low (3, 16 / scale, 16 / scale), v, noise)."""
    g = torch.Generator().manual_seed(seed)
    v = pulse.project_to_sphere(torch.randn(G.n_latent, G.style_dim, generator=g))
    w = F.leaky_relu(v * G.gaussian_std + G.gaussian_mean, 0.2)
    noise = [pulse.project_to_sphere(torch.randn(s, generator=g), dim=(1, 2, 3)) for s in G.noise_shapes()]
    with torch.no_grad():
        x = ((G.synthesis(w[None], noise) + 1) / 2)[0]
    return operators.Downsample(scale)(x.clamp(0, 1)), v, noise


def _own_low(G, scale=4, seed=5):
    return _own(G, scale, seed)[0]


# ----------------------------------------------------------------------------------------------------------------
# the face world


def test_renderer_is_seeded_and_attributes_are_controls():
    a, attrs = faces.render_faces(6, "balanced", 32, torch.Generator().manual_seed(3))
    b, _ = faces.render_faces(6, "balanced", 32, torch.Generator().manual_seed(3))
    c, _ = faces.render_faces(6, "balanced", 32, torch.Generator().manual_seed(4))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(faces.ATTRIBUTES) <= set(attrs) and attrs["center"].shape == (6, 2)
    # fixing one attribute changes only what it controls (the other draws are the same)
    plain, _ = faces.render_faces(4, "balanced", 32, torch.Generator().manual_seed(1), glasses=False)
    specs, fixed = faces.render_faces(4, "balanced", 32, torch.Generator().manual_seed(1), glasses=True)
    changed = (plain - specs).abs().amax(dim=(0, 1)) > 0.05                    # (32, 32) pixels touched by glasses
    assert fixed["glasses"].all() and changed[10:18].any() and not changed[:6].any() and not changed[24:].any()
    dark, d_attrs = faces.render_faces(4, "light", 32, torch.Generator().manual_seed(1), tone=0.9)
    assert torch.all(d_attrs["tone"] == 0.9) and torch.all(d_attrs["group"] == 1)
    blue, _ = faces.render_faces(2, "balanced", 32, torch.Generator().manual_seed(1), background=[0.1, 0.2, 0.9])
    assert torch.allclose(blue[:, :, 0, 0], torch.tensor([0.1, 0.2, 0.9]).expand(2, 3))
    bob, _ = faces.render_faces(1, "balanced", 32, torch.Generator().manual_seed(1), hair_length=0.0)
    long, _ = faces.render_faces(1, "balanced", 32, torch.Generator().manual_seed(1), hair_length=1.0)
    assert (bob - long)[0, :, 22:28].abs().sum() > 1                           # long hair reaches the shoulders
    assert faces.render_faces(1, size=64)[0].shape == (1, 3, 64, 64)


def test_mixes_set_the_composition():
    for mix, p in [("balanced", 0.5), ("skewed", 0.1), ("dark", 1.0), (0.25, 0.25)]:
        attrs = faces.sample_attributes(3000, mix, torch.Generator().manual_seed(0))
        assert abs(attrs["group"].float().mean().item() - p) < 0.03, mix
        light, dark = attrs["tone"][attrs["group"] == 0], attrs["tone"][attrs["group"] == 1]
        assert (light <= 0.4).all() and (dark >= 0.6).all()
    with pytest.raises(ValueError, match="mix must be one of"):
        faces.render_faces(2, "uniform")
    with pytest.raises(ValueError, match="mix must be <= 1"):
        faces.render_faces(2, 1.5)
    with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['beard'\]"):
        faces.render_faces(2, beard=True)
    with pytest.raises(ValueError, match=r"center must have shape \(2,\) \(one value\) or \(3, 2\)"):
        faces.render_faces(3, center=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        faces.render_faces(2, size=8)


def test_skin_tone_recovers_the_rendered_tone_and_separates_the_groups():
    images, attrs = faces.render_faces(400, "balanced", 32, torch.Generator().manual_seed(2))
    tone = faces.skin_tone(images)
    assert tone.shape == (400,) and (tone - attrs["tone"]).abs().max() < 0.04
    assert torch.equal(faces.tone_group(tone), attrs["group"])                 # every face in its group
    specs, s_attrs = faces.render_faces(100, "balanced", 64, torch.Generator().manual_seed(3), glasses=True)
    assert (faces.skin_tone(specs) - s_attrs["tone"]).abs().max() < 0.04       # glasses and eyes do not bias it
    flat = faces.tone_colour(torch.tensor(0.7))[:, None, None].expand(3, 32, 32)
    assert abs(float(faces.skin_tone(flat)) - 0.7) < 2e-3
    mix = faces.composition(faces.render_faces(1000, "skewed", 32, torch.Generator().manual_seed(4))[0])
    assert abs(mix["dark_fraction"] - 0.1) < 0.03 and abs(sum(mix["histogram"]) - 1) < 1e-3
    with pytest.raises(ValueError, match="images must have 3 channel"):
        faces.skin_tone(torch.rand(2, 1, 32, 32))


def _blur(images, sigma):
    """A Gaussian blur of standard deviation ``sigma`` pixels (replicated borders)."""
    r = int(3 * sigma) + 1
    t = torch.arange(-r, r + 1.0)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.pad(images, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


def test_readers_read_rendered_faces_of_both_mixes():
    """Seeds 2024/2025 were not used while building the readers (measured there: 100 % on 2,000 faces)."""
    for mix, seed in (("balanced", 2024), ("skewed", 2025)):
        images, attrs = faces.render_faces(500, mix, 32, torch.Generator().manual_seed(seed))
        read = faces.read_attributes(images)
        for key in ("eye", "hair", "glasses", "group"):
            assert (read[key] == attrs[key]).float().mean() >= 0.98, (mix, key)
        assert torch.equal(read["tone"], faces.skin_tone(images))
        assert read["valid"].float().mean() >= 0.98, mix
        assert read["eye"].dtype == torch.int64 and read["glasses"].dtype == torch.bool
        assert (read["center"] - attrs["center"]).abs().max() < 0.02              # the head is located
    one = faces.read_attributes(images[0])                                     # one image: scalars
    assert one["eye"].shape == () and bool(one["valid"]) == bool(read["valid"][0])
    big, big_attrs = faces.render_faces(40, "balanced", 64, torch.Generator().manual_seed(2026))
    assert torch.equal(faces.read_attributes(big)["eye"], big_attrs["eye"])   # any size >= 16
    drawn = faces.sample_attributes(5000, "balanced", torch.Generator().manual_seed(0))
    for k, (key, (lo, hi)) in enumerate(faces.GEOMETRY_RANGES.items()):        # the fit's box = the world's
        values = drawn["aspect"] if key == "aspect" else drawn["center"][:, k]
        assert lo <= values.min() and values.max() <= hi and values.max() - values.min() > 0.9 * (hi - lo)


def test_averages_blurs_and_noise_are_not_faces_of_the_world():
    a, attrs = faces.render_faces(100, "balanced", 32, torch.Generator().manual_seed(2027))
    b, _ = faces.render_faces(100, "balanced", 32, torch.Generator().manual_seed(2027), eye=(attrs["eye"] + 1) % 4)
    mean = faces.read_attributes((a + b) / 2)                               # two faces, different eye colours
    assert not mean["eye_readable"].any() and not mean["valid"].any()
    assert mean["hair_readable"].all()                                      # ... the rest is one face's
    assert faces.valid(_blur(a, 2.0)).float().mean() <= 0.05                 # a heavy blur
    assert not faces.valid(torch.rand(50, 3, 32, 32, generator=torch.Generator().manual_seed(0))).any()
    glasses = faces.render_faces(50, "balanced", 32, torch.Generator().manual_seed(2028), glasses=True)[0]
    plain = faces.render_faces(50, "balanced", 32, torch.Generator().manual_seed(2028), glasses=False)[0]
    half = faces.read_attributes((glasses + plain) / 2)                      # half a pair of glasses
    assert not half["glasses_readable"].any() and not half["valid"].any()


def test_readers_refuse_what_is_not_a_high_res_face_by_name():
    face = faces.render_faces(2, "balanced", 32, torch.Generator().manual_seed(0))[0]
    with pytest.raises(ValueError, match=r"images must be square faces .* got 4x4; a low-res input cannot be read"):
        faces.read_attributes(operators.Downsample(8)(face))
    with pytest.raises(ValueError, match=r"images must be square faces .* got 32x24"):
        faces.valid(face[..., :24])
    with pytest.raises(ValueError, match="images must have 3 channel"):
        faces.read_attributes(face[:, :1])
    with pytest.raises(ValueError, match="images values must lie in"):
        faces.read_attributes(face * 2)
    with pytest.raises(ValueError, match=r"images must have shape \(C, H, W\) or \(B, C, H, W\)"):
        faces.read_attributes(face[0, 0])
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        faces.read_attributes(face.numpy())
    with pytest.raises(ValueError, match="got 4x4"):
        faces.skin_tone(torch.rand(3, 4, 4))


# ----------------------------------------------------------------------------------------------------------------
# the generator


def test_generator_shapes_w_plus_noise_and_public_range(G):
    assert (G.n_latent, G.num_layers) == (6, 5)                              # 2 log2(16) - 2, 2 log2(16) - 3
    assert G.noise_shapes() == [(1, 1, 4, 4), (1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 16, 16)]
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = G.mapping(z)
        same = G.synthesis(w)                                                # (B, d): one w for all layers
        assert same.shape == (3, 3, 16, 16)
        assert torch.allclose(same, G.synthesis(w[:, None].expand(-1, 6, -1)))
        plus = w[:, None].repeat(1, 6, 1)
        plus[:, 4] = G.mapping(torch.randn(3, 16, generator=torch.Generator().manual_seed(9)))
        assert not torch.allclose(G.synthesis(plus), same)                  # layer 4 has its own w
        G.conv1.noise.weight.fill_(1.0)
        loud = [torch.randn(1, *s[1:]) for s in G.noise_shapes()]
        assert not torch.allclose(G.synthesis(w, loud), same)                # the noise inputs act
        G.conv1.noise.weight.fill_(0.0)
        images = G.sample(5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match=r"w must have shape \(B, 6, 16\)"):
        G.synthesis(torch.zeros(1, 5, 16))
    with pytest.raises(ValueError, match=r"noise\[2\] must have shape \(B or 1, 1, 8, 8\)"):
        bad = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8)] + [torch.zeros(1, 1, 4, 4)] * 3
        G.synthesis(torch.zeros(1, 16), bad)
    with pytest.raises(ValueError, match="noise must be a list of 5 maps"):
        G.synthesis(torch.zeros(1, 16), [torch.zeros(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="size must be a power of two"):
        stylegan.StyleGenerator(size=24)


def test_modulated_convolution_equals_per_sample_weights():
    """StyleGAN2 eq. 1-3 written literally (one modulated, demodulated weight per sample, as rosinality's fused
    grouped convolution) against the course's modulate-convolve-demodulate form, with and without upsampling."""
    torch.manual_seed(0)
    for up in (False, True):
        conv = stylegan.ModulatedConv2d(4, 5, 3, 8, upsample=up)
        x, style = torch.randn(2, 4, 6, 6), torch.randn(2, 8)
        s = conv.modulation(style)
        weight = conv.scale * conv.weight * s[:, None, :, None, None]       # (B, out, in, 3, 3)
        weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4)) + 1e-8)[:, :, None, None, None]
        if up:
            wt = weight.transpose(1, 2).reshape(2 * 4, 5, 3, 3)
            ref = F.conv_transpose2d(x.reshape(1, 8, 6, 6), wt, stride=2, groups=2).reshape(2, 5, 13, 13)
            ref = conv.blur(ref)
        else:
            ref = F.conv2d(x.reshape(1, 8, 6, 6), weight.reshape(10, 4, 3, 3), padding=1, groups=2).reshape(2, 5, 6, 6)
        assert torch.allclose(conv(x, style), ref, atol=1e-5)
    assert conv(x, style).shape == (2, 5, 12, 12)


def test_upfirdn2d_matches_the_reference_definition():
    x = torch.randn(1, 2, 5, 5)
    k = stylegan.make_kernel([1, 3, 3, 1]) * 4
    out = stylegan.upfirdn2d(x, k, up=2, pad=(2, 1))
    zeros = torch.zeros(1, 2, 10, 10)
    zeros[:, :, ::2, ::2] = x                                                # zero insertion
    ref = F.conv2d(F.pad(zeros, (2, 1, 2, 1)), k.flip(0, 1)[None, None].expand(2, 1, 4, 4), groups=2)
    assert out.shape == (1, 2, 10, 10) and torch.allclose(out, ref, atol=1e-6)
    const = stylegan.Upsample()(torch.ones(1, 1, 6, 6))
    assert torch.allclose(const[..., 2:-2, 2:-2], torch.ones(1, 1, 8, 8))    # the upsampler keeps the mean


def test_gaussian_fit_buffers_are_the_inverted_mapping_statistics(G):
    state = G.state_dict()
    assert "gaussian_mean" in state and "gaussian_std" in state and G.has_gaussian_fit
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))    # fit_gaussian's default draws
    with torch.no_grad():
        v = F.leaky_relu(G.mapping(z), 5.0)                                 # LeakyReLU_0.2 undone
    assert torch.allclose(G.gaussian_mean, v.mean(0), atol=1e-4)
    assert torch.allclose(G.gaussian_std, v.std(0), atol=1e-4)
    fresh = stylegan.StyleGenerator(**TINY)
    assert not fresh.has_gaussian_fit
    with pytest.raises(ValueError, match="no Gaussian fit"):
        pulse.search(fresh, torch.rand(3, 4, 4))
    big = stylegan.StyleGAN2Generator(16, 16, 2, channel_base=128, channel_max=16)
    assert "gaussian_mean" not in big.state_dict()                           # rosinality's keys only


# ----------------------------------------------------------------------------------------------------------------
# sphere, GEOCROSS, schedule


def test_projection_puts_every_layer_latent_on_its_sphere():
    x = torch.randn(6, 16) * torch.arange(1, 7.0)[:, None]
    p = pulse.project_to_sphere(x)
    assert torch.allclose(p.norm(dim=1), torch.full((6,), 4.0), atol=1e-5)  # radius sqrt(16) per row
    assert torch.allclose(F.cosine_similarity(p, x, dim=1), torch.ones(6), atol=1e-6)
    maps = pulse.project_to_sphere(torch.randn(2, 1, 8, 8), dim=(1, 2, 3))
    assert torch.allclose(maps.flatten(1).norm(dim=1), torch.full((2,), 8.0), atol=1e-5)
    assert torch.allclose(pulse.project_to_sphere(x, 2.0).norm(dim=1), torch.full((6,), 2.0), atol=1e-5)
    with pytest.raises(ValueError, match="radius must be > 0"):
        pulse.project_to_sphere(x, 0)


def test_geocross_is_the_authors_mean_over_all_ordered_pairs_divided_by_8():
    d = 16
    e = torch.eye(d)
    same = pulse.project_to_sphere(torch.randn(1, d)).expand(5, d)
    assert float(pulse.geocross(same)) < 1e-6                                # identical latents: 0
    orthogonal = pulse.project_to_sphere(e[:2])                              # 2 of the 4 ordered pairs at 90 degrees
    assert float(pulse.geocross(orthogonal)) == pytest.approx(d * (math.pi / 2) ** 2 * 2 / 4 / 8, rel=1e-5)
    opposite = pulse.project_to_sphere(torch.stack([e[0], -e[0]]))
    assert float(pulse.geocross(opposite)) == pytest.approx(d * math.pi ** 2 * 2 / 4 / 8, rel=1e-4)
    three = pulse.project_to_sphere(torch.stack([e[0], e[1], e[0]]))          # 4 of 9 ordered pairs at 90 degrees
    assert float(pulse.geocross(three)) == pytest.approx(d * (math.pi / 2) ** 2 * 4 / 9 / 8, rel=1e-5)
    # on a sphere: (L - 1) / (8 L) times the mean over the pairs i < j (the course's earlier, 9x larger value)
    v = pulse.project_to_sphere(torch.randn(8, d, generator=torch.Generator().manual_seed(3)))
    u = v / v.norm(dim=1, keepdim=True)
    i, j = torch.triu_indices(8, 8, 1)
    pairs = (d * torch.arccos((u[i] * u[j]).sum(1).clamp(-1, 1)) ** 2).mean()
    assert float(pulse.geocross(v)) == pytest.approx(float(pairs) * 7 / 64, rel=1e-4)
    # the authors' formula on vectors as given (it is applied to the mapped w): parallel vectors of different
    # lengths are not at angle 0 for it
    parallel = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert float(pulse.geocross(parallel)) == pytest.approx(2 * (2 * math.atan2(1, 3)) ** 2 * 2 / 4 / 8, rel=1e-4)
    v = torch.randn(2, 6, d, generator=torch.Generator().manual_seed(0))
    values = pulse.geocross(v)
    assert values.shape == (2,)
    assert torch.allclose(pulse.geocross(v[:, torch.randperm(6)]), values, atol=1e-4)   # symmetric in the layers
    assert torch.allclose(pulse.geocross(3 * v), values, atol=1e-4)          # one common scale does not matter
    with pytest.raises(ValueError, match="L >= 2"):
        pulse.geocross(torch.randn(1, d))


def test_linear1cycledrop_schedule():
    f = [pulse.lr_factor(s, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and max(f) == pytest.approx(1.0, abs=0.03) and 40 <= f.index(max(f)) <= 50
    assert f[90] == pytest.approx(0.1) and f[99] == pytest.approx(0.1 - 0.9 * 0.099, rel=1e-6)
    assert all(a <= b for a, b in zip(f[:45], f[1:46])) and all(a >= b for a, b in zip(f[45:], f[46:]))
    assert pulse.lr_factor(7, 100, "fixed") == 1
    with pytest.raises(ValueError, match="schedule must be one of"):
        pulse.lr_factor(0, 10, "cosine")


# ----------------------------------------------------------------------------------------------------------------
# the search


def test_search_reaches_eps_on_an_input_the_generator_made(G):
    low = _own_low(G)                                                       # (3, 4, 4): x4
    seen = []
    result = pulse.search(G, low, eps=1e-3, steps=100, restarts=3, generator=torch.Generator().manual_seed(0),
                          callback=lambda r, s, v: seen.append((r, s)))
    assert result.success and result.l2 <= 1e-3 and result.steps_to_eps <= 100
    start = result.history["l2"][result.history["restart"].index(result.restarts_used - 1)]
    assert start > 10 * result.l2                                             # from far away, not a lucky start
    assert result.image.shape == (3, 16, 16) and result.downscaled.shape == (3, 4, 4)
    assert len(seen) == result.steps and result.attempts[-1].success
    # the reported L2 is that of the returned latents and noise
    with torch.no_grad():
        x = (G.synthesis(result.w[None], result.noise) + 1) / 2
    l2 = float((operators.Downsample(4, clamp=False).forward(x, None)[0] - low).pow(2).mean())
    assert l2 == pytest.approx(result.l2, rel=1e-4)
    assert torch.allclose(result.w, F.leaky_relu(result.latent * G.gaussian_std + G.gaussian_mean, 0.2))
    assert torch.allclose(result.latent.norm(dim=1), torch.full((6,), 4.0), atol=1e-4)   # on the sphere
    assert all(torch.allclose(n.norm(), torch.tensor(math.sqrt(n.numel())), atol=1e-3) for n in result.noise[:5])
    again = pulse.search(G, low, eps=1e-3, steps=100, restarts=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.image, result.image)                           # same seed, same answer


def test_search_returns_the_best_iterate_not_the_last(G):
    """Start the search at the latents and noise that made the input (slightly brightened, so L2 is small but not 0),
    no GEOCROSS, eps too small to stop and a fixed, far too large learning rate: Adam's steps throw the latents away, so
    the last iterate is worse than the first, which is the one to return."""
    low, v, noise = _own(G, seed=6)
    low = (low + 0.02).clamp(0, 1)
    result = pulse.search(G, low, eps=1e-9, steps=8, lr=2.0, schedule="fixed", geocross_weight=0, latent=v,
                          noise=noise, generator=torch.Generator().manual_seed(1))
    losses = result.history["loss"]
    assert losses[-1] > 2 * min(losses) and losses.index(min(losses)) == 0   # the construction: the last is worse
    assert result.attempts[0].best_step == 0 and result.attempts[0].loss == pytest.approx(losses[0])
    assert result.l2 == pytest.approx(result.history["l2"][0]) and not result.success
    assert torch.allclose(result.latent, v, atol=1e-5)
    with torch.no_grad():
        start = ((G.synthesis(F.leaky_relu(v * G.gaussian_std + G.gaussian_mean, 0.2)[None], noise) + 1) / 2)[0]
    assert torch.allclose(result.image, start.clamp(0, 1), atol=1e-5)


def test_default_search_is_the_authors_clamped_loss_all_steps_lowest_loss_iterate(G):
    low = _own_low(G, seed=4)
    eps = 2e-3
    result = pulse.search(G, low, eps=eps, steps=40, generator=torch.Generator().manual_seed(2))
    h = result.history
    assert result.stop == "best" and result.attempts[0].steps == 40 and len(h["loss"]) == 40   # every step runs
    for loss, l2, gc in zip(h["loss"], h["l2"], h["geocross"]):              # 100 max(L2, eps) + 0.05 GEOCROSS(w)
        assert loss == pytest.approx(100 * max(l2, eps) + 0.05 * gc, rel=1e-5)
    best = min(range(40), key=h["loss"].__getitem__)
    a = result.attempts[0]
    assert a.best_step == best and a.loss == pytest.approx(h["loss"][best]) and result.l2 == pytest.approx(h["l2"][best])
    assert a.min_l2 == pytest.approx(min(h["l2"])) and a.success == (result.l2 <= eps)
    first = next(k for k, l2 in enumerate(h["l2"]) if l2 <= eps)
    assert result.steps_to_eps == first + 1 and result.success
    # GEOCROSS of the answer is on the mapped w
    assert a.geocross == pytest.approx(float(pulse.geocross(result.w)), rel=1e-4)
    assert a.geocross <= h["geocross"][first]                                 # after eps only GEOCROSS is lowered
    # stop="first": the same search up to the first iterate within eps, and that iterate is returned
    early = pulse.search(G, low, eps=eps, steps=40, stop="first", generator=torch.Generator().manual_seed(2))
    assert early.steps == early.steps_to_eps == first + 1 and early.attempts[0].best_step == first
    assert early.l2 == pytest.approx(h["l2"][first], rel=1e-4) and early.stop == "first"
    assert early.history["loss"] == pytest.approx(h["loss"][: first + 1], rel=1e-4)


def test_search_many_gives_each_input_its_own_search(G):
    lows = torch.stack([_own_low(G, seed=s) for s in (1, 2, 3)])
    many = pulse.search_many(G, lows, eps=1e-9, steps=6, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)                                       # the same starts, input by input
    for low, batched in zip(lows, many):
        latent = torch.randn(G.n_latent, G.style_dim, generator=g)
        noise = [torch.randn(shape, generator=g) for shape in G.noise_shapes()]
        alone = pulse.search(G, low, eps=1e-9, steps=6, latent=latent, noise=noise)
        assert torch.allclose(batched.image, alone.image, atol=1e-4)
        assert batched.history["l2"] == pytest.approx(alone.history["l2"], rel=1e-3)
    with pytest.raises(ValueError, match=r"lows must have shape \(B, C, H, W\)"):
        pulse.search_many(G, lows[0])


def test_restarts_are_reported(G):
    low = _own_low(G, seed=7)
    many = pulse.search(G, low, eps=1e-9, steps=4, restarts=3, until_success=False,
                        generator=torch.Generator().manual_seed(0))
    assert [a.restart for a in many.attempts] == [0, 1, 2] and all(a.steps == 4 for a in many.attempts)
    assert many.images.shape == (3, 3, 16, 16) and not many.success and many.steps == 12 and many.steps_to_eps is None
    assert many.l2 == min(a.l2 for a in many.attempts) and sorted(set(many.history["restart"])) == [0, 1, 2]
    assert all(a.seconds > 0 for a in many.attempts)
    easy = pulse.search(G, low, eps=10.0, steps=50, restarts=3, generator=torch.Generator().manual_seed(0))
    assert easy.restarts_used == 1 and easy.steps_to_eps == 1 and easy.success   # no restart after a success
    assert easy.steps == 50                                                     # ... but all its steps run
    quick = pulse.search(G, low, eps=10.0, steps=50, restarts=3, stop="first", generator=torch.Generator().manual_seed(0))
    assert quick.restarts_used == 1 and quick.steps == quick.steps_to_eps == 1


def test_plain_adam_leaves_the_sphere_and_projection_keeps_it(G):
    low = _own_low(G, seed=8)
    kw = dict(eps=1e-9, steps=15, generator=torch.Generator().manual_seed(0))
    plain = pulse.search(G, low, project=False, **kw)
    sphere = pulse.search(G, low, **{**kw, "generator": torch.Generator().manual_seed(0)})
    assert all(abs(n - 1) < 1e-4 for n in sphere.history["norm"])
    assert max(abs(n - 1) for n in plain.history["norm"]) > 0.05
    flat = pulse.search(G, low, geocross_weight=0.0, **{**kw, "generator": torch.Generator().manual_seed(0)})
    assert flat.history["geocross"][-1] > sphere.history["geocross"][-1]      # GEOCROSS pulls the layers together


def test_search_refuses_bad_input_by_name(G):
    low = _own_low(G)
    with pytest.raises(ValueError, match="eps must be > 0"):
        pulse.search(G, low, eps=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        pulse.search(G, low, steps=0)
    with pytest.raises(ValueError, match=r"low of size 5x5 cannot be matched by a 16x16 generator; it can match "
                                         r"low-res sizes 8x8 \(x2\), 4x4 \(x4\), 2x2 \(x8\), 1x1 \(x16\)"):
        pulse.search(G, torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match="low of size 8x4 cannot be matched"):
        pulse.search(G, torch.rand(3, 8, 4))
    with pytest.raises(ValueError, match=r"latent must have shape \(6, 16\)"):
        pulse.search(G, low, latent=torch.randn(5, 16))
    with pytest.raises(ValueError, match=r"noise\[1\] must have shape \(1, 1, 8, 8\)"):
        pulse.search(G, low, noise=[torch.randn(1, 1, 4, 4)] * 5)
    with pytest.raises(ValueError, match="noise must be a list of 5 maps"):
        pulse.search(G, low, noise=[torch.randn(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="a batch of shape"):
        pulse.search(G, low[None].expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match="noise_layers must be <= 5"):
        pulse.search(G, low, noise_layers=6)
    with pytest.raises(ValueError, match=r"stop must be one of \['best', 'first'\]"):
        pulse.search(G, low, stop="last")
    with pytest.raises(ValueError, match="stop must be one of"):
        pulse.PULSE(G, 4, stop="early")
    with pytest.raises(TypeError, match="G must be a course_utils.stylegan.StyleGAN2Generator"):
        pulse.search(torch.nn.Linear(2, 2), low)
    with pytest.raises(ValueError, match="low values must lie in"):
        pulse.search(G, low * 3 + 1)


def test_pulse_model_upscales_and_names_the_sizes_it_can_take(G):
    model = pulse.PULSE(G, 4, steps=3, restarts=2, eps=1e-9)
    assert model.low_size == model.receptive_field == 4 and model.stochastic and model.channels == 3
    low = torch.stack([_own_low(G, seed=s) for s in (1, 2)])
    out = model.upscale(low, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 16, 16) and len(model.last_results) == 2
    assert all(r.restarts_used == 2 and r.steps == 6 for r in model.last_results)
    assert torch.equal(out, model.upscale(low, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"takes 4x4 inputs; the generator can match 8x8 \(x2\), 4x4 \(x4\)"):
        model.upscale(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"scale must be one of \[2, 4, 8, 16\] for a 16x16 generator"):
        pulse.PULSE(G, 3)
    assert "pulse" in sr.MODELS and not sr.MODELS["pulse"].trained
    built = sr.build_model("pulse", 2, **sr.MODELS["pulse"].tiny)
    assert isinstance(built, pulse.PULSE) and built.low_size == 8 and built.G.has_gaussian_fit
    with pytest.raises(ValueError, match="generator must be one of"):
        pulse.load_generator("ffhq")


# ----------------------------------------------------------------------------------------------------------------
# the real StyleGAN2: rosinality's layout, loading, opt-in download

ROSINALITY_16 = [  # written out by hand from rosinality/stylegan2-pytorch model.py for size 16, n_mlp 2
    "style.1.weight", "style.1.bias", "style.2.weight", "style.2.bias", "input.input",
    "conv1.conv.weight", "conv1.conv.modulation.weight", "conv1.conv.modulation.bias", "conv1.noise.weight",
    "conv1.activate.bias", "to_rgb1.bias", "to_rgb1.conv.weight", "to_rgb1.conv.modulation.weight",
    "to_rgb1.conv.modulation.bias",
    "convs.0.conv.weight", "convs.0.conv.blur.kernel", "convs.0.conv.modulation.weight",
    "convs.0.conv.modulation.bias", "convs.0.noise.weight", "convs.0.activate.bias",
    "convs.1.conv.weight", "convs.1.conv.modulation.weight", "convs.1.conv.modulation.bias", "convs.1.noise.weight",
    "convs.1.activate.bias",
    "convs.2.conv.weight", "convs.2.conv.blur.kernel", "convs.2.conv.modulation.weight",
    "convs.2.conv.modulation.bias", "convs.2.noise.weight", "convs.2.activate.bias",
    "convs.3.conv.weight", "convs.3.conv.modulation.weight", "convs.3.conv.modulation.bias", "convs.3.noise.weight",
    "convs.3.activate.bias",
    "to_rgbs.0.bias", "to_rgbs.0.upsample.kernel", "to_rgbs.0.conv.weight", "to_rgbs.0.conv.modulation.weight",
    "to_rgbs.0.conv.modulation.bias",
    "to_rgbs.1.bias", "to_rgbs.1.upsample.kernel", "to_rgbs.1.conv.weight", "to_rgbs.1.conv.modulation.weight",
    "to_rgbs.1.conv.modulation.bias",
    "noises.noise_0", "noises.noise_1", "noises.noise_2", "noises.noise_3", "noises.noise_4"]


def _small_rosinality_checkpoint(path, seed=1):
    torch.manual_seed(seed)
    source = stylegan.StyleGAN2Generator(16, 16, 2, channel_base=128, channel_max=16)
    torch.save({"g_ema": source.state_dict(), "latent_avg": torch.zeros(16)}, path)
    return source


def test_rosinality_key_layout():
    assert stylegan.rosinality_keys(16, 2) == ROSINALITY_16
    small = stylegan.StyleGAN2Generator(16, 16, 2, channel_base=128, channel_max=16)
    assert sorted(small.state_dict()) == sorted(ROSINALITY_16)
    big = stylegan.StyleGAN2Generator()                                        # 1024 px, d 512, 8 mlp, config-f
    state = big.state_dict()
    assert sorted(state) == sorted(stylegan.rosinality_keys(1024, 8)) and len(state) == 171
    shapes = {"style.8.weight": (512, 512), "input.input": (1, 512, 4, 4), "conv1.conv.weight": (1, 512, 512, 3, 3),
              "conv1.noise.weight": (1,), "conv1.activate.bias": (512,), "to_rgb1.conv.weight": (1, 3, 512, 1, 1),
              "to_rgb1.bias": (1, 3, 1, 1), "convs.8.conv.weight": (1, 256, 512, 3, 3),
              "convs.15.conv.weight": (1, 32, 32, 3, 3), "convs.14.conv.blur.kernel": (4, 4),
              "to_rgbs.7.upsample.kernel": (4, 4), "to_rgbs.7.conv.weight": (1, 3, 32, 1, 1),
              "noises.noise_16": (1, 1, 1024, 1024)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert sum(p.numel() for p in big.parameters()) == 30_370_060
    assert big.n_latent == 18 and big.num_layers == 17


def test_rosinality_state_loads_and_wrong_keys_or_shapes_are_named(tmp_path):
    source = _small_rosinality_checkpoint(tmp_path / "g.pt")
    G = stylegan.StyleGAN2Generator(16, 16, 2, channel_base=128, channel_max=16)
    stylegan.load_stylegan2_state(G, torch.load(tmp_path / "g.pt")["g_ema"])
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(G(z), source(z))
    state = dict(source.state_dict())
    state["convs.0.conv.kernel"] = state.pop("convs.0.conv.weight")
    with pytest.raises(ValueError, match=r"missing keys \['convs.0.conv.weight'\].*unknown keys "
                                         r"\['convs.0.conv.kernel'\]"):
        stylegan.load_stylegan2_state(G, state)
    state = dict(source.state_dict(), **{"input.input": torch.zeros(1, 8, 4, 4)})
    with pytest.raises(ValueError, match=r"wrong shapes \['input.input: \(1, 8, 4, 4\) instead of \(1, 16, 4, 4\)'\]"):
        stylegan.load_stylegan2_state(G, state)


def test_stylegan2_ffhq_is_loaded_only_on_opt_in_and_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"StyleGAN2-FFHQ weights are not cached.*download=True"):
        pulse.load_stylegan2_ffhq()
    with pytest.raises(FileNotFoundError, match="download=True"):
        pulse.load_generator("stylegan2-ffhq")
    assert not (tmp_path / "hub").exists()                                     # nothing fetched without the opt-in
    offline = "http://127.0.0.1:9/stylegan2-ffhq-config-f.pt"                  # nothing listens there
    with pytest.raises(ConnectionError, match=r"could not download the StyleGAN2-FFHQ weights.*offline.*"
                                              r"pulse-balanced"):
        pulse.load_stylegan2_ffhq(download=True, url=offline)
    assert pulse.STYLEGAN2_FFHQ_URL.endswith("stylegan2-ffhq-config-f.pt")
    assert "non-commercial" in pulse.load_stylegan2_ffhq.__doc__ and "never redistributes" in \
        pulse.load_stylegan2_ffhq.__doc__


def test_stylegan2_download_path_cache_hash_and_own_copy(tmp_path, monkeypatch):
    """The real download path fed by a file:// URL, with a small rosinality-layout checkpoint."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    source = _small_rosinality_checkpoint(tmp_path / "served.pt")
    small = dict(size=16, style_dim=16, n_mlp=2, channel_base=128, channel_max=16)
    prefix = pretrained.sha256(tmp_path / "served.pt")[:12]
    G = pulse.load_stylegan2_ffhq(download=True, url=(tmp_path / "served.pt").as_uri(), sha256_prefix=prefix,
                                  config=small, fit_samples=500)
    assert pretrained.cache_path(pulse.STYLEGAN2_FFHQ_URL).is_file() and G.has_gaussian_fit and prefix in G.weights
    with torch.no_grad():
        z = torch.randn(1, 16)
        assert torch.equal(G(z), source(z))
    (tmp_path / "served.pt").rename(tmp_path / "mine.pt")                    # from the cache, no download
    pulse.load_stylegan2_ffhq(sha256_prefix=prefix, config=small, fit_samples=500)
    with pytest.raises(ValueError, match="corrupted or not the StyleGAN2-FFHQ weights"):
        pulse.load_stylegan2_ffhq(sha256_prefix="0000", config=small, fit_samples=500)
    own = pulse.load_stylegan2_ffhq(path=tmp_path / "mine.pt", config=small, fit_samples=500)
    assert isinstance(own, stylegan.StyleGAN2Generator)
    with pytest.raises(FileNotFoundError, match="path: no StyleGAN2 checkpoint file"):
        pulse.load_stylegan2_ffhq(path=tmp_path / "none.pt")
    with pytest.raises(ValueError, match="mine.pt is not a rosinality StyleGAN2 generator state dict: missing keys"):
        pulse.load_stylegan2_ffhq(path=tmp_path / "mine.pt", fit_samples=10)   # a 16 px file for the 1024 model


# ----------------------------------------------------------------------------------------------------------------
# training the generators, evaluation


TINY_RECIPE = dict(model=TINY, discriminator=dict(channel_base=128, channel_max=16), batch=4, fit_samples=500,
                   coverage_samples=16, log_every=1)


def test_train_generator_resume_and_load_checkpoint(tmp_path, capsys):
    full = train.train("pulse-balanced", None, 2, tmp_path / "a" / "pulse-balanced.pt", progress=False, **TINY_RECIPE)
    assert full["scale"] is None and full["config"] == TINY and full["recipe"]["mix"] == "balanced"
    assert "--scale" not in full["command"] and full["command"].startswith("python -m course_utils.train "
                                                                             "pulse-balanced --steps 2")
    assert full["data"]["source"].startswith("procedural faces")
    assert full["state_dict"]["gaussian_std"].abs().sum() > 0                # the Gaussian fit ships with it
    cov = full["recipe"]["coverage"]
    assert set(cov) >= {"samples", "data", "tone_tv_distance", "dark_fraction_samples"} and cov["data"]["n"] == 16
    h = full["history"]
    assert h["step"] == [1, 2] and set(h) >= {"loss", "d_loss", "r1", "d_real", "d_fake"} and h["r1"][0] > 0
    # interrupted after 1 step, resumed to 2: the same weights as one run
    train.train("pulse-balanced", None, 1, tmp_path / "b" / "pulse-balanced.pt", progress=False, save_every=1,
                **TINY_RECIPE)
    resumed = train.train("pulse-balanced", None, 2, tmp_path / "b" / "pulse-balanced.pt", progress=False,
                          resume=True, save_every=1, **TINY_RECIPE)
    assert "resuming pulse-balanced from step 1" in capsys.readouterr().out
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    # registered like a shipped checkpoint, then loaded by name through the registry (sha256-checked)
    registry = tmp_path / "a" / "registry.json"
    checkpoints.register(tmp_path / "a" / "pulse-balanced.pt", full, registry=registry)
    G = checkpoints.load_checkpoint("pulse-balanced", weights_dir=tmp_path / "a", registry=registry)
    assert isinstance(G, stylegan.StyleGenerator) and G.has_gaussian_fit
    assert pulse.PULSE(G, 4, steps=2, restarts=1).upscale(torch.rand(3, 4, 4)).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="no shipped pulse-skewed checkpoint"):
        checkpoints.load_checkpoint("pulse-skewed", weights_dir=tmp_path / "a", registry=registry)


def test_train_cli_mix_option_and_no_scale(tmp_path):
    assert {"pulse-balanced", "pulse-skewed"} <= train.UNSCALED
    assert pulse.RECIPES["pulse-skewed"]["mix"] == "skewed" and pulse.RECIPES["pulse-balanced"]["mix"] == "balanced"
    assert set(pulse.MIXES_DESCRIBED) == {"pulse-balanced", "pulse-skewed"}
    with pytest.raises(SystemExit, match="pulse-skewed has no scale: leave out --scale"):
        train.main(["pulse-skewed", "--scale", "4"])
    tiny = [f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in TINY_RECIPE.items()]
    train.main(["pulse-balanced", "--steps", "1", "--mix", "skewed", "--out", str(tmp_path / "g.pt"), "--set", *tiny])
    checkpoint = torch.load(tmp_path / "g.pt", weights_only=True)
    assert checkpoint["recipe"]["mix"] == "skewed" and 'mix="skewed"' in checkpoint["command"]
    with pytest.raises(SystemExit, match="mix must be one of"):
        train.main(["pulse-balanced", "--steps", "1", "--mix", "sideways", "--out", str(tmp_path / "x.pt")])


def test_evaluate_reports_success_speed_and_the_bias_shift(G):
    report = pulse.evaluate(G, 3, seed=0, scale=4, steps=5, restarts=2, eps=1e-9, mix="balanced")
    json.dumps(report)                                                       # JSON-ready
    assert report["success_rate"] == 0 and len(report["inputs"]) == 3 and report["low_size"] == 4
    row = report["inputs"][0]
    assert row["restarts_used"] == 2 and row["steps"] == 10 and row["steps_to_eps"] is None and row["seconds"] > 0
    assert report["stop"] == "best" and 0 <= report["validity"] <= 1 and set(report["readable"]) == {
        "eye", "hair", "glasses", "tone"} and isinstance(row["valid"], bool) and report["fit_rmse_median"] > 0
    bias = report["bias"]
    lo, hi = bias["shift_ci95"]
    assert lo <= bias["mean_shift"] <= hi
    assert bias["mean_shift"] == pytest.approx(bias["mean_tone_output"] - bias["mean_tone_input"], abs=1e-5)
    easy = pulse.evaluate(G, 2, seed=1, scale=4, steps=5, restarts=2, eps=10.0, group="dark", return_images=True)
    assert easy["success_rate"] == 1 and all(r["tone_true"] >= 0.6 for r in easy["inputs"])
    assert all(r["restarts_used"] == 1 and r["steps_to_eps"] == 1 for r in easy["inputs"])
    assert easy["images"]["output"].shape == (2, 3, 16, 16) and easy["images"]["low"].shape == (2, 3, 4, 4)
    # held out: not the faces the training stream (seeded with the training seed) draws
    train_faces, _ = faces.render_faces(2, "dark", 16, torch.Generator().manual_seed(1))
    assert not torch.allclose(easy["images"]["truth"], train_faces)
    with pytest.raises(ValueError, match="group must be None or one of"):
        pulse.evaluate(G, 1, group="medium")


# ----------------------------------------------------------------------------------------------------------------
# exercises and the panel


def test_exercise_checkers_accept_right_and_reject_wrong(capsys):
    def todo(*args):
        raise NotImplementedError

    right = lambda v: v / v.norm(dim=1, keepdim=True) * v.shape[1] ** 0.5              # noqa: E731
    assert ex.check_project_to_sphere(right) is True
    assert ex.check_project_to_sphere(lambda v: v / v.norm(dim=1, keepdim=True)) is False          # radius 1
    assert ex.check_project_to_sphere(lambda v: v / v.norm() * v.shape[1] ** 0.5) is False         # whole tensor
    assert ex.check_project_to_sphere(todo) is None

    def geo(v, chord=False, square=True, pairs="all"):
        u = v / v.norm(dim=1, keepdim=True)
        arc = v.shape[1] ** 0.5 * torch.arccos((u @ u.T).clamp(-1, 1))        # (L, L) geodesic distances
        dist = torch.cdist(v, v) if chord else arc
        dist = dist ** 2 if square else dist
        if pairs == "i<j":
            i, j = torch.triu_indices(len(v), len(v), 1)
            return dist[i, j].mean() / 8
        return dist.mean() / 8

    assert ex.check_geocross(geo) is True
    assert ex.check_geocross(lambda v: geo(v, chord=True)) is False
    assert ex.check_geocross(lambda v: geo(v, square=False)) is False
    assert ex.check_geocross(lambda v: geo(v, pairs="i<j")) is False
    assert ex.check_geocross(lambda v: geo(v) * 8) is False
    assert ex.check_geocross(todo) is None
    out = capsys.readouterr().out
    assert "chord" in out and "not its square" in out and "pairs i < j only" in out and "no division by 8" in out
    assert ex.check_noise_floor(lambda s: s ** 2) is True
    assert ex.check_noise_floor(lambda s: s) is False
    assert ex.check_noise_floor(lambda s: 0.0) is False
    assert ex.check_largest_sigma(255 * 2e-3 ** 0.5) is True
    assert ex.check_largest_sigma(2e-3 ** 0.5) is False
    assert ex.check_largest_sigma(...) is None                       # the template: "not attempted yet"
    assert ex.check_noise_floor(todo) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_pulse_demo_and_panel_headless(G):
    low = _own_low(G, seed=3)
    result = panels.pulse_demo(low, G, eps=1e-9, steps=4, restarts=2, seed=0)
    assert result["outputs"].shape == (2, 3, 16, 16) and result["downscaled"].shape == (2, 3, 4, 4)
    assert len(result["l2"]) == 2 and result["steps"] == [4, 4] and result["success"] == [False, False]
    assert result["answer"] == min(range(2), key=lambda i: result["l2"][i])
    assert set(result["history"]) >= {"restart", "step", "loss", "l2"}
    panels.render_pulse(result)
    panel = panels.pulse_panel(low, {"tiny": G}, steps=5, restarts=1)
    controls = {c.description: c for c in panel.children if hasattr(c, "value")}
    controls["steps"].value = 5
    controls["log10 eps"].value = 1.0 if controls["log10 eps"].max >= 1 else controls["log10 eps"].max
    out = panel.update()
    assert len(out["l2"]) == 1 and out["outputs"].shape == (1, 3, 16, 16)
    with pytest.raises(TypeError, match="generators must be a non-empty dict"):
        panels.pulse_panel(low, G)


def test_evaluate_pulse_cli(tmp_path, monkeypatch, capsys):
    from course_utils import evaluate, pulse

    tiny = pulse.load_generator(dict(size=16, style_dim=8, n_mlp=1, channel_base=32, channel_max=8))
    from course_utils.stylegan import fit_gaussian
    fit_gaussian(tiny, n=256, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(pulse, "load_generator", lambda name, download=False: tiny)
    out = tmp_path / "p.json"
    assert evaluate.main(["pulse", "--generator", "skewed", "--n", "2", "--steps", "3", "--restarts", "1",
                          "--group", "dark", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "success_rate" in text and "skin tone" in text and "validity" in text and "stop best" in text
    import json
    report = json.loads(out.read_text())
    assert report["generator"] == "skewed" and report["n"] == 2 and "shift_ci95" in report["bias"]
    assert evaluate.main(["pulse", "--generator", "balanced", "--n", "1", "--steps", "2", "--restarts", "1",
                          "--geocross-weight", "0", "--stop", "first", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["geocross_weight"] == 0 and report["stop"] == "first"
    with pytest.raises(SystemExit, match="--n, --steps and --restarts must be"):
        evaluate.main(["pulse", "--generator", "balanced", "--n", "0"])
    with pytest.raises(SystemExit, match="--geocross-weight >= 0"):
        evaluate.main(["pulse", "--generator", "balanced", "--geocross-weight", "-1"])
