import math


from course_utils.exercises import dip as ex
from course_utils.operators import Downsample


def test_ema_checker():
    assert ex.check_ema_update(lambda a, o, d: d * a + (1 - d) * o) is True
    assert ex.check_ema_update(lambda a, o, d: (1 - d) * a + d * o) is False

    def todo(a, o, d):
        raise NotImplementedError

    assert ex.check_ema_update(todo) is None


def test_iterations_checker():
    def right(losses, t):
        return next((i for i, v in enumerate(losses, 1) if v < t), math.inf)

    def zero_based(losses, t):
        return next((i for i, v in enumerate(losses) if v < t), math.inf)

    assert ex.check_iterations_to_reach(right) is True
    assert ex.check_iterations_to_reach(zero_based) is False


def test_masked_loss_checker(capsys):
    assert ex.check_masked_loss(lambda o, y, m: ((o * m - y) ** 2).mean()) is True
    assert ex.check_masked_loss(lambda o, y, m: ((o - y) ** 2).mean()) is False
    assert "apply the mask" in capsys.readouterr().out


def test_sr_loss_checker():
    assert ex.check_sr_loss(lambda o, y, s: ((Downsample(s)(o) - y) ** 2).mean()) is True
    assert ex.check_sr_loss(lambda o, y, s: ((o[..., ::s, ::s] - y) ** 2).mean()) is False
    assert ex.check_sr_loss(lambda o, y, s: 1 / 0) is False


def test_structure_prediction_checker_judges_against_the_measurement(capsys):
    """Exercise 4 of notebook 01: the 1x1 network fits the natural image and its scrambled pixels alike (measured
    MSE ratio 0.91-1.06 over seeds 0-5; the skip net 7-11), so only 'about the same' is right."""
    assert ex.check_structure_prediction(...) is None                      # the template
    assert ex.check_structure_prediction("faster") is False               # not one of the answers
    assert ex.check_structure_prediction("about the same") is True
    assert "ratio" in capsys.readouterr().out
    assert ex.check_structure_prediction("natural faster") is False
