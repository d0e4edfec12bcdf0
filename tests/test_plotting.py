import pytest
import torch

from course_utils import plotting


def test_show_images_with_zoom_row_and_titles(rgb):
    low = rgb[:, ::2, ::2]
    fig = plotting.show_images({"a": rgb, "b": low}, zoom=(8, 8, 16, 16), suptitle="demo")
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles == ["a", "b", "a (zoom)", "b (zoom)"]
    # the zoom of the half-size image is scaled to the same region (8 x 8 pixels)
    assert axes[3].images[0].get_array().shape[:2] == (8, 8)
    assert fig._suptitle.get_text() == "demo"


def test_show_images_rejects_mismatched_titles(rgb):
    with pytest.raises(ValueError, match="titles has 1 entries for 2 images"):
        plotting.show_images([rgb, rgb], ["only one"])
    with pytest.raises(ValueError, match="at least one image"):
        plotting.show_images([])


def test_plot_history_curves_and_missing_key():
    history = {"iter": [0, 10, 20], "loss": [1.0, 0.5, 0.2], "psnr": [10.0, 20.0, 25.0]}
    ax = plotting.plot_history(history, ["loss"], logy=True, title="fit", ylabel="MSE")
    assert ax.get_yscale() == "log" and ax.get_title() == "fit" and ax.get_xlabel() == "iteration"
    assert list(ax.lines[0].get_ydata()) == [1.0, 0.5, 0.2]
    with pytest.raises(KeyError, match="ssim"):
        plotting.plot_history(history, ["ssim"])


def test_check_image_rejects_inf(rgb):
    from course_utils import metrics

    bad = rgb.clone()
    bad[0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="image contains NaN or infinite"):
        metrics.psnr(bad, rgb)
    with pytest.raises(ValueError, match="must have 1 or 3 channel"):
        metrics.sr_psnr(torch.rand(4, 20, 20), torch.rand(4, 20, 20), 2)


def test_detail_box_finds_the_texture_not_the_flat_part():
    import torch

    from course_utils.plotting import detail_box

    image = torch.zeros(3, 64, 64)
    image[:, 40:56, 8:24] = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))   # texture here
    top, left, h, w = detail_box(image, 16)
    assert (h, w) == (16, 16) and abs(top - 40) <= 3 and abs(left - 8) <= 3
    assert detail_box(image, 200)[2:] == (64, 64)                              # clamped to the image
