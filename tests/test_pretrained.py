"""Opt-in, hash-checked outside weights (VGG19 here) and the key/shape check of a state dict."""
import pytest
import torch

from course_utils import images, pretrained, srgan, train


def _torchvision_like_state_dict(seed=1):
    """A random state dict with exactly torchvision vgg19's keys (the dense layers are not used by the course,
    so they are stored small here; only the feature tensors must have the real shapes)."""
    state = srgan.VGG19Features("vgg54", seed=seed).state_dict()
    state = {k: v.clone() for k, v in state.items()}
    for i in (0, 3, 6):
        state[f"classifier.{i}.weight"], state[f"classifier.{i}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    assert tuple(state) == srgan.VGG19_KEYS
    return state


def test_load_vgg19_from_a_saved_state_dict(tmp_path):
    state = _torchvision_like_state_dict()
    torch.save(state, tmp_path / "vgg19.pth")
    vgg = srgan.load_vgg19("vgg22", "imagenet", path=tmp_path / "vgg19.pth")
    assert torch.equal(vgg.features[7].weight, state["features.7.weight"])
    assert "ImageNet" in vgg.weights
    deep = srgan.load_vgg19("vgg54", "imagenet", path=tmp_path / "vgg19.pth")
    assert torch.equal(deep.features[34].bias, state["features.34.bias"])


def test_wrong_keys_or_shapes_are_refused_by_name(tmp_path):
    model = srgan.VGG19Features("vgg22")
    state = _torchvision_like_state_dict()
    renamed = dict(state)
    renamed["features.2.kernel"] = renamed.pop("features.2.weight")
    with pytest.raises(ValueError, match=r"missing keys \['features.2.weight'\].*unknown keys "
                                         r"\['features.2.kernel'\]"):
        srgan.load_vgg19_state(model, renamed)
    reshaped = dict(state)
    reshaped["features.5.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(ValueError, match=r"wrong shapes \['features.5.weight: \(128, 64, 5, 5\) instead of "
                                         r"\(128, 64, 3, 3\)'\]"):
        srgan.load_vgg19_state(model, reshaped)
    torch.save(reshaped, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth is not a VGG19 state dict"):
        srgan.load_vgg19("vgg22", "imagenet", path=tmp_path / "bad.pth")
    with pytest.raises(TypeError, match="must be a dict"):
        srgan.load_vgg19_state(model, [1, 2])
    with pytest.raises(FileNotFoundError, match="path: no VGG19 weights file"):
        srgan.load_vgg19("vgg22", "imagenet", path=tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="weights must be"):
        srgan.load_vgg19("vgg22", "places365")


def test_imagenet_weights_are_downloaded_only_on_opt_in(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"not cached.*download=True.*weights='random'"):
        srgan.load_vgg19("vgg22", "imagenet")
    assert not (tmp_path / "hub").exists()                     # nothing was fetched without the opt-in


def test_download_offline_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    offline = "http://127.0.0.1:9/vgg19-dcbb9e9d.pth"            # nothing listens there: like having no network
    with pytest.raises(ConnectionError, match=r"could not download the VGG19 weights.*offline.*weights='random'"):
        srgan.load_vgg19("vgg22", "imagenet", download=True, url=offline)
    # the training CLI turns it into one line, no traceback maze
    tiny = [images.load_skimage("camera", size=64), images.load_skimage("coins", size=64)]
    monkeypatch.setattr(images, "image_set", lambda split: {"a": tiny[0], "b": tiny[1]})
    monkeypatch.setattr(srgan, "VGG19_URL", offline)
    train.train("srresnet", 4, 1, tmp_path / "g.pt", images=tiny, progress=False, batch=1, patch_hr=32,
                model=dict(n_blocks=1, channels=4))
    with pytest.raises(SystemExit, match="error: could not download the VGG19 weights"):
        train.main(["srgan", "--scale", "4", "--steps", "1", "--set", "vgg=imagenet", "content=vgg22",
                    f"init={tmp_path / 'g.pt'}", "--download", "--out", str(tmp_path / "gan.pt")])
    with pytest.raises(SystemExit, match="vgg='imagenet' has no effect with content='mse'"):   # the shipped recipe's
        train.main(["srgan", "--scale", "4", "--steps", "1", "--set", "vgg=imagenet", f"init={tmp_path / 'g.pt'}",
                    "--out", str(tmp_path / "gan.pt")])


def test_download_verifies_the_hash_and_caches(tmp_path, monkeypatch):
    """The real download path, fed by a file:// URL: cached under torch's hub folder, hash-checked."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    source = tmp_path / "served.pth"
    torch.save(_torchvision_like_state_dict(), source)
    from course_utils.checkpoints import sha256
    prefix = sha256(source)[:8]
    vgg = srgan.load_vgg19("vgg22", "imagenet", download=True, url=source.as_uri(), sha256_prefix=prefix)
    assert pretrained.cache_path(srgan.VGG19_URL).is_file() and "ImageNet" in vgg.weights
    source.unlink()                                            # second time: from the cache, no download
    srgan.load_vgg19("vgg22", "imagenet", sha256_prefix=prefix)
    with pytest.raises(ValueError, match="corrupted or not the VGG19 weights"):
        srgan.load_vgg19("vgg22", "imagenet")                     # the official prefix does not match this file
