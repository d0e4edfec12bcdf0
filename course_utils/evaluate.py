"""Evaluation CLI: per-image and mean PSNR/SSIM tables for any folder of images.

    python -m course_utils.evaluate denoise --method bm3d --sigma 25 --images DIR [--size N] [--json PATH]
    python -m course_utils.evaluate sr --model bicubic --scale 3 --images DIR [--json PATH]
    python -m course_utils.evaluate pulse --generator skewed --n 50 --group dark [--seed S] [--json PATH]
    python -m course_utils.evaluate sr --model sr3 --scale 4 --images DIR --steps 25 --samples 4 [--sampler ddim]
    python -m course_utils.evaluate sr --model srgan --scale 4 --images ../shared/datasets/sr-train --held-out --crop 128
    python -m course_utils.evaluate posterior --method pulse-skewed --scale 8 --n 30 --samples 8 [--seed S] [--json PATH]

JSON: {"task", "method", "images": [{"name", "psnr", "ssim", ...}], "mean": {"psnr", "ssim"}}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def summarize(task: str, method: str, rows: list[dict], json_path=None, extra: dict | None = None) -> dict:
    """Print a table of ``rows`` (dicts with at least name, psnr, ssim) and their mean; optionally write JSON."""
    if not rows:
        raise SystemExit(f"no image could be evaluated for {task}/{method}")
    optional = ("hf", "detail", "grid", "lattice", "lattice_truth", "consistency", "psnr_single", "ssim_single",
                "spread", "seconds")
    averaged = ["psnr", "ssim"] + [k for k in optional if all(k in r for r in rows)]
    report = {"task": task, "method": method, **(extra or {}), "images": rows,
              "mean": {k: float(np.mean([r[k] for r in rows])) for k in averaged}}
    columns = [k for k in rows[0] if k != "name"]
    width = max(12, *(len(r["name"]) for r in rows))
    print(f"{task} / {method}")
    print(f"{'image':<{width}} " + " ".join(f"{c:>10}" for c in columns))
    fmt = lambda v: f"{v:>10.4f}" if isinstance(v, float) else f"{v!s:>10}"  # noqa: E731
    for r in rows:
        print(f"{r['name']:<{width}} " + " ".join(fmt(r[c]) for c in columns))
    print(f"{'mean':<{width}} " + " ".join(f"{report['mean'][k]:>10.4f}" for k in averaged))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
    return report


DENOISERS = ("dip", "dip-controlled", "bm3d", "nlm", "tv")


def _fit_controlled(noisy, clean, iters: int, width: int, seed: int) -> dict:
    """Shi et al.'s controlled decoder with the paper's settings (:class:`spectral.DecoderNet` defaults: Lipschitz
    1.4 on the 3x3 convolutions, Gaussian upsampling of widths 0.1/0.1/0.1/0.5/0.5, mean-only BN; Adam 0.001):
    the output after ``iters`` steps (no early stopping needed), plus where the no-reference stop fires and the
    PSNR there."""
    from . import spectral
    from .metrics import psnr, ssim

    result = spectral.fit_with_spectra(noisy, clean=clean, options=spectral.variants()["both (Shi et al.)"],
                                       channels=width, iters=iters, lr=spectral.PAPER_LR, every=25, seed=seed)
    history = result.history
    stop = spectral.stopping_iteration(history["iter"], history["ratio"], window=100, tolerance=0.01)
    return {"psnr": psnr(result.output, clean), "ssim": ssim(result.output, clean), "final_psnr": result.final_psnr,
            "best_psnr": result.best_psnr, "best_iter": result.best_iter, "stop_iter": stop,
            "stop_psnr": history["psnr"][history["iter"].index(stop)] if stop is not None else None}


def _denoise(args) -> dict:
    """Gaussian denoising of every image in ``args.images``: y = clip(x + n), n ~ N(0, (sigma/255)^2), one noise
    draw per image from ``seed + index``. psnr/ssim are of the method's output; for 'dip' that is the averaged
    (EMA) output after ``--iters`` steps, and each row adds ``final_psnr`` (last raw iterate), ``best_psnr`` and
    ``best_iter`` (the oracle best raw iterate, found with the clean image; not a fair result, a diagnostic);
    'dip-controlled' reports its last output and where the no-reference stop fires. DIP's network width and default
    iterations follow the runtime profile (ci / cpu / gpu = paper)."""
    import time

    import torch

    from . import dip, operators as ops
    from ._checks import check_number, check_positive_int
    from .images import load_folder
    from .metrics import psnr, ssim
    from .runtime import profile, settings

    if args.method not in DENOISERS:
        raise SystemExit(f"--method must be one of {DENOISERS}, got {args.method!r}")
    try:
        sigma = check_number(args.sigma, "--sigma", minimum=0, strict_min=True, maximum=100)
        if args.size is not None:
            check_positive_int(args.size, "--size", minimum=8)
        if args.iters is not None:
            check_positive_int(args.iters, "--iters")
        seed = check_positive_int(args.seed, "--seed", minimum=0)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    # the controlled decoder learns slowly by design (the paper runs it for 10,000 iterations)
    cfg = settings(ci=dict(width=16, iters=200, controlled_iters=600),
                   cpu=dict(width=32, iters=1500, controlled_iters=4000),
                   gpu=dict(width=128, iters=3000, controlled_iters=10000))
    iters = args.iters or cfg["controlled_iters" if args.method == "dip-controlled" else "iters"]
    images = load_folder(args.images, size=args.size)
    rows = []
    for index, (name, clean) in enumerate(images):
        noisy = ops.GaussianNoise(sigma)(clean, torch.Generator().manual_seed(seed + index))
        start = time.perf_counter()
        row = {"name": name}
        if args.method == "dip":
            torch.manual_seed(seed + index)
            net = dip.skip_net(clean.shape[0], channels=cfg["width"])
            result = dip.fit(net, noisy, iters=iters, clean=clean, seed=seed + index, every=50)
            out = result.average
            row.update(psnr=psnr(out, clean), ssim=ssim(out, clean), final_psnr=result.final_psnr,
                       best_psnr=result.best_psnr, best_iter=result.best_iter)
        elif args.method == "dip-controlled":
            row.update(_fit_controlled(noisy, clean, iters, cfg["width"], seed + index))
        else:
            out = dip.classical_denoise(noisy, sigma, args.method)
            row.update(psnr=psnr(out, clean), ssim=ssim(out, clean))
        row.update(noisy_psnr=psnr(noisy, clean), seconds=time.perf_counter() - start)
        rows.append(row)
    extra = {"sigma": sigma, "seed": seed, "size": args.size, "profile": profile()}
    if args.method.startswith("dip"):
        extra.update(iters=iters, width=cfg["width"])
    return summarize("denoise", args.method, rows, args.json, extra)


def _sr(args) -> dict:
    """Super-resolution with the papers' protocol (see ``course_utils.sr.evaluate_image``): every readable image
    of ``--images``; an unreadable file or an image too small for the model is reported and skipped."""
    import warnings

    import torch

    from .images import center_crop, is_held_out, load_folder
    from .sr import evaluate_image, load_model

    if args.scale < 2:
        raise SystemExit(f"error: --scale must be an integer >= 2, got {args.scale}")
    if args.samples < 1 or (args.steps is not None and args.steps < 1):
        raise SystemExit(f"error: --samples and --steps must be integers >= 1, got --samples {args.samples} "
                         f"--steps {args.steps}")
    if args.crop is not None and args.crop < 4 * args.scale:
        raise SystemExit(f"error: --crop must be at least 4 x --scale = {4 * args.scale} pixels, got {args.crop}")
    sampling = args.samples > 1 or args.steps is not None or args.sampler is not None or args.project
    try:
        model = load_model(args.model, args.scale)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    skipped = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            images = load_folder(args.images, recursive=args.held_out)
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(f"error: --images: {error}") from None
    skipped += [str(w.message) for w in caught if str(w.message).startswith("skipping")]
    if args.held_out:
        images = [(name, image) for name, image in images if is_held_out(name)]
        if not images:
            raise SystemExit(f"error: --held-out: no held-out image (course_utils.images.HELD_OUT) under "
                             f"{args.images}")
    if args.crop:
        small = [name for name, image in images if min(image.shape[-2:]) < args.crop]
        skipped += [f"skipping {name}: smaller than --crop {args.crop}" for name in small]
        images = [(name, center_crop(image, args.crop)) for name, image in images if name not in small]
    rows = []
    for index, (name, image) in enumerate(images):
        try:
            generator = torch.Generator().manual_seed(args.seed + index)
            if sampling:   # several samples per image (SR3): mean and single-sample scores, spread
                from .sr3 import evaluate_samples
                row = evaluate_samples(model, image, steps=args.steps, samples=args.samples, generator=generator,
                                       sampler=args.sampler, project=args.project)
            else:
                row = evaluate_image(model, image, generator=generator)
            rows.append({"name": name, **row})
        except ValueError as error:
            skipped.append(f"skipping {name}: {error}")
    for message in skipped:
        print(message, file=sys.stderr)
    protocol = (f"modcrop {args.scale}; low-res by antialiased bicubic (MATLAB imresize); Y channel BT.601 "
                f"16-235; border of {args.scale} px cropped")
    return summarize("sr", args.model, rows, args.json,
                     extra={"scale": args.scale, "protocol": protocol, "skipped": skipped,
                            "held_out": args.held_out, "crop": args.crop, "project": args.project})


def _pulse(args) -> dict:
    """PULSE on held-out rendered faces (``course_utils.pulse.evaluate``): success rate within eps, steps and seconds
    to eps, restarts used, validity (answers that are faces of the world), and for the bias study the skin tone of
    inputs vs outputs with a 95 % interval."""
    from . import pulse

    names = {"balanced": "pulse-balanced", "skewed": "pulse-skewed", "stylegan2-ffhq": "stylegan2-ffhq"}
    try:
        if args.n < 1 or args.steps < 1 or args.restarts < 1 or not args.eps > 0 or not args.geocross_weight >= 0:
            raise ValueError(f"--n, --steps and --restarts must be >= 1, --eps > 0 and --geocross-weight >= 0, got "
                             f"--n {args.n} --steps {args.steps} --restarts {args.restarts} --eps {args.eps} "
                             f"--geocross-weight {args.geocross_weight}")
        generator = pulse.load_generator(names[args.generator], download=args.download)
        report = pulse.evaluate(generator, n=args.n, seed=args.seed, scale=args.scale, eps=args.eps,
                                steps=args.steps, restarts=args.restarts, mix=args.mix, group=args.group,
                                geocross_weight=args.geocross_weight, stop=args.stop,
                                progress=sys.stderr.isatty())
    except (ValueError, TypeError, FileNotFoundError, ConnectionError) as error:
        raise SystemExit(f"error: {error}") from None
    report["generator"] = args.generator
    bias = report["bias"]
    print(f"pulse / {args.generator}: {report['n']} inputs ({report['low_size']}x{report['low_size']}, x{report['scale']}, "
          f"{report['mix']}), eps {report['eps']:g}, {report['steps']} steps x {report['restarts']} restarts, "
          f"GEOCROSS weight {report['geocross_weight']:g}, stop {report['stop']}")
    steps = sorted(r["steps_to_eps"] for r in report["inputs"] if r["steps_to_eps"] is not None)
    print(f"success_rate {report['success_rate']:.3f}; median steps to eps "
          f"{steps[len(steps) // 2] if steps else float('nan')}; {report['seconds_per_face']:.2f} s per face")
    readable = ", ".join(f"{k} {v:.2f}" for k, v in report["readable"].items())
    print(f"validity {report['validity']:.3f} (answers that are faces of the world; readable: {readable}); "
          f"median fit RMSE to the nearest rendered face {report['fit_rmse_median']:.4f}")
    print(f"skin tone: inputs {bias['mean_tone_input']:.3f} -> outputs {bias['mean_tone_output']:.3f}; mean shift "
          f"{bias['mean_shift']:+.3f} (95% CI {bias['shift_ci95'][0]:+.3f} .. {bias['shift_ci95'][1]:+.3f}); dark "
          f"share {bias['dark_fraction_input']:.2f} -> {bias['dark_fraction_output']:.2f}")
    if args.json:
        import json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def _posterior(args) -> dict:
    """Judge a method against the face world's posterior (``course_utils.posterior.evaluate``): PSNR, consistency,
    validity, calibration error against the posterior (and its floor), diversity, the dark group's tone shift."""
    from . import posterior

    try:
        if args.method not in posterior.METHODS:
            raise ValueError(f"--method must be one of {sorted(posterior.METHODS)}, got {args.method!r}")
        if args.samples < 1 or args.n < 1:
            raise ValueError(f"--samples and --n must be integers >= 1, got --samples {args.samples} --n {args.n}")
        posterior.check_scale(args.scale, "--scale")
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps must be an integer >= 1, got {args.steps}")
        options = {"steps": args.steps} if args.steps is not None else {}
        report = posterior.evaluate(args.method, args.scale, args.n, args.samples, seed=args.seed, mix=args.mix,
                                    options=options)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(posterior.summary(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def _sr_models() -> dict:
    from .sr import MODELS, import_paper_modules

    import_paper_modules()
    return MODELS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_utils.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", required=True)
    den = tasks.add_parser("denoise", help="Gaussian denoising")
    den.add_argument("--method", required=True)
    den.add_argument("--sigma", type=float, default=25.0, help="noise level on the 0-255 scale")
    den.add_argument("--images", required=True, type=Path)
    den.add_argument("--size", type=int, default=None, help="centre-crop every image to size x size")
    den.add_argument("--iters", type=int, default=None, help="DIP iterations (default by profile, ci/cpu/gpu: "
                     "dip 200/1500/3000, dip-controlled 600/4000/10000)")
    den.add_argument("--seed", type=int, default=0)
    den.add_argument("--json", type=Path, default=None)
    den.set_defaults(run=_denoise)
    sr = tasks.add_parser("sr", help="single-image super-resolution, papers' protocol")
    sr.add_argument("--model", required=True, choices=sorted(_sr_models()), help="a registered SR method")
    sr.add_argument("--scale", type=int, required=True)
    sr.add_argument("--images", required=True, type=Path)
    sr.add_argument("--held-out", action="store_true",
                    help="only the held-out images under --images (course_utils.images.HELD_OUT: 20 BSD200 photographs "
                         "that training skips), e.g. --images ../shared/datasets/sr-train --held-out")
    sr.add_argument("--crop", type=int, default=None, help="centre-crop every image to crop x crop first")
    sr.add_argument("--seed", type=int, default=0, help="stochastic methods: image i uses seed + i")
    sr.add_argument("--samples", type=int, default=1,
                    help="samples per image (stochastic methods, e.g. sr3): PSNR/SSIM of their mean and of single "
                         "samples, consistency, per-pixel spread, seconds per sample")
    sr.add_argument("--steps", type=int, default=None, help="sampling steps (sr3; default: the model's)")
    sr.add_argument("--sampler", choices=("ancestral", "ddim"), default=None,
                    help="sr3's sampler (default: the model's)")
    sr.add_argument("--project", action="store_true",
                    help="sr3: project every step's y0_hat onto the images consistent with the input (DDNM)")
    sr.add_argument("--json", type=Path, default=None)
    sr.set_defaults(run=_sr)
    pl = tasks.add_parser("pulse", help="PULSE on held-out rendered faces: success rate and the bias study")
    pl.add_argument("--generator", required=True, choices=["balanced", "skewed", "stylegan2-ffhq"])
    pl.add_argument("--n", type=int, default=50, help="number of low-res inputs")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--group", choices=["light", "dark"], default=None,
                    help="draw every input from one skin-tone group (the bias study: dark = the minority)")
    pl.add_argument("--mix", default="balanced", help="the inputs' mix when no --group is given")
    pl.add_argument("--scale", type=int, default=None, help="downscaling factor (default: x8 for 32 px generators)")
    pl.add_argument("--eps", type=float, default=2e-3)
    pl.add_argument("--steps", type=int, default=100)
    pl.add_argument("--restarts", type=int, default=3)
    pl.add_argument("--geocross-weight", type=float, default=0.05, help="0 runs PULSE without GEOCROSS")
    pl.add_argument("--stop", choices=["best", "first"], default="best",
                    help="best: every step, the lowest-loss iterate (the authors'); first: stop at eps")
    pl.add_argument("--download", action="store_true", help="allow downloading stylegan2-ffhq (opt-in)")
    pl.add_argument("--json", type=Path, default=None)
    pl.set_defaults(run=_pulse)
    po = tasks.add_parser("posterior", help="the face world: calibration against the known posterior")
    po.add_argument("--method", required=True, help="a method of course_utils.posterior.METHODS")
    po.add_argument("--scale", type=int, required=True, help="4 (8x8 inputs) or 8 (4x4); any divisor of 32")
    po.add_argument("--n", type=int, default=30, help="number of low-res inputs")
    po.add_argument("--samples", type=int, default=8, help="K outputs per input")
    po.add_argument("--seed", type=int, default=0)
    po.add_argument("--mix", default="balanced", help="the world's composition: a name of faces.MIXES")
    po.add_argument("--steps", type=int, default=None,
                    help="sr3: reverse steps (default the model's 100); pulse-*: search steps (default 100)")
    po.add_argument("--json", type=Path, default=None)
    po.set_defaults(run=_posterior)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
