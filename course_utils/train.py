"""Training CLI: reproduces every shipped super-resolution checkpoint.

    python -m course_utils.train {srcnn,espcn,vdsr} --scale S [--steps N] [--out PATH] [--resume]

Recipe (one per model, ``RECIPES``): Y-channel patches of the course's train split (``images.image_set('train')``),
low-res made by ``operators.Downsample(scale)`` (antialiased MATLAB-style bicubic), random crops + flips + 90-degree
rotations, Adam at a constant learning rate, L1 loss, seed 0. A constant learning rate makes training extendable:
resuming a run of N steps up to M steps gives the same weights as training M steps at once.

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

#: patch = low-res patch side (high-res side = scale * patch); steps = what the shipped checkpoints used.
RECIPES = {
    "srcnn": dict(patch_hr=33, batch=16, lr=1e-3, loss="l1", clip_theta=None, steps=10000),
    "espcn": dict(patch_hr=48, batch=16, lr=1e-3, loss="l1", clip_theta=None, steps=40000),
    "vdsr": dict(patch_hr=41, batch=16, lr=3e-4, loss="l1", clip_theta=0.01, steps=1500),
    # SRResNet: the paper's 16 blocks and 96 px high-res patches, MSE; for the CPU budget 32 channels instead of
    # 64 and a bicubic skip (starts at bicubic; see sr.SRResNet)
    "srresnet": dict(patch_hr=96, batch=16, lr=3e-4, loss="l2", clip_theta=None, steps=4000,
                     model=dict(n_blocks=16, channels=32, bicubic_skip=True)),
    # SRGAN: starts from the shipped SRResNet (init), perceptual loss = VGG54 content + 1e-3 adversarial, lr 1e-4
    # (the paper's first phase); smaller patches/batch and a 32-channel discriminator for the CPU budget.
    # vgg: 'random' (offline substitute) or 'imagenet' (needs the downloaded weights: --vgg imagenet --download)
    "srgan": dict(patch_hr=64, batch=8, lr=1e-4, content="vgg54", vgg="random", adversarial_weight=1e-3,
                  discriminator=dict(channels=32), init="srresnet", steps=2000),
}


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
        raise FileNotFoundError(f"--init: no checkpoint file at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("name") not in ("srresnet", "srgan") or checkpoint.get("scale") != scale:
        raise ValueError(f"--init: {path} is a {checkpoint.get('name')} x{checkpoint.get('scale')} checkpoint, "
                         f"not an SRResNet/SRGAN generator at x{scale}")
    return {"config": checkpoint["config"], "state_dict": checkpoint["state_dict"], "source": str(path)}


def train(name: str, scale: int, steps: int | None = None, out=None, *, resume: bool = False, seed: int = 0,
          save_every: int = 100, images=None, progress: bool = True, **overrides) -> dict:
    """Train ``name`` at ``scale`` following ``RECIPES[name]`` (``overrides`` replace recipe entries, e.g.
    ``batch=2`` in tests); returns the saved checkpoint dict. ``images``: high-res training images (default: the
    course's train split)."""
    if name not in RECIPES:
        raise ValueError(f"name must be one of {sorted(RECIPES)}, got {name!r}")
    recipe = {**RECIPES[name], **overrides}
    steps = recipe["steps"] if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    recipe["steps"] = steps
    out = Path(out) if out is not None else checkpoints.WEIGHTS_DIR / checkpoints.filename(name, scale)
    state_path = out.with_name(out.name + ".resume")
    generator = seed_everything(seed)
    if images is None:
        from .images import image_set
        images = list(image_set("train").values())
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
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    sampler = PatchSampler(images, scale, patch)
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
        if gan:
            history = train_gan_steps(model, discriminator, content, sampler, optimizer, optimizer_d, chunk,
                                      batch=recipe["batch"], adversarial_weight=recipe["adversarial_weight"],
                                      generator_rng=generator, history=history, start=done, progress=progress)
        else:
            history = train_steps(model, sampler, optimizer, chunk, batch=recipe["batch"], loss=recipe["loss"],
                                  generator=generator, clip_theta=recipe["clip_theta"], history=history, start=done,
                                  progress=progress)
        done += chunk
        state = {"name": name, "scale": scale, "seed": seed, "step": done, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "history": history}
        if gan:
            state.update(discriminator=discriminator.state_dict(), optimizer_d=optimizer_d.state_dict())
        _save(state, state_path)
        print(f"{name} x{scale}: step {done}/{steps}  loss {history['loss'][-1]:.5f}  "
              f"{history['seconds'][-1]:.0f} s", flush=True)
    history = history or {"step": [], "loss": [], "seconds": []}

    command = f"python -m course_utils.train {name} --scale {scale} --steps {steps}" + \
        (f" --seed {seed}" if seed else "")
    for key, flag in (("batch", "--batch"), ("init", "--init"), ("content", "--content"), ("vgg", "--vgg"),
                      ("adversarial_weight", "--adversarial-weight")):   # non-default options, so it reproduces
        if key in overrides and overrides[key] != RECIPES[name].get(key):
            command += f" {flag} {overrides[key]}"
    checkpoint = {"format": 1, "name": name, "scale": scale, "config": config,
                  "state_dict": model.cpu().state_dict(),
                  "recipe": {**recipe, "patch_lr": patch, "patch_hr": patch * scale}, "seed": seed,
                  "steps": steps, "seconds": history["seconds"][-1] if history["seconds"] else 0.0,
                  "hardware": hardware(), "command": command,
                  "history": {k: v for k, v in history.items() if k != "seconds"},
                  "date": time.strftime("%Y-%m-%d", time.gmtime())}
    _save(checkpoint, out)
    print(f"saved {out}", flush=True)
    if out.resolve().parent == checkpoints.WEIGHTS_DIR.resolve():
        checkpoints.register(out, checkpoint)
        print(f"registered {out.name} in {checkpoints.REGISTRY.name}", flush=True)
    return checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_utils.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor (2, 3, 4, ...)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint path (default: course_utils/weights/<model>_x<scale>.pt, registered)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.resume")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100, help="steps between resumable states")
    parser.add_argument("--batch", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    gan = parser.add_argument_group("srgan only")
    gan.add_argument("--init", default=None, help="generator to start from: 'srresnet' (the registered checkpoint, "
                     "default) or a checkpoint path")
    gan.add_argument("--content", default=None, help="content loss: mse, vgg22, vgg54 (default), ...")
    gan.add_argument("--vgg", choices=["random", "imagenet"], default=None,
                     help="VGG19 weights for the content loss (default: random, the offline substitute)")
    gan.add_argument("--download", action="store_true", help="allow downloading the ImageNet VGG19 weights")
    gan.add_argument("--adversarial-weight", type=float, default=None, help="w in l_content + w l_adv (1e-3)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.scale < 2:
        raise SystemExit(f"--scale must be an integer >= 2, got {args.scale}")
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"batch": args.batch} if args.batch else {}
    gan_options = {"init": args.init, "content": args.content, "vgg": args.vgg,
                   "adversarial_weight": args.adversarial_weight, "download": args.download or None}
    if args.model != "srgan" and any(v is not None for v in gan_options.values()):
        raise SystemExit("error: --init/--content/--vgg/--download/--adversarial-weight are options of srgan only")
    overrides.update({k: v for k, v in gan_options.items() if v is not None})
    try:
        train(args.model, args.scale, args.steps, args.out, resume=args.resume, seed=args.seed,
              save_every=max(1, args.save_every), **overrides)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        raise SystemExit(f"error: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
