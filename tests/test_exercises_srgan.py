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


def test_mse_floor_checker():
    measure = lambda s: float(((s - s.mean(0)) ** 2).mean())  # noqa: E731
    assert ex.check_mse_floor(measure, 0.02) is True
    assert ex.check_mse_floor(measure, lambda: 0.2 ** 2 / 2) is True     # a function returning the prediction
    assert ex.check_mse_floor(measure, 0.08) is False                   # amplitude 0.4's floor: not this one
    assert ex.check_mse_floor(lambda s: 0.0, 0.02) is False

    def todo():
        raise NotImplementedError

    assert ex.check_mse_floor(measure, todo) is None


def test_gan_step_checker():
    def right(G, D, content, opt_g, opt_d, low, high, w):
        fake, b = G(low), high.shape[0]
        opt_d.zero_grad()
        logits = D(torch.cat([high, fake.detach()]))
        srgan.discriminator_loss(logits[:b], logits[b:]).backward()
        opt_d.step()
        opt_g.zero_grad()
        (content(fake, high) + w * srgan.adversarial_loss(D(torch.cat([high, fake]))[b:])).backward()
        opt_g.step()

    def separate_batches(G, D, content, opt_g, opt_d, low, high, w):
        fake = G(low)
        opt_d.zero_grad()
        (F.binary_cross_entropy_with_logits(D(high), torch.ones(len(high)))
         + F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros(len(high)))).backward()
        opt_d.step()
        opt_g.zero_grad()
        (content(fake, high) + w * srgan.adversarial_loss(D(fake))).backward()
        opt_g.step()

    assert ex.check_gan_step(right) is True
    assert ex.check_gan_step(separate_batches) is False
    assert ex.check_gan_step(lambda *args: None) is False               # nothing updated
