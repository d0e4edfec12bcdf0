"""Widget for notebook 08 (the face world's posterior): pick an input and a method, see the method's K answers
beside the truth, and the posterior of each attribute beside the frequencies of the answers' read values."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from . import make_panel


def posterior_view(reports: dict, index: int, method: str) -> dict:
    """What the panel shows for input ``index`` and ``method``: ``reports`` maps method names to
    :func:`course_utils.posterior.evaluate` reports made with ``return_images=True`` on the same inputs.
    -> {"truth" (3, 32, 32), "low" (3, h, w), "answers" (K, 3, 32, 32), "posterior" {attribute: (V,)},
    "frequencies" {attribute: (V + 1,) the answers' values, last bin unreadable}, "method", "index"}."""
    from .. import posterior as P

    if method not in reports:
        raise ValueError(f"method must be one of {sorted(reports)}, got {method!r}")
    report = reports[method]
    if "images" not in report:
        raise ValueError(f"the report of {method!r} has no images: evaluate it with return_images=True")
    n = report["n"]
    if not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an integer in [0, {n}), got {index!r}")
    answers = report["images"]["outputs"][index]                                # (K, 3, 32, 32)
    values, readable, _ = P.read_values(answers.float())
    row = report["inputs"][index]
    post = {a: np.asarray(row[f"posterior_{a}"]) for a in P.ATTRIBUTE_VALUES}
    freq = {a: P.frequencies(values[a][None], readable[a][None], len(P.ATTRIBUTE_VALUES[a]))[0].numpy()
            for a in P.ATTRIBUTE_VALUES}
    return {"truth": report["images"]["truth"][index], "low": report["images"]["low"][index], "answers": answers,
            "posterior": post, "frequencies": freq, "method": method, "index": index}


def render_posterior(view: dict):
    """Top: truth, input, the answers; bottom: per attribute, posterior (grey) vs answers' frequencies."""
    from .. import posterior as P

    answers = view["answers"][:8]
    fig = plt.figure(figsize=(2 + 1.3 * (len(answers) + 2), 5.2))
    top = fig.add_gridspec(2, len(answers) + 2, height_ratios=[1, 1.2])
    images = [("truth (not seen)", view["truth"]), ("input", view["low"])] + \
             [(f"answer {k + 1}", a) for k, a in enumerate(answers)]
    for column, (title, image) in enumerate(images):
        ax = fig.add_subplot(top[0, column])
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    bottom = top[1, :].subgridspec(1, len(P.ATTRIBUTE_VALUES), wspace=0.35)
    for column, (attribute, names) in enumerate(P.ATTRIBUTE_VALUES.items()):
        ax = fig.add_subplot(bottom[0, column])
        x = np.arange(len(names) + 1)
        ax.bar(x - 0.2, np.append(view["posterior"][attribute], 0), 0.4, color="0.6", label="posterior")
        ax.bar(x + 0.2, view["frequencies"][attribute], 0.4, color="C1", label="answers")
        ax.set_xticks(x, list(names) + ["unread."], rotation=45, fontsize=7)
        ax.set(ylim=(0, 1.05), title=attribute, ylabel="probability" if column == 0 else None)
        if column == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{view['method']}: input {view['index']}, its answers, and the posterior of each attribute",
                 fontsize=10)
    return fig


def posterior_panel(reports: dict, *, index: int = 0, method: str | None = None):
    """A method dropdown and an input slider over ``reports`` (see :func:`posterior_view`); cheap: the answers are
    computed once, the panel only reads them."""
    if not isinstance(reports, dict) or not reports:
        raise TypeError("reports must be a non-empty dict {method: posterior.evaluate(..., return_images=True)}")
    n = min(r["n"] for r in reports.values())
    controls = {"method": widgets.Dropdown(options=list(reports), value=method or list(reports)[0],
                                           description="method"),
                "index": widgets.IntSlider(value=index, min=0, max=n - 1, description="input")}
    return make_panel(lambda method, index: posterior_view(reports, index, method), render_posterior, controls,
                      title="The face world: a method's answers against the posterior")
