"""Training CLI: reproduces every shipped checkpoint.

    python -m course_utils.train MODEL --scale S [--images DIR] [--steps N] [--set KEY=VALUE ...] [--out PATH]
                                 [--resume] [--eval-every N]

Each paper module exports ``RECIPES`` (model name -> the recipe's defaults) and ``trainer(...)``, which builds the
model, its data and its optimisation step (``course_utils.sr.Trainer``). This file only does what every run
shares: seeding, the training images, resumable state every ``--save-every`` steps (``PATH.resume``), an atomic
save of the finished checkpoint (``PATH``, default ``course_utils/weights/<model>_x<scale>.pt``, registered with
its sha256 in ``weights/registry.json``) and the command that reproduces it.

Training images: every image under ``--images DIR`` (recursively; the shipped checkpoints used the papers' T91 or
T91 + BSD200), or by default the course's train split (``images.image_set('train')``). ``--set`` overrides recipe
entries (values are JSON, unknown keys are refused with the valid ones) and is recorded in the command.
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from . import checkpoints
from .runtime import device, seed_everything


def _recipes() -> dict:
    """model name -> (paper module, recipe) over every paper module."""
    found = {}
    for name in checkpoints.PAPER_MODULES:
        module = importlib.import_module(name)
        found.update({model: (module, recipe) for model, recipe in getattr(module, "RECIPES", {}).items()})
    return found


RECIPES = {name: recipe for name, (_, recipe) in _recipes().items()}
#: models trained without a scale (e.g. PULSE's generator): paper modules list them in their ``UNSCALED``
UNSCALED = {name for name, (module, _) in _recipes().items() if name in getattr(module, "UNSCALED", ())}


def hardware() -> str:
    name = "cuda " + torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"cpu {platform.processor() or platform.machine()}"
    return f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def bf16_supported() -> bool:
    """Whether bfloat16 autocast is fast here: CUDA, or a CPU whose oneDNN has native bf16 (AVX512-BF16/AMX)."""
    if torch.cuda.is_available():
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written file


def load_training_images(directory, min_size: int) -> tuple[list, list]:
    """Every image under ``directory`` (recursively) whose sides are at least ``min_size``, except the held-out
    split (:data:`course_utils.images.HELD_OUT`) -> (images, skipped messages). Unreadable files are skipped with a warning; a missing or empty folder, or one with no image large
    enough, is refused with a one-line error naming the folder and the size needed."""
    import warnings

    from .images import is_held_out, load_folder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_folder(directory, recursive=True)
    skipped = [str(w.message) for w in caught if str(w.message).startswith("skipping")]
    for message in skipped:
        print(f"warning: {message}", file=sys.stderr)
    held_out = [name for name, _ in loaded if is_held_out(name)]
    if held_out:      # never trained on: evaluate sr --held-out reports on them
        skipped.append(f"{len(held_out)} held-out image(s) (course_utils.images.HELD_OUT) not used for training")
        loaded = [(name, image) for name, image in loaded if not is_held_out(name)]
    images = [image for _, image in loaded if min(image.shape[-2:]) >= min_size]
    small = len(loaded) - len(images)
    if small:
        skipped.append(f"{small} image(s) smaller than {min_size} px")
    if not images:
        raise ValueError(f"--images {directory}: no image is at least {min_size}x{min_size} pixels (one high-res "
                         f"training patch); {len(loaded)} readable image(s) found")
    return images, skipped


def _test_split_psnr(model, scale: int) -> float:
    """Mean PSNR of ``model`` on the course's test split (papers' protocol): the learning curve of the model card.
    Recorded, never used to choose a checkpoint."""
    from .images import image_set
    from .sr import evaluate_image

    was_training = model.training
    values = [evaluate_image(model, image)["psnr"] for image in image_set("test").values()]
    model.train(was_training)
    return sum(values) / len(values)


def _check_keys(name: str, defaults: dict, overrides: dict) -> None:
    """Refuse override keys that are not keys of ``name``'s recipe, naming the valid ones."""
    unknown = sorted(set(overrides) - set(defaults) - {"download"})
    if unknown:
        raise ValueError(f"unknown recipe key(s) {unknown} for {name}; valid keys: {sorted(defaults)}")


def train(name: str, scale: int, steps: int | None = None, out=None, *, resume: bool = False, seed: int = 0,
          save_every: int = 100, images=None, images_dir=None, eval_every: int = 0, progress: bool = True,
          **overrides) -> dict:
    """Train ``name`` at ``scale`` following its paper module's recipe (``overrides`` replace recipe entries, e.g.
    ``batch=2`` in tests; unknown keys are refused); returns the saved checkpoint dict. Training images: ``images``
    (a list of (C, H, W) tensors), or every image under the folder ``images_dir`` (recursively), or by default the
    course's train split. ``eval_every`` > 0 records the test-split PSNR every that many steps
    (``history["eval_step"]``, ``history["eval_psnr"]``: the learning curve of the model card)."""
    known = _recipes()
    if name not in known:
        raise ValueError(f"name must be one of {sorted(known)}, got {name!r}")
    module, defaults = known[name]
    _check_keys(name, defaults, overrides)
    recipe = {**defaults, **overrides}
    steps = recipe["steps"] if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    recipe["steps"] = steps
    if recipe.get("bf16") and not bf16_supported():
        print("bf16 autocast is not supported natively here: training in float32", flush=True)
        recipe["bf16"] = False
    out = Path(out) if out is not None else checkpoints.WEIGHTS_DIR / checkpoints.filename(name, scale)
    state_path = out.with_name(out.name + ".resume")
    data = {"source": "course train split (scikit-image)", "skipped": []}

    def load_images(min_size: int) -> list:
        """The training images (called by the paper module's trainer, which knows the patch size)."""
        if images is not None:
            found = list(images)
        elif images_dir is not None:
            found, data["skipped"] = load_training_images(images_dir, min_size)
            data["source"] = str(images_dir)
        else:
            from .images import image_set
            found = list(image_set("train").values())
        data["images"] = len(found)
        return found

    generator = seed_everything(seed)          # the global RNG initialises the weights, `generator` draws the data
    run = module.trainer(name, scale, recipe, load_images, generator, seed).to(device())
    if getattr(run, "data_source", None):      # a trainer that makes its own data (e.g. PULSE's rendered faces)
        data["source"] = run.data_source
    label = name if scale is None else f"{name} x{scale}"
    history, done = None, 0
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {state_path}; start without --resume")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if (state["name"], state["scale"], state["seed"]) != (name, scale, seed):
            raise ValueError(f"{state_path} is a run of {state['name']} x{state['scale']} seed {state['seed']}, "
                             f"not {label} seed {seed}")
        run.model.load_state_dict(state["model"])
        run.load_state_dict(state["trainer"])
        history, done = state["history"], state["step"]
        if done > steps:
            raise ValueError(f"{state_path} already has {done} steps, more than --steps {steps}")
        print(f"resuming {label} from step {done}", flush=True)

    while done < steps:
        chunk = min(save_every, steps - done)
        if eval_every:
            chunk = min(chunk, eval_every - done % eval_every)
        history = run.run(chunk, start=done, history=history, progress=progress)
        done += chunk
        if eval_every and (done % eval_every == 0 or done == steps):
            history.setdefault("eval_step", []).append(done)
            history.setdefault("eval_psnr", []).append(_test_split_psnr(run.model, scale))
            print(f"{label}: step {done}  test-split PSNR {history['eval_psnr'][-1]:.3f} dB", flush=True)
        _save({"name": name, "scale": scale, "seed": seed, "step": done, "model": run.model.state_dict(),
               "trainer": run.state_dict(), "history": history}, state_path)
        print(f"{label}: step {done}/{steps}  loss {history['loss'][-1]:.5f}  "
              f"{history['seconds'][-1]:.0f} s", flush=True)
    history = history or {"step": [], "loss": [], "seconds": []}

    command = f"python -m course_utils.train {name}" + (f" --scale {scale}" if scale is not None else "") + \
        f" --steps {steps}" + \
        (f" --seed {seed}" if seed else "") + (f" --images {images_dir}" if images_dir is not None else "")
    changed = {k: v for k, v in overrides.items() if k not in ("steps", "download") and v != defaults.get(k)}
    if changed:   # non-default options, so the command reproduces the run
        command += " --set " + " ".join(f"{k}={_format(v)}" for k, v in changed.items())
    checkpoint = {"format": 1, "name": name, "scale": scale, "config": run.config,
                  "state_dict": run.model.cpu().state_dict(),
                  "recipe": {**recipe, **run.info}, "seed": seed,
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
    return json.dumps(value, separators=(",", ":"))


def _parse_set(items) -> dict:
    """``["lr=1e-4", 'model={"channels":64}']`` -> ``{"lr": 0.0001, "model": {"channels": 64}}`` (JSON values;
    a bare word is a string)."""
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
    parser.add_argument("--scale", type=int, default=None,
                        help="upscaling factor (2, 3, 4, ...); required by every model that upscales")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of high-res training images, read recursively (default: the course's train "
                             "split), e.g. T91 or T91 + BSD200")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override recipe entries, e.g. --set lr=1e-4 batch=32 bf16=true (values are JSON); "
                             "--KEY VALUE works too for any recipe key, e.g. --mix skewed")
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
    args, extra = build_parser().parse_known_args(argv)
    try:
        overrides = _parse_set(args.set)
        overrides.update(_parse_options(extra, args.model))
        scaled = args.model not in UNSCALED
        if scaled and (args.scale is None or args.scale < 2):
            raise ValueError(f"--scale must be an integer >= 2 for {args.model}, got {args.scale}")
        if not scaled and args.scale is not None:
            raise ValueError(f"{args.model} has no scale: leave out --scale")
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.download:
            overrides["download"] = True
        if "steps" in overrides:                   # a recipe key that is also --steps: take it from either, once
            if args.steps is not None and args.steps != overrides["steps"]:
                raise ValueError(f"steps given twice: --steps {args.steps} and --set steps={overrides['steps']}")
            args.steps = overrides.pop("steps")
        _check_keys(args.model, RECIPES[args.model], overrides)   # before they could clash with train()'s arguments
        train(args.model, args.scale, args.steps, args.out, resume=args.resume, seed=args.seed,
              save_every=max(1, args.save_every), images_dir=args.images, eval_every=max(0, args.eval_every),
              progress=sys.stderr.isatty(), **overrides)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        raise SystemExit(f"error: {error}") from None
    return 0


def _parse_options(extra: list, model: str) -> dict:
    """``['--mix', 'skewed']`` -> ``{"mix": "skewed"}`` for recipe keys of ``model`` (``--key value`` is the same as
    ``--set key=value``); anything else is refused, naming the valid keys."""
    valid = RECIPES[model]
    values, rest = {}, list(extra)
    while rest:
        flag = rest.pop(0)
        key = flag[2:].replace("-", "_") if flag.startswith("--") else None
        if key not in valid or not rest:
            raise ValueError(f"unrecognised argument {flag!r}; recipe keys of {model} (as --set KEY=VALUE or "
                             f"--KEY VALUE): {sorted(valid)}")
        values.update(_parse_set([f"{key}={rest.pop(0)}"]))
    return values


if __name__ == "__main__":
    sys.exit(main())
