"""Notebook 05's exercise checkers."""
import torch
import torch.nn.functional as F

from course_utils import srgan
from course_utils.exercises import srgan as ex


def test_exercise_checkers_accept_right_and_reject_wrong(capsys):

    def todo(*args):
        raise NotImplementedError

    assert ex.check_l1_optimal_guess(lambda s: s.median(0).values) is True
    assert ex.check_l1_optimal_guess(lambda s: s.mean(0)) is False                # the MSE answer is not the L1 one
    assert ex.check_l1_optimal_guess(lambda s: s[0]) is False                     # nor is one plausible sample
    assert ex.check_l1_optimal_guess(todo) is None
    good_g = lambda f: -F.logsigmoid(f).mean()                                    # noqa: E731
    good_d = lambda r, f: -F.logsigmoid(r).mean() - F.logsigmoid(-f).mean()       # noqa: E731
    naive_g = lambda f: -torch.log(torch.sigmoid(f)).mean()                       # noqa: E731
    assert ex.check_gan_losses(good_g, good_d) is True
    assert ex.check_gan_losses(naive_g, good_d) is False                          # overflows at logit -200
    assert ex.check_gan_losses(lambda f: F.logsigmoid(f).mean(), good_d) is False  # wrong sign
    assert ex.check_gan_losses(todo, todo) is None
    index = {(b, c): v for (b, c), v in ((tuple(map(int, k[3:5])), v) for k, v in srgan.VGG19_LAYERS.items())}
    assert ex.check_vgg_layer_index(lambda i, j: index[(i, j)]) is True
    assert ex.check_vgg_layer_index(lambda i, j: index[(i, j)] - 1) is False      # that is the conv, not the ReLU
    assert ex.check_vgg_layer_index(todo) is None
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "correct" in out
