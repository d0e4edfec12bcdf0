"""Training CLI: reproduces every shipped super-resolution checkpoint.

    python -m course_utils.train MODEL --scale S [--images DIR] [--steps N] [--set KEY=VALUE ...] [--out PATH]
                                 [--resume] [--eval-every N]

Recipe (one per model, ``RECIPES``): Y-channel patches of the images in ``--images DIR`` (recursively; the shipped
checkpoints used the papers' T91 or T91 + BSD200) or, without it, of the course's train split
(``images.image_set('train')``); low-res made by ``operators.Downsample(scale)`` (antialiased MATLAB-style bicubic),
random crops + flips + 90-degree rotations, Adam, MSE loss (the papers'), the learning rate divided by 10 for the
last 20 % of the steps, bfloat16 autocast where the CPU supports it, seed 0. ``--set`` overrides recipe entries
and is recorded in the checkpoint's command, so the command reproduces the run.

Every ``--save-every`` steps the full training state (model, optimiser, patch generator, history) is written to
``PATH.resume``; ``--resume`` continues from it. The finished checkpoint (``PATH``, default
``course_utils/weights/<model>_x<scale>.pt``) holds the weights and how they were made; writing it into the
package's weights folder also registers it (sha256) in ``weights/registry.json``.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from . import checkpoints
from .runtime import device, seed_everything
from .sr import PatchSampler, build_model, train_gan_steps, train_steps

#: patch_hr = high-res patch side (the low-res side is patch_hr / scale); steps = what the shipped checkpoints used.
#: loss 'l2' = MSE, the papers' loss. lr_decay_at: fractions of the run after which the learning rate is multiplied
#: by lr_decay (the papers' step schedules). bf16: bfloat16 autocast for the forward pass (about 2x faster on CPUs
#: with AVX512-BF16 or AMX; ignored where unsupported).
COMMON = dict(batch=16, loss="l2", clip_theta=None, lr_decay_at=(0.8,), lr_decay=0.1, bf16=True)
RECIPES = {
    # SRCNN and ESPCN: the 91 images of Yang et al. (T91), as in both papers
    "srcnn": dict(COMMON, patch_hr=33, lr=1e-3, steps=100000),
    "espcn": dict(COMMON, patch_hr=48, lr=1e-3, steps=100000),
    # VDSR: the 291 images (T91 + BSD200), 41 px patches; Adam instead of SGD 0.1 + clipping (see the model card)
    "vdsr": dict(COMMON, patch_hr=41, lr=3e-4, clip_theta=0.01, steps=20000),
    # SRResNet: the paper's 16 blocks and 96 px high-res patches, MSE, 291 images; for the CPU budget 32 channels
    # instead of 64 and a bicubic skip (starts at bicubic; see sr.SRResNet)
    "srresnet": dict(COMMON, patch_hr=96, lr=3e-4, steps=25000, model=dict(n_blocks=16, channels=32, bicubic_skip=True)),
    # SRGAN: starts from the shipped SRResNet (init), perceptual loss = VGG54 content + 1e-3 adversarial, lr 1e-4
    # (the paper's first phase); smaller patches/batch and a 32-channel discriminator for the CPU budget.
    # vgg: 'random' (offline substitute) or 'imagenet' (needs the downloaded weights: --set vgg=imagenet --download)
    "srgan": dict(COMMON, patch_hr=64, batch=8, lr=1e-4, content="vgg54", vgg="random", adversarial_weight=1e-3,
                  discriminator=dict(channels=32), init="srresnet", steps=2000),
}


def learning_rate(recipe: dict, step: int) -> float:
    """The recipe's learning rate at (0-based) ``step``: lr x lr_decay^(number of lr_decay_at fractions passed)."""
    passed = sum(step >= round(f * recipe["steps"]) for f in recipe.get("lr_decay_at") or ())
    return recipe["lr"] * recipe.get("lr_decay", 1.0) ** passed


def bf16_supported() -> bool:
    """Whether bfloat16 autocast is fast here: CUDA, or a CPU whose oneDNN has native bf16 (AVX512-BF16/AMX)."""
    if torch.cuda.is_available():
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_training_images(directory, min_size: int) -> tuple[list, list]:
    """Every image under ``directory`` (recursively) whose sides are at least ``min_size`` -> (images, skipped
    messages). Unreadable files are skipped with a warning; a missing or empty folder, or one with no image large
    enough, is refused with a one-line error naming the folder and the size needed."""
    import warnings

    from .images import load_folder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_folder(directory, recursive=True)
    skipped = [str(w.message) for w in caught if str(w.message).startswith("skipping")]
    for message in skipped:
        print(f"warning: {message}", file=sys.stderr)
    images = [image for _, image in loaded if min(image.shape[-2:]) >= min_size]
    small = len(loaded) - len(images)
    if small:
        skipped.append(f"{small} image(s) smaller than {min_size} px")
    if not images:
        raise ValueError(f"--images {directory}: no image is at least {min_size}x{min_size} pixels (one high-res "
                         f"training patch); {len(loaded)} readable image(s) found")
    return images, skipped


def hardware() -> str:
    name = "cuda " + torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"cpu {platform.processor() or platform.machine()}"
    return f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written file


def _load_init(init, scale: int) -> dict:
    """The generator SRGAN starts from: ``'srresnet'`` = the registered SRResNet checkpoint for ``scale`` (checked
    against its sha256), or a path to a checkpoint file written by this CLI."""
    if init == "srresnet":
        model = checkpoints.load_checkpoint("srresnet", scale)
        digest = checkpoints.read_registry()[f"srresnet_x{scale}"]["sha256"]
        return {"config": model.config, "state_dict": model.state_dict(),
                "source": f"srresnet_x{scale} (registered, sha256 {digest[:12]}...)"}
    path = Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"init: no checkpoint file at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("name") not in ("srresnet", "srgan") or checkpoint.get("scale") != scale:
        raise ValueError(f"init: {path} is a {checkpoint.get('name')} x{checkpoint.get('scale')} checkpoint, "
                         f"not an SRResNet/SRGAN generator at x{scale}")
    return {"config": checkpoint["config"], "state_dict": checkpoint["state_dict"], "source": str(path)}


def _test_split_psnr(model, scale: int) -> float:
    """Mean PSNR of ``model`` on the course's test split (papers' protocol): the learning curve of the model card.
    Recorded, never used to choose a checkpoint."""
    from .images import image_set
    from .sr import evaluate_image

    was_training = model.training
    value = sum(evaluate_image(model, im)["psnr"] for im in image_set("test").values()) / 5
    model.train(was_training)
    return value


def train(name: str, scale: int, steps: int | None = None, out=None, *, resume: bool = False, seed: int = 0,
          save_every: int = 100, images=None, images_dir=None, eval_every: int = 0, progress: bool = True,
          **overrides) -> dict:
    """Train ``name`` at ``scale`` following ``RECIPES[name]`` (``overrides`` replace recipe entries, e.g.
    ``batch=2`` in tests; unknown keys are refused); returns the saved checkpoint dict. Training images:
    ``images`` (a list of (C, H, W) tensors), or every image under the folder ``images_dir`` (recursively), or by
    default the course's train split. ``eval_every`` > 0 records the test-split PSNR every that many steps
    (``history["eval_step"]``, ``history["eval_psnr"]``: the learning curve of the model card)."""
    if name not in RECIPES:
        raise ValueError(f"name must be one of {sorted(RECIPES)}, got {name!r}")
    unknown = sorted(set(overrides) - set(RECIPES[name]) - {"download"})
    if unknown:
        raise ValueError(f"unknown recipe key(s) {unknown} for {name}; valid keys: {sorted(RECIPES[name])}")
    recipe = {**RECIPES[name], **overrides}
    steps = recipe["steps"] if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    recipe["steps"] = steps
    if recipe["bf16"] and not bf16_supported():
        print("bf16 autocast is not supported natively here: training in float32", flush=True)
        recipe["bf16"] = False
    out = Path(out) if out is not None else checkpoints.WEIGHTS_DIR / checkpoints.filename(name, scale)
    state_path = out.with_name(out.name + ".resume")
    generator = seed_everything(seed)
    data = {"source": "course train split (scikit-image)", "skipped": []}
    gan = name == "srgan"
    if gan:   # SRGAN starts from a trained SRResNet, as in the paper
        init = _load_init(recipe["init"], scale)
        config = init["config"]
        model = build_model(name, scale, **config)
        model.load_state_dict(init["state_dict"])
        model = model.to(device())
        recipe["init"] = init["source"]
    else:
        config = recipe.get("model", {})
        model = build_model(name, scale, **config).to(device())
    patch = max(round(recipe["patch_hr"] / scale), model.receptive_field)  # low-res patch side
    if images is None and images_dir is not None:
        images, data["skipped"] = load_training_images(images_dir, patch * scale)
        data["source"] = str(images_dir)
    elif images is None:
        from .images import image_set
        images = list(image_set("train").values())
    data["images"] = len(images)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    sampler = PatchSampler(images, scale, patch)
    schedule = lambda step: learning_rate(recipe, step)  # noqa: E731
    if gan:
        from .sr import Discriminator, make_content_loss
        discriminator = Discriminator(model.image_channels, **recipe["discriminator"]).to(device())
        optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=recipe["lr"])
        content = make_content_loss(recipe["content"], recipe["vgg"], sampler=sampler,
                                    download=recipe.get("download", False), seed=seed + 1)
        recipe["feature_scale"] = content.feature_scale
        if content.vgg is not None:
            print(f"content loss {recipe['content']} with VGG19 weights: {content.vgg.weights}; features scaled "
                  f"by {content.feature_scale:.4g}", flush=True)
        content = content.to(device())
    history, done = None, 0
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {state_path}; start without --resume")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if (state["name"], state["scale"], state["seed"]) != (name, scale, seed):
            raise ValueError(f"{state_path} is a run of {state['name']} x{state['scale']} seed {state['seed']}, "
                             f"not {name} x{scale} seed {seed}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if gan:
            discriminator.load_state_dict(state["discriminator"])
            optimizer_d.load_state_dict(state["optimizer_d"])
        generator.set_state(state["generator"])
        history, done = state["history"], state["step"]
        if done > steps:
            raise ValueError(f"{state_path} already has {done} steps, more than --steps {steps}")
        print(f"resuming {name} x{scale} from step {done}", flush=True)

    while done < steps:
        chunk = min(save_every, steps - done)
        if eval_every:
            chunk = min(chunk, eval_every - done % eval_every)
        if gan:
            history = train_gan_steps(model, discriminator, content, sampler, optimizer, optimizer_d, chunk,
                                      batch=recipe["batch"], adversarial_weight=recipe["adversarial_weight"],
                                      generator_rng=generator, history=history, start=done, progress=progress,
                                      bf16=recipe["bf16"], lr_at=schedule)
        else:
            history = train_steps(model, sampler, optimizer, chunk, batch=recipe["batch"], loss=recipe["loss"],
                                  generator=generator, clip_theta=recipe["clip_theta"], history=history, start=done,
                                  progress=progress, bf16=recipe["bf16"], lr_at=schedule)
        done += chunk
        if eval_every and (done % eval_every == 0 or done == steps):
            history.setdefault("eval_step", []).append(done)
            history.setdefault("eval_psnr", []).append(_test_split_psnr(model, scale))
            print(f"{name} x{scale}: step {done}  test-split PSNR {history['eval_psnr'][-1]:.3f} dB", flush=True)
        state = {"name": name, "scale": scale, "seed": seed, "step": done, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "history": history}
        if gan:
            state.update(discriminator=discriminator.state_dict(), optimizer_d=optimizer_d.state_dict())
        _save(state, state_path)
        print(f"{name} x{scale}: step {done}/{steps}  loss {history['loss'][-1]:.5f}  "
              f"{history['seconds'][-1]:.0f} s", flush=True)
    history = history or {"step": [], "loss": [], "seconds": []}

    command = f"python -m course_utils.train {name} --scale {scale} --steps {steps}" + \
        (f" --seed {seed}" if seed else "") + (f" --images {images_dir}" if images_dir is not None else "")
    changed = {k: v for k, v in overrides.items() if k not in ("steps", "download") and v != RECIPES[name].get(k)}
    if changed:   # non-default options, so the command reproduces the run
        command += " --set " + " ".join(f"{k}={_format(v)}" for k, v in changed.items())
    checkpoint = {"format": 1, "name": name, "scale": scale, "config": config,
                  "state_dict": model.cpu().state_dict(),
                  "recipe": {**recipe, "patch_lr": patch, "patch_hr": patch * scale}, "seed": seed,
                  "steps": steps, "seconds": history["seconds"][-1] if history["seconds"] else 0.0,
                  "hardware": hardware(), "command": command, "data": data,
                  "history": {k: v for k, v in history.items() if k != "seconds"},
                  "date": time.strftime("%Y-%m-%d", time.gmtime())}
    _save(checkpoint, out)
    print(f"saved {out}", flush=True)
    if out.resolve().parent == checkpoints.WEIGHTS_DIR.resolve():
        checkpoints.register(out, checkpoint)
        print(f"registered {out.name} in {checkpoints.REGISTRY.name}", flush=True)
    return checkpoint


def _format(value) -> str:
    """A recipe value as it is typed after --set (JSON, without spaces)."""
    import json

    return json.dumps(value, separators=(",", ":"))


def _parse_set(items) -> dict:
    """``["lr=1e-4", "model={\"channels\":64}"]`` -> ``{"lr": 0.0001, "model": {"channels": 64}}`` (JSON values;
    a bare word is a string)."""
    import json

    values = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value pairs, got {item!r}")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_utils.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor (2, 3, 4, ...)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of high-res training images, read recursively (default: the course's train "
                             "split), e.g. T91 or T91 + BSD200")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override recipe entries, e.g. --set lr=1e-4 batch=32 bf16=true (values are JSON)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint path (default: course_utils/weights/<model>_x<scale>.pt, registered)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.resume")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100, help="steps between resumable states")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="record the test-split PSNR every N steps (the model card's learning curve)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--download", action="store_true",
                        help="allow downloading outside weights a recipe needs (srgan with vgg=imagenet)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.scale < 2:
        raise SystemExit(f"error: --scale must be an integer >= 2, got {args.scale}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = _parse_set(args.set)
        if args.download:
            overrides["download"] = True
        train(args.model, args.scale, args.steps, args.out, resume=args.resume, seed=args.seed,
              save_every=max(1, args.save_every), images_dir=args.images, eval_every=max(0, args.eval_every),
              **overrides)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        raise SystemExit(f"error: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
