import math

import torch

from course_utils import operators as ops
from course_utils.exercises import inverse_problems as ex
from course_utils.images import load_skimage


def test_psnr_checker_accepts_right_and_rejects_wrong(capsys):
    right = lambda a, b: 10 * math.log10(1 / float(((a - b) ** 2).mean()))  # noqa: E731
    wrong = lambda a, b: 20 * math.log10(1 / float(((a - b) ** 2).mean()))  # noqa: E731
    assert ex.check_psnr(right) is True
    assert ex.check_psnr(wrong) is False

    def todo(a, b):
        raise NotImplementedError

    assert ex.check_psnr(todo) is None
    assert "not attempted" in capsys.readouterr().out


def test_sigma_checker():
    assert ex.check_sigma_for_psnr(25.5) is True
    assert ex.check_sigma_for_psnr(10.0) is False
    assert ex.check_sigma_for_psnr(...) is None


def test_noise_after_downsampling_checker():
    right = lambda x, g: ops.Downsample(2)(ops.GaussianNoise(10)(x, g))  # noqa: E731
    wrong_order = lambda x, g: ops.GaussianNoise(10)(ops.Downsample(2)(x), g)  # noqa: E731
    assert ex.check_noise_after_downsampling(right, ex.low_res_noise()) is True
    assert ex.check_noise_after_downsampling(right, 10.0) is False          # "noise passes unchanged": wrong
    assert ex.check_noise_after_downsampling(right, 10.0 / 2) is False      # "averages 2 pixels"... close, still wrong
    assert ex.check_noise_after_downsampling(wrong_order, ex.low_res_noise()) is False
    assert ex.check_noise_after_downsampling(right, ...) is None
    # the reference prediction is the measured one
    x = load_skimage("astronaut", size=64)
    noise = right(x, torch.Generator().manual_seed(3)) - ops.Downsample(2)(x)
    assert abs(float(noise[..., 4:-4, 4:-4].std()) * 255 - ex.low_res_noise()) < 0.3


def test_invisible_fraction_checker():
    def right(image, s):
        h, w = image.shape[-2:]
        rh, rw = ops.resize_matrix(h, h // s).double(), ops.resize_matrix(w, w // s).double()
        v = image.double()
        seen = torch.linalg.pinv(rh) @ (rh @ v @ rw.T) @ torch.linalg.pinv(rw).T
        return float(((v - seen) ** 2).sum() / ((v - v.mean()) ** 2).sum())

    assert ex.check_invisible_fraction(right) is True
    assert ex.check_invisible_fraction(lambda image, s: 1 - 1 / s ** 2) is False     # counts dimensions, not energy
    image = load_skimage("chelsea", size=64)
    values = [ex.invisible_fraction(image, s) for s in (2, 4, 8)]
    assert values == sorted(values) and 0 < values[0] < 0.1                          # grows with the scale


def test_value_answers_may_be_functions():
    def todo():
        raise NotImplementedError

    assert ex.check_sigma_for_psnr(lambda: 25.5) is True
    assert ex.check_sigma_for_psnr(todo) is None
    right = lambda x, g: ops.Downsample(2)(ops.GaussianNoise(10)(x, g))  # noqa: E731
    assert ex.check_noise_after_downsampling(right, lambda: ex.low_res_noise()) is True
    assert ex.check_noise_after_downsampling(right, todo) is None
