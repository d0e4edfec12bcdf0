"""Notebook 08's panel (headless) and exercise self-checks."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import posterior as P  # noqa: E402
from course_utils.exercises import posterior as ex  # noqa: E402
from course_utils.widgets import posterior as panels  # noqa: E402


@pytest.fixture(scope="module")
def reports():
    return {m: P.evaluate(m, 8, 3, 2, seed=1, return_images=True) for m in ("bicubic", "oracle")}


def test_view_reads_the_answers_against_the_posterior(reports):
    view = panels.posterior_view(reports, 1, "oracle")
    assert view["answers"].shape == (2, 3, 32, 32) and view["low"].shape == (3, 4, 4)
    for a, names in P.ATTRIBUTE_VALUES.items():
        assert view["posterior"][a].shape == (len(names),) and abs(view["posterior"][a].sum() - 1) < 1e-6
        assert view["frequencies"][a].shape == (len(names) + 1,) and abs(view["frequencies"][a].sum() - 1) < 1e-6
    assert view["frequencies"]["eye"][-1] == 0                        # the oracle's answers are readable
    assert panels.posterior_view(reports, 0, "bicubic")["frequencies"]["eye"][-1] == 1   # a blur is not
    with pytest.raises(ValueError, match="method"):
        panels.posterior_view(reports, 0, "nope")
    with pytest.raises(ValueError, match="index"):
        panels.posterior_view(reports, 3, "oracle")


def test_posterior_panel_headless(reports):
    panel = panels.posterior_panel(reports, method="oracle")
    panel.children[1].value = "bicubic"                               # the method dropdown
    panel.children[2].value = 2                                       # the input slider
    assert panel.result["method"] == "bicubic" and panel.result["index"] == 2
    fig = panels.render_posterior(panel.result)
    assert "bicubic" in fig._suptitle.get_text()
    plt.close("all")
    with pytest.raises(TypeError, match="reports"):
        panels.posterior_panel({})


def _tv(f, p):
    return 0.5 * (f - p).abs().sum(-1)


def _floor(p, K, trials, generator):
    draws = torch.multinomial(p.expand(trials, -1), K, replacement=True, generator=generator)
    f = torch.nn.functional.one_hot(draws, len(p)).sum(1).double() / K
    return float(_tv(f, p).mean())


def test_exercise_checks_accept_answers_and_refuse_mistakes(capsys):
    assert ex.check_tv_distance(_tv) is True
    assert ex.check_tv_distance(lambda f, p: (f - p).abs().sum(-1)) is False          # no 1/2
    assert "forgot the 1/2" in capsys.readouterr().out
    assert ex.check_floor_by_simulation(_floor) is True
    assert ex.check_floor_by_simulation(lambda p, K, trials, generator: 0.0) is False
    assert ex.check_deterministic_prediction(
        lambda p, K: float(1 - p.max() - P.calibration_floor(p[None], K)[0])) is True
    assert ex.check_deterministic_prediction(lambda p, K: float(1 - p.max())) is False
    assert "subtracts the floor" in capsys.readouterr().out

    def todo(*args):
        raise NotImplementedError
    assert ex.check_tv_distance(todo) is None and ex.check_deterministic_prediction(todo) is None
