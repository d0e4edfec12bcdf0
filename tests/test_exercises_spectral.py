import torch

from course_utils.exercises import spectral as ex
from course_utils.images import rgb_to_gray


def reference_fbc(output, reference, bands):
    spec = lambda t: torch.fft.fftshift(torch.fft.fft2(rgb_to_gray(t)[0].double())).abs()  # noqa: E731
    ratio = (spec(output) / (spec(reference) + 1e-8)).clamp(0, 1)
    h, w = ratio.shape
    fy = (torch.arange(h) - h // 2)[:, None] / (h / 2)
    fx = (torch.arange(w) - w // 2)[None, :] / (w / 2)
    r = torch.sqrt(fy ** 2 + fx ** 2)
    edges = torch.linspace(0, 1, bands + 1)
    out = []
    for k in range(bands):
        band = (r <= edges[k + 1]) & ((r > edges[k]) if k else torch.ones_like(r, dtype=torch.bool))
        out.append(ratio[band].mean())
    return torch.stack(out)


def test_fbc_checker():
    assert ex.check_fbc_by_hand(reference_fbc) is True
    assert ex.check_fbc_by_hand(lambda o, r, b: torch.ones(b)) is False


def test_spectral_norm_checker():
    assert ex.check_spectral_norm(lambda w: torch.linalg.svdvals(w.flatten(1))[0]) is True
    assert ex.check_spectral_norm(lambda w: w.abs().max()) is False

    def todo(w):
        raise NotImplementedError

    assert ex.check_spectral_norm(todo) is None


def test_dc_gain_checker():
    assert ex.check_dc_gain(3) is True
    assert ex.check_dc_gain(2) is False                      # the x2 answer copied from the notebook
    assert ex.check_dc_gain(1) is False
    assert ex.check_dc_gain(4, stride=4) is True
    assert ex.check_dc_gain(...) is None


def test_lipschitz_prediction_checker_judges_against_the_measurement():
    from course_utils.images import image_set

    small = dict(image=image_set("test", size=64)["astronaut"], iters=150, channels=8)
    assert ex.check_lipschitz_prediction({"psnr": ..., "top band": ...}, **small) is None     # untouched template
    assert ex.check_lipschitz_prediction({"psnr": "up"}, **small) is False                   # malformed
    # a looser bound (2.0) fits every band sooner: higher PSNR and a higher top band after a short budget
    assert ex.check_lipschitz_prediction({"psnr": "higher", "top band": "higher"}, **small) is True
    assert ex.check_lipschitz_prediction({"psnr": "higher", "top band": "lower"}, **small) is False
    assert ex.check_lipschitz_prediction({"psnr": "lower", "top band": "lower"}, lipschitz=1.0, **small) is True
