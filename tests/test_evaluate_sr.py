import json

import numpy as np
import pytest

from course_utils import checkpoints, evaluate, images


@pytest.fixture
def folder(tmp_path, rgb):
    images.save_image(rgb, tmp_path / "color.png")
    images.save_image(images.rgb_to_y(rgb), tmp_path / "gray.png")
    return tmp_path


def test_bicubic_table_and_json(folder, tmp_path, capsys):
    report = evaluate.main(["sr", "--model", "bicubic", "--scale", "2", "--images", str(folder),
                            "--json", str(tmp_path / "out" / "r.json")])
    assert report == 0
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    assert saved["task"] == "sr" and saved["method"] == "bicubic" and saved["scale"] == 2
    assert [r["name"] for r in saved["images"]] == ["color", "gray"]
    assert saved["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in saved["images"]]))
    assert 20 < saved["mean"]["psnr"] < 60 and saved["skipped"] == []
    assert "mean" in capsys.readouterr().out


def test_bad_files_are_reported_and_skipped(folder, tmp_path, capsys):
    (folder / "broken.png").write_bytes(b"not an image")
    images.save_image(images.load_skimage("camera", size=5), folder / "tiny.png")
    evaluate.main(["sr", "--model", "bicubic", "--scale", "3", "--images", str(folder),
                   "--json", str(tmp_path / "r.json")])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["name"] for r in saved["images"]] == ["color", "gray"]
    assert len(saved["skipped"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "tiny" in err


def test_bad_arguments_are_clear(folder, tmp_path):
    with pytest.raises(SystemExit, match="no shipped srcnn checkpoint for scale=7"):
        evaluate.main(["sr", "--model", "srcnn", "--scale", "7", "--images", str(folder)])
    with pytest.raises(SystemExit, match="--scale must be"):
        evaluate.main(["sr", "--model", "bicubic", "--scale", "1", "--images", str(folder)])
    with pytest.raises(SystemExit, match="does not exist"):
        evaluate.main(["sr", "--model", "bicubic", "--scale", "2", "--images", str(tmp_path / "nowhere")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no image files"):
        evaluate.main(["sr", "--model", "bicubic", "--scale", "2", "--images", str(empty)])
    with pytest.raises(SystemExit):
        evaluate.main(["sr", "--model", "edsr", "--scale", "2", "--images", str(folder)])


@pytest.mark.skipif(not checkpoints.available("srcnn"), reason="no shipped srcnn checkpoint yet")
def test_shipped_model_beats_bicubic(folder, tmp_path):
    scale = checkpoints.available("srcnn")[0]
    evaluate.main(["sr", "--model", "bicubic", "--scale", str(scale), "--images", str(folder),
                   "--json", str(tmp_path / "b.json")])
    evaluate.main(["sr", "--model", "srcnn", "--scale", str(scale), "--images", str(folder),
                   "--json", str(tmp_path / "s.json")])
    bic = json.loads((tmp_path / "b.json").read_text())["mean"]["psnr"]
    srcnn = json.loads((tmp_path / "s.json").read_text())["mean"]["psnr"]
    assert srcnn > bic


@pytest.mark.parametrize("model", ["srresnet", "srgan"])
def test_srresnet_and_srgan_evaluate_with_the_high_frequency_column(folder, tmp_path, model):
    if 4 not in checkpoints.available(model):
        pytest.skip(f"no shipped {model} x4 checkpoint")
    evaluate.main(["sr", "--model", model, "--scale", "4", "--images", str(folder), "--json", str(tmp_path / "r.json")])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["method"] == model and [r["name"] for r in saved["images"]] == ["color", "gray"]
    assert all(r["hf"] > 0 and 10 < r["psnr"] < 60 for r in saved["images"])
    assert saved["mean"]["hf"] == pytest.approx(np.mean([r["hf"] for r in saved["images"]]))


def test_held_out_images_are_never_trained_on_and_evaluated_on_request(rgb, tmp_path, capsys):
    from course_utils import train
    (tmp_path / "BSD200").mkdir()
    images.save_image(rgb, tmp_path / "BSD200" / f"{images.HELD_OUT[0]}.png")     # a held-out name
    images.save_image(rgb.flip(-1), tmp_path / "BSD200" / "99999.png")           # a training image
    found, skipped = train.load_training_images(tmp_path, 16)
    assert len(found) == 1 and torch_equal(found[0], rgb.flip(-1)) and "held-out" in " ".join(skipped)
    evaluate.main(["sr", "--model", "bicubic", "--scale", "4", "--images", str(tmp_path), "--held-out",
                   "--crop", "40", "--json", str(tmp_path / "h.json")])
    saved = json.loads((tmp_path / "h.json").read_text())
    assert [r["name"] for r in saved["images"]] == [f"BSD200/{images.HELD_OUT[0]}"] and saved["held_out"]
    assert saved["crop"] == 40 and 0 <= saved["mean"]["lattice"] <= 1 and "lattice_truth" in saved["mean"]
    with pytest.raises(SystemExit, match="--crop must be at least"):
        evaluate.main(["sr", "--model", "bicubic", "--scale", "4", "--images", str(tmp_path), "--crop", "8"])
    (tmp_path / "BSD200" / f"{images.HELD_OUT[0]}.png").unlink()
    with pytest.raises(SystemExit, match="no held-out image"):
        evaluate.main(["sr", "--model", "bicubic", "--scale", "4", "--images", str(tmp_path), "--held-out"])


def torch_equal(a, b):
    return bool((a - b).abs().max() < 1 / 255)
