
import pytest
import torch

from course_utils import checkpoints, images, sr, train


@pytest.fixture(scope="module")
def tiny_images():
    return [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]


def _train(tmp_path, tiny_images, steps, resume=False, name="espcn"):
    return train.train(name, 2, steps, tmp_path / f"{name}_x2.pt", resume=resume, save_every=1,
                       images=tiny_images, progress=False, batch=2)


def test_train_writes_checkpoint_and_resume_is_exact(tmp_path, tiny_images, capsys):
    straight = _train(tmp_path / "a", tiny_images, 4)
    assert straight["steps"] == 4 and straight["command"] == "python -m course_utils.train espcn --scale 2 --steps 4 --set batch=2"
    assert (tmp_path / "a" / "espcn_x2.pt.resume").is_file()
    _train(tmp_path / "b", tiny_images, 2)
    resumed = _train(tmp_path / "b", tiny_images, 4, resume=True)
    assert "resuming espcn x2 from step 2" in capsys.readouterr().out
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    # without the state file, --resume is refused
    with pytest.raises(FileNotFoundError, match="no training state"):
        _train(tmp_path / "c", tiny_images, 2, resume=True)
    with pytest.raises(ValueError, match="already has 4 steps"):
        _train(tmp_path / "b", tiny_images, 3, resume=True)


def test_train_cli_and_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        train.main(["edsr", "--scale", "3"])
    with pytest.raises(SystemExit, match="--scale must be an integer >= 2 for srcnn, got 1"):
        train.main(["srcnn", "--scale", "1"])
    with pytest.raises(SystemExit, match="--scale must be an integer >= 2 for srcnn, got None"):
        train.main(["srcnn"])
    with pytest.raises(SystemExit, match=r"unrecognised argument '--learning-rate'.*recipe keys of srcnn"):
        train.main(["srcnn", "--scale", "3", "--learning-rate", "0.1"])
    with pytest.raises(ValueError, match="steps"):
        train.train("srcnn", 3, -1, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="name"):
        train.train("edsr", 3, 1, tmp_path / "x.pt")
    with pytest.raises(SystemExit, match=r"unknown recipe key\(s\) \['learning_rate'\].*valid keys: \[.*'lr'"):
        train.main(["srcnn", "--scale", "3", "--set", "learning_rate=0.1"])
    with pytest.raises(SystemExit, match="--set takes key=value"):
        train.main(["srcnn", "--scale", "3", "--set", "lr"])
    with pytest.raises(SystemExit, match=r"unknown recipe key\(s\) \['seed'\].*valid keys"):   # a CLI option, not a key
        train.main(["srcnn", "--scale", "3", "--set", "seed=1"])
    with pytest.raises(SystemExit, match="steps given twice: --steps 2 and --set steps=3"):
        train.main(["srcnn", "--scale", "3", "--steps", "2", "--set", "steps=3"])


def test_recipe_keys_as_options(tmp_path, monkeypatch, tiny_images):
    monkeypatch.setattr(images, "image_set", lambda split: {"a": tiny_images[0], "b": tiny_images[1]})
    out = tmp_path / "e.pt"
    assert train.main(["espcn", "--scale", "2", "--steps", "1", "--batch", "2", "--loss", "l1", "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["recipe"]["batch"] == 2 and saved["recipe"]["loss"] == "l1"
    assert saved["command"].endswith('--set batch=2 loss="l1"')
    out = tmp_path / "f.pt"                                # --set steps=N is the same as --steps N
    assert train.main(["espcn", "--scale", "2", "--set", "steps=1", "batch=2", "--out", str(out)]) == 0
    assert torch.load(out, weights_only=True)["steps"] == 1


def test_set_values_are_json_and_recorded_in_the_command(tmp_path, tiny_images):
    assert train._parse_set(["lr=1e-4", "bf16=true", 'model={"channels":8}', "loss=l1"]) == \
        {"lr": 1e-4, "bf16": True, "model": {"channels": 8}, "loss": "l1"}
    done = train.train("espcn", 2, 2, tmp_path / "e.pt", images=tiny_images, progress=False, batch=2, loss="l1")
    assert done["command"].endswith("--set batch=2 loss=\"l1\"")
    assert train._parse_set(done["command"].split("--set ")[1].split()) == {"batch": 2, "loss": "l1"}


def test_learning_rate_schedule():
    recipe = dict(lr=1e-3, steps=100, lr_decay_at=(0.5, 0.8), lr_decay=0.1)
    assert [sr.learning_rate(recipe, s) for s in (0, 49, 50, 79, 80, 99)] == \
        pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    assert sr.learning_rate(dict(lr=0.5, steps=10, lr_decay_at=()), 9) == 0.5


def test_images_folder_recursive_with_bad_files(tmp_path, tiny_images, capsys):
    folder = tmp_path / "data"
    images.save_image(tiny_images[0], folder / "a" / "one.png")
    images.save_image(images.load_skimage("camera", size=16), folder / "b" / "small.png")
    (folder / "b" / "broken.png").write_bytes(b"not a png")
    done = train.train("espcn", 2, 1, tmp_path / "e.pt", images_dir=folder, progress=False, batch=2)
    assert done["data"]["images"] == 1 and done["data"]["source"] == str(folder)
    assert any("broken.png" in m for m in done["data"]["skipped"])
    assert any("smaller than" in m for m in done["data"]["skipped"])
    assert "--images " + str(folder) in done["command"]
    assert "broken.png" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="missing"):
        train.train("espcn", 2, 1, tmp_path / "e.pt", images_dir=tmp_path / "missing", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no image files"):
        train.train("espcn", 2, 1, tmp_path / "e.pt", images_dir=tmp_path / "empty", progress=False)
    with pytest.raises(SystemExit, match=r"error: --images .*b: no image is at least 48x48 pixels"):
        train.main(["espcn", "--scale", "2", "--steps", "1", "--images", str(folder / "b"), "--out",
                    str(tmp_path / "e.pt")])


def test_eval_every_records_a_learning_curve(tmp_path, tiny_images, monkeypatch):
    monkeypatch.setattr(images, "image_set", lambda split, **k: {n: tiny_images[0] for n in "abcde"})
    done = train.train("espcn", 2, 4, tmp_path / "e.pt", images=tiny_images, progress=False, batch=2,
                       eval_every=2, save_every=3)
    assert done["history"]["eval_step"] == [2, 4] and len(done["history"]["eval_psnr"]) == 2


def test_train_cli_two_steps(tmp_path, monkeypatch, tiny_images):
    monkeypatch.setattr(images, "image_set", lambda split: {"a": tiny_images[0], "b": tiny_images[1]})
    out = tmp_path / "srcnn.pt"
    assert train.main(["srcnn", "--scale", "2", "--steps", "2", "--set", "batch=2", "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["name"] == "srcnn" and saved["steps"] == 2 and len(saved["history"]["loss"]) >= 1


def _registered(tmp_path, tiny_images):
    checkpoint = _train(tmp_path, tiny_images, 1)
    entry = checkpoints.register(tmp_path / "espcn_x2.pt", checkpoint, tmp_path / "registry.json")
    return checkpoint, entry


def test_load_checkpoint_round_trip(tmp_path, tiny_images):
    checkpoint, entry = _registered(tmp_path, tiny_images)
    assert entry["sha256"] == checkpoints.sha256(tmp_path / "espcn_x2.pt")
    model = checkpoints.load_checkpoint("espcn", 2, weights_dir=tmp_path)
    assert not model.training
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value)
    assert checkpoints.available(registry=tmp_path / "registry.json") == {"espcn": [2]}


def test_corrupt_or_missing_checkpoint_is_refused_with_retrain_command(tmp_path, tiny_images):
    _registered(tmp_path, tiny_images)
    path = tmp_path / "espcn_x2.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupted.*python -m course_utils.train espcn --scale 2 --steps 1"):
        checkpoints.load_checkpoint("espcn", 2, weights_dir=tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"missing.*python -m course_utils.train espcn --scale 2"):
        checkpoints.load_checkpoint("espcn", 2, weights_dir=tmp_path)


def test_unknown_scale_or_name_is_refused(tmp_path, tiny_images):
    _registered(tmp_path, tiny_images)
    with pytest.raises(ValueError, match=r"no shipped espcn checkpoint for scale=5 \(shipped scales: \[2\]\)"):
        checkpoints.load_checkpoint("espcn", 5, weights_dir=tmp_path)
    with pytest.raises(ValueError, match="name"):
        checkpoints.load_checkpoint("bicubic", 2, weights_dir=tmp_path)
    with pytest.raises(TypeError, match="scale"):
        checkpoints.load_checkpoint("espcn", "2", weights_dir=tmp_path)


def test_shipped_registry_matches_files():
    """Every registered checkpoint file exists, has its sha256 and loads."""
    entries = checkpoints.read_registry()
    for key, entry in entries.items():
        path = checkpoints.WEIGHTS_DIR / entry["file"]
        assert path.is_file(), key
        assert checkpoints.sha256(path) == entry["sha256"], key
        scale = f" --scale {entry['scale']}" if entry["scale"] is not None else ""   # generators have no scale
        assert entry["command"].startswith(f"python -m course_utils.train {entry['model']}{scale}")
        model = checkpoints.load_checkpoint(entry["model"], entry["scale"])
        assert getattr(model, "scale", None) == entry["scale"]
    total = sum(p.stat().st_size for p in checkpoints.WEIGHTS_DIR.glob("*.pt"))
    assert total < 50e6


def test_ship_copies_registers_and_renames(tmp_path, tiny_images):
    checkpoint = _train(tmp_path, tiny_images, 1)
    weights = tmp_path / "weights"
    entry = checkpoints.ship(tmp_path / "espcn_x2.pt", weights_dir=weights)
    assert entry["file"] == "espcn_x2.pt" and entry["sha256"] == checkpoints.sha256(weights / "espcn_x2.pt")
    model = checkpoints.load_checkpoint("espcn", 2, weights_dir=weights)
    assert torch.equal(model.state_dict()["conv1.weight"], checkpoint["state_dict"]["conv1.weight"])
    with pytest.raises(RuntimeError):                                        # an espcn file is not an srcnn
        checkpoints.ship(tmp_path / "espcn_x2.pt", "srcnn", weights_dir=weights)
    with pytest.raises(ValueError, match="name must be one of"):
        checkpoints.ship(tmp_path / "espcn_x2.pt", "nope", weights_dir=weights)
    torch.save({"name": "espcn", "step": 1, "model": checkpoint["state_dict"]}, tmp_path / "run.resume")
    with pytest.raises(ValueError, match="not a finished"):
        checkpoints.ship(tmp_path / "run.resume", weights_dir=weights)


def test_face_world_recipes_differ_from_the_natural_ones_only_in_the_data():
    from course_utils import sr3

    for name, base in [("sr3-faces", "sr3"), ("sr3-regression-faces", "sr3-regression")]:
        recipe, natural = sr3.RECIPES[name], sr3.RECIPES[base]
        assert {k for k in recipe if recipe[k] != natural[k]} == {"faces", "patch_hr", "batch", "steps"}
        assert recipe["faces"] == "balanced" and recipe["steps"] == 20000
    assert isinstance(sr.build_model("sr3-faces", 4, **sr.MODELS["sr3-faces"].tiny), sr3.SR3)
    assert isinstance(sr.build_model("sr3-regression-faces", 4, **sr.MODELS["sr3-regression-faces"].tiny),
                      sr3.SR3Regression)
