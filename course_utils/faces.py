"""An offline face world for notebook 07 (PULSE): procedural faces whose attributes are explicit parameters.

No face data set can be downloaded here, and a data set's *composition* is exactly what the PULSE bias lesson is
about. So the course draws its own faces: flat-shaded cartoon portraits, antialiased (every shape's edge is a
one-pixel linear ramp of its signed distance, i.e. the pixel's coverage), rendered in plain PyTorch, seeded.

* :func:`sample_attributes` draws the attributes of ``n`` faces from a *mix* (the fraction of the dark skin-tone
  group); :func:`draw_faces` renders given attributes; :func:`render_faces` does both.
* :func:`skin_tone` measures the skin tone of any image with the faces' layout (rendered or generated), so a data
  set's composition and a generator's outputs are measured the same way; :func:`tone_group` splits at 0.5.

Attributes (all tensors with a leading dimension n):

==================  ==========================================================================================
``tone``            skin tone t in [0, 1], light to dark; colour = :func:`tone_colour` (t) (+ a small jitter)
``group``           0 = light (t in [0, 0.4]), 1 = dark (t in [0.6, 1]); drawn with P(dark) = the mix
``hair``            hair colour, index into :data:`HAIR_COLOURS` (black, brown, auburn, blond, grey)
``hair_length``     in [0, 1]: 0 = short (a cap), 1 = long (down to the shoulders)
``eye``             eye colour, index into :data:`EYE_COLOURS` (brown, blue, green, grey)
``glasses``         bool, round dark rims
``aspect``          head shape: height / width of the head ellipse, in [1.15, 1.4]
``center``          head position (u, v) in image units ([-1, 1] across the image; v points down)
``background``      RGB in [0, 1]
``shirt``           RGB in [0, 1]
==================  ==========================================================================================

Hair and eye colour, glasses, head shape and position, background and shirt are drawn independently of the skin
tone, so in this world the tone is the only attribute a mix skews.

Why 32 px by default: the two generators of notebook 07 are GANs trained on a 2-core CPU in about an hour each;
at 32 px a style-based generator of ~0.5 M parameters trains several thousand steps in that time, at 64 px four
times fewer. PULSE then works from 4 x 4 (x8) or 8 x 8 (x4) low-res inputs, the paper's regime of a few pixels per
face. Any ``size`` >= 16 renders (coordinates are relative).
"""
from __future__ import annotations

import torch

from ._checks import check_image, check_number, check_positive_int

#: skin colour anchors at t = 0, 0.5, 1 (linear RGB-ish values in [0, 1]): light, medium, dark
TONE_ANCHORS = ((0.96, 0.82, 0.72), (0.78, 0.56, 0.41), (0.38, 0.24, 0.16))
#: the two groups of the bias lesson: tone ranges
GROUPS = {"light": (0.0, 0.4), "dark": (0.6, 1.0)}
#: named mixes -> fraction of faces in the dark group
MIXES = {"balanced": 0.5, "skewed": 0.1, "light": 0.0, "dark": 1.0}
MIX_DESCRIPTIONS = {
    "balanced": "50 % light / 50 % dark skin tone",
    "skewed": "90 % light / 10 % dark skin tone (the kind of imbalance the PULSE controversy exposed in face "
              "data sets such as FFHQ and CelebA-HQ)",
    "light": "light skin tone only",
    "dark": "dark skin tone only",
}
HAIR_COLOURS = {"black": (0.08, 0.06, 0.05), "brown": (0.32, 0.19, 0.10), "auburn": (0.55, 0.24, 0.11),
                "blond": (0.86, 0.72, 0.42), "grey": (0.66, 0.66, 0.64)}
EYE_COLOURS = {"brown": (0.35, 0.20, 0.08), "blue": (0.25, 0.45, 0.80), "green": (0.25, 0.55, 0.30),
               "grey": (0.50, 0.55, 0.58)}
GLASSES_COLOUR = (0.08, 0.08, 0.10)
MOUTH_COLOUR = (0.62, 0.22, 0.22)
SCLERA_COLOUR = (0.96, 0.96, 0.94)
#: where :func:`skin_tone` looks: the central face box (u0, u1, v0, v1) in image units, mostly skin in every face
TONE_BOX = (-0.2, 0.2, 0.14, 0.24)
ATTRIBUTES = ("tone", "group", "hair", "hair_length", "eye", "glasses", "aspect", "center", "background", "shirt")


def mix_fraction(mix) -> float:
    """The fraction of dark-group faces of ``mix``: a name in :data:`MIXES` or a number in [0, 1]."""
    if isinstance(mix, str):
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {sorted(MIXES)} or a fraction in [0, 1], got {mix!r}")
        return MIXES[mix]
    return check_number(mix, "mix", minimum=0, maximum=1)


def tone_colour(tone: torch.Tensor) -> torch.Tensor:
    """The skin colour of tone t: piecewise-linear through :data:`TONE_ANCHORS` at t = 0, 0.5, 1.
    (...) tensor in [0, 1] -> (..., 3) RGB."""
    anchors = torch.tensor(TONE_ANCHORS, dtype=torch.float32, device=tone.device)
    t = tone.clamp(0, 1)[..., None] * 2                                      # (..., 1) in [0, 2]
    lower = torch.where(t < 1, anchors[0], anchors[1])
    upper = torch.where(t < 1, anchors[1], anchors[2])
    frac = torch.where(t < 1, t, t - 1)
    return lower + frac * (upper - lower)


def sample_attributes(n: int, mix="balanced", generator: torch.Generator | None = None) -> dict:
    """Draw the attributes of ``n`` faces (see the module docstring). The group is dark with probability
    :func:`mix_fraction` (mix); every attribute is drawn from ``generator`` in a fixed order, so the same seed gives
    the same faces. -> dict of tensors (float32, ``group``/``hair``/``eye`` int64, ``glasses`` bool)."""
    n = check_positive_int(n, "n")
    p_dark = mix_fraction(mix)
    g = generator
    u = lambda *shape: torch.rand(*shape, generator=g)                          # noqa: E731  U(0, 1)
    group = (u(n) < p_dark).long()
    lo = torch.tensor([GROUPS["light"][0], GROUPS["dark"][0]])[group]
    hi = torch.tensor([GROUPS["light"][1], GROUPS["dark"][1]])[group]
    tone = lo + (hi - lo) * u(n)
    return {
        "tone": tone,
        "group": group,
        "hair": torch.randint(len(HAIR_COLOURS), (n,), generator=g),
        "hair_length": u(n),
        "eye": torch.randint(len(EYE_COLOURS), (n,), generator=g),
        "glasses": u(n) < 0.3,
        "aspect": 1.15 + 0.25 * u(n),
        "center": torch.stack([0.12 * u(n) - 0.06, 0.06 * u(n) - 0.02], dim=1),
        "background": 0.25 + 0.6 * u(n, 3),
        "shirt": 0.15 + 0.7 * u(n, 3),
        "jitter": 0.03 * u(n, 3) - 0.015,                                        # small skin colour variation
    }


def _coverage(sdf: torch.Tensor, pixel: float) -> torch.Tensor:
    """Antialiased coverage of a shape from its signed distance (negative inside): a linear ramp one pixel wide."""
    return (0.5 - sdf / pixel).clamp(0, 1)


def _ellipse_sdf(u, v, cu, cv, ru, rv):
    """Approximate signed distance to the ellipse ((u - cu)/ru)^2 + ((v - cv)/rv)^2 = 1, to first order:
    (q - 1) / |grad q| with q the normalised radius."""
    du, dv = u - cu, v - cv
    q = torch.sqrt((du / ru) ** 2 + (dv / rv) ** 2 + 1e-12)
    grad = torch.sqrt((du / ru ** 2) ** 2 + (dv / rv ** 2) ** 2 + 1e-12) / q
    return (q - 1) / grad


def _box_sdf(u, v, u0, u1, v0, v1):
    """Signed distance (max-norm approximation) to the box [u0, u1] x [v0, v1]."""
    return torch.maximum(torch.maximum(u0 - u, u - u1), torch.maximum(v0 - v, v - v1))


def _face_layers(a: dict, u: torch.Tensor, v: torch.Tensor, pixel: float) -> list:
    """The shapes of ``n`` faces back to front, as ``[(colour name, coverage (n, *pixels))]``: what
    :func:`draw_faces` paints and what :func:`read_attributes` fits. ``a`` holds (n,) ``aspect``, ``hair_length``,
    ``glasses`` (bool, or a strength in [0, 1] that scales the rims' coverage) and (n, 2) ``center``; ``u``, ``v``
    are the pixel centres' image coordinates, shaped (1, *pixels) (a grid or a flat list); ``pixel`` = 2 / size."""
    n = a["aspect"].shape[0]
    col = lambda x: x.float().view(n, *([1] * (u.dim() - 1)))                 # noqa: E731  (n,) -> (n, 1, ...)
    cover = lambda sdf: _coverage(sdf, pixel)                                   # noqa: E731
    cu, cv = col(a["center"][:, 0]), col(a["center"][:, 1])
    ru = torch.full_like(cu, 0.40)                                              # head half-width
    rv = ru * col(a["aspect"])                                                  # head half-height
    length = col(a["hair_length"])
    layers = [("hair", cover(_box_sdf(u, v, cu - 1.15 * ru, cu + 1.15 * ru, cv - 0.3 * rv,
                                      cv + rv * (1.6 * length - 0.2)))),                   # long hair
              ("hair", cover(_ellipse_sdf(u, v, cu, cv - 0.1 * rv, 1.12 * ru, 1.02 * rv))),  # cap behind the head
              ("neck", cover(_box_sdf(u, v, cu - 0.42 * ru, cu + 0.42 * ru, cv, torch.full_like(cv, 2.0)))),
              ("shirt", cover(_ellipse_sdf(u, v, cu, torch.full_like(cv, 1.3), torch.full_like(cu, 0.85),
                                           torch.full_like(cv, 0.5))))]
    head = _ellipse_sdf(u, v, cu, cv, ru, rv)
    layers += [("skin", cover(head)),
               ("hair", cover(torch.maximum(head, v - (cv - 0.45 * rv))))]       # fringe: head above the hairline
    for side in (-1, 1):
        eu, ev = cu + side * 0.4 * ru, cv - 0.08 * rv
        layers += [("sclera", cover(_ellipse_sdf(u, v, eu, ev, 0.2 * ru, 0.1 * rv))),
                   ("eye", cover(_ellipse_sdf(u, v, eu, ev, 0.1 * ru, 0.1 * rv)))]
    rim = torch.full_like(u, 1.0).expand(n, *u.shape[1:])
    for side in (-1, 1):
        ring = (_ellipse_sdf(u, v, cu + side * 0.4 * ru, cv - 0.08 * rv, 0.3 * ru, 0.3 * ru).abs()
                - 0.35 * pixel)
        rim = torch.minimum(rim, ring)
    rim = torch.minimum(rim, _box_sdf(u, v, cu - 0.12 * ru, cu + 0.12 * ru, cv - 0.1 * rv - 0.3 * pixel,
                                      cv - 0.1 * rv + 0.3 * pixel))           # the bridge
    layers += [("glasses", cover(rim) * col(a["glasses"])),
               ("mouth", cover(_ellipse_sdf(u, v, cu, cv + 0.65 * rv, 0.3 * ru, 0.07 * rv)))]
    return layers


def _pixel_coords(size: int) -> torch.Tensor:
    """Image coordinates of the pixel centres of a ``size``-pixel row, in [-1, 1]."""
    return (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1


def draw_faces(attributes: dict, size: int = 32) -> torch.Tensor:
    """Render faces with the given attributes (a dict as from :func:`sample_attributes`) at ``size`` x ``size``.
    -> (n, 3, size, size) float32 RGB in [0, 1]. Layers back to front: background, long hair, hair cap, neck,
    shirt, head (skin), fringe, eyes (sclera, iris), glasses, mouth; each composited with its antialiased coverage
    (``image = image + coverage * (colour - image)``)."""
    size = check_positive_int(size, "size", minimum=16)
    missing = [k for k in ATTRIBUTES if k not in attributes]
    if missing:
        raise ValueError(f"attributes is missing {missing}; it needs {list(ATTRIBUTES)}")
    a = {k: torch.as_tensor(v) for k, v in attributes.items()}
    n = a["tone"].shape[0]
    coords = _pixel_coords(size)
    v, u = torch.meshgrid(coords, coords, indexing="ij")                      # (size, size); v down, u right
    rgb = lambda x: torch.as_tensor(x, dtype=torch.float32).reshape(-1, 3, 1, 1)  # noqa: E731  -> (n or 1, 3, 1, 1)
    skin = (tone_colour(a["tone"].float()) + a.get("jitter", torch.zeros(n, 3))).clamp(0, 1)
    colours = {"hair": torch.tensor(list(HAIR_COLOURS.values()))[a["hair"]], "skin": skin, "neck": skin * 0.85,
               "shirt": a["shirt"], "sclera": SCLERA_COLOUR, "eye": torch.tensor(list(EYE_COLOURS.values()))[a["eye"]],
               "glasses": GLASSES_COLOUR, "mouth": MOUTH_COLOUR}
    image = rgb(a["background"]).expand(n, 3, size, size).clone()             # (n, 3, size, size)
    for name, cover in _face_layers(a, u[None], v[None], 2.0 / size):
        image = image + cover[:, None] * (rgb(colours[name]) - image)
    return image.clamp(0, 1)


def render_faces(n: int, mix="balanced", size: int = 32, generator: torch.Generator | None = None,
                 **fixed) -> tuple[torch.Tensor, dict]:
    """``n`` random faces of ``mix`` (a name in :data:`MIXES`, or the fraction of dark-group faces) at ``size`` px.
    -> (images (n, 3, size, size) in [0, 1], attributes dict). ``fixed`` overrides attributes (a scalar or n
    values), e.g. ``render_faces(8, tone=0.9, glasses=True)``; the random draws are made in full first, so fixing
    one attribute leaves the others as they were. Overriding ``tone`` also sets ``group`` (tone >= 0.5 = dark).
    All randomness comes from ``generator``."""
    attributes = sample_attributes(n, mix, generator)
    unknown = sorted(set(fixed) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; attributes are {list(ATTRIBUTES)}")
    for key, value in fixed.items():
        drawn = attributes[key]
        value = torch.as_tensor(value, dtype=drawn.dtype)
        if value.shape == drawn.shape[1:]:                                      # one value for every face
            value = value.expand_as(drawn).clone()
        if value.shape != drawn.shape:
            raise ValueError(f"{key} must have shape {tuple(drawn.shape[1:])} (one value) or {tuple(drawn.shape)} "
                             f"(one per face), got {tuple(value.shape)}")
        attributes[key] = value
    if "tone" in fixed and "group" not in fixed:
        attributes["group"] = (attributes["tone"] >= 0.5).long()
    return draw_faces(attributes, size), attributes


def _box_pixels(size: int) -> tuple[slice, slice]:
    """Rows and columns of :data:`TONE_BOX` in a ``size`` x ``size`` image."""
    u0, u1, v0, v1 = TONE_BOX
    to_index = lambda c: int(round((c + 1) / 2 * size))                         # noqa: E731
    rows = slice(to_index(v0), max(to_index(v1), to_index(v0) + 1))
    cols = slice(to_index(u0), max(to_index(u1), to_index(u0) + 1))
    return rows, cols


def _check_faces(images, name: str = "images") -> torch.Tensor:
    """A reader's input: (3, H, W) or (n, 3, H, W) RGB in [0, 1], square and at least 16 px (the world's layout
    needs that many pixels to be read: a 4 x 4 low-res input is no face to read)."""
    check_image(images, name, channels=3)
    h, w = images.shape[-2:]
    if h != w or h < 16:
        raise ValueError(f"{name} must be square faces of the world's layout of at least 16 x 16 pixels "
                         f"(draw_faces, a generator's samples, PULSE's answers), got {h}x{w}"
                         + ("; a low-res input cannot be read: read its high-res answer" if h < 16 else ""))
    return images


def _cheek_colour(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tone (n,), its colour's distance to the tone curve (n,), the cheek band's median colour m (n, 3)) of a
    batch (n, 3, H, W): the two steps of :func:`skin_tone`."""
    rows, cols = _box_pixels(batch.shape[-2])[0], _box_pixels(batch.shape[-1])[1]
    box = batch[:, :, rows, cols].reshape(batch.shape[0], 3, -1).float()        # (n, 3, pixels)
    box = box.contiguous()          # torch.median reads garbage from expanded (stride-0) tensors (torch 2.13)
    m = box.median(dim=2).values                                                # (n, 3)
    grid = torch.linspace(0, 1, 1001, device=m.device)
    distance, nearest = torch.cdist(m, tone_colour(grid)).min(dim=1)           # the curve: (1001, 3)
    return grid[nearest], distance, m


def skin_tone(images: torch.Tensor) -> torch.Tensor:
    """Measure the skin tone of faces with this module's layout (rendered ones, or a generator's outputs).

    (n, 3, H, W) or (3, H, W) in [0, 1], square, at least 16 px -> (n,) or () tone in [0, 1] (0 = lightest,
    1 = darkest anchor):

    1. m = the per-channel *median* colour of the cheek band :data:`TONE_BOX` (u in [-0.2, 0.2], v in
       [0.14, 0.24] of the [-1, 1] image frame: below the eyes and the glasses' rims, above the mouth, inside the
       head for every position and shape the renderer draws). Antialiased edges that reach into it cover a
       minority of its pixels, so the median is the skin colour;
    2. the tone is the t whose colour :func:`tone_colour` (t) is nearest to m (a grid of 1001 values).

    A 4 x 4 low-res input is refused (the box must hold several pixels). :func:`read_attributes` says whether m
    is a skin colour of the world at all.
    """
    _check_faces(images)
    tone = _cheek_colour(images[None] if images.dim() == 3 else images)[0]
    return tone[0] if images.dim() == 3 else tone


def tone_group(tone: torch.Tensor) -> torch.Tensor:
    """0 = light, 1 = dark: the measured (or rendered) tone split at 0.5, between the two groups' ranges."""
    return (torch.as_tensor(tone) >= 0.5).long()


def composition(images: torch.Tensor, bins: int = 10) -> dict:
    """What a set of faces is made of, measured by :func:`skin_tone`: ``{"dark_fraction", "mean_tone",
    "histogram" (fractions in ``bins`` equal bins of [0, 1]), "n"}`` (plain floats/lists, JSON-ready)."""
    bins = check_positive_int(bins, "bins")
    tone = skin_tone(images)
    tone = tone.reshape(-1)
    hist = torch.histc(tone, bins=bins, min=0, max=1) / tone.numel()
    return {"dark_fraction": float(tone_group(tone).float().mean()), "mean_tone": float(tone.mean()),
            "histogram": [round(float(h), 4) for h in hist], "n": int(tone.numel())}


# ----------------------------------------------------------------------------------------------------------------
# attribute readers: which face of the world is this image?

#: the window :func:`read_attributes` fits, (u0, u1, v0, v1) in image units: hair cap, fringe, forehead, eyes and
#: glasses for every head position and shape the world draws; long hair, neck, shirt and mouth never reach it
READ_BOX = (-0.3, 0.3, -0.5, 0.1)
#: the ranges :func:`sample_attributes` draws the head's geometry from (the reader's fit stays inside them)
GEOMETRY_RANGES = {"center_u": (-0.06, 0.06), "center_v": (-0.02, 0.04), "aspect": (1.15, 1.4)}
#: a measured value is *readable* when it lies at most this fraction of the way from one of the world's values to
#: the nearest other one (so the average of two colours, half-way, is not)
READABLE_FRACTION = 1 / 3
#: a skin colour is readable within this distance (RGB, [0, 1]) of the tone curve (the renderer's jitter of
#: +-0.015 per channel reaches 0.026)
SKIN_TOLERANCE = 0.05
_UNKNOWN = ("background", "hair", "skin", "shirt", "eye")                    # colours the reader solves for
_KNOWN = {"sclera": SCLERA_COLOUR, "glasses": GLASSES_COLOUR, "mouth": MOUTH_COLOUR}


def _solve_colours(y: torch.Tensor, geometry: dict, u, v, pixel: float, ridge: float = 1e-3):
    """Given the geometry, an image of the world is linear in its colours (alpha compositing with known
    coverages): solve for the unknown colours by (ridge) least squares over the window's pixels ``y`` (n, P, 3).
    -> (colours (n, len(_UNKNOWN), 3), mean squared residual (n,))."""
    names, covers = zip(*_face_layers(geometry, u, v, pixel))
    covers = torch.stack([torch.ones_like(covers[0]), *covers])                 # (K, n, P): the background first
    names = ("background", *names)
    # what is left of layer k in the final image: its coverage times (1 - c_j) of every layer j painted later
    later = torch.cumprod(torch.flip(1 - covers, [0]), dim=0)
    weight = covers * torch.cat([torch.flip(later, [0])[1:], torch.ones_like(covers[:1])])
    unknown = torch.zeros(len(names), len(_UNKNOWN))                           # layer -> unknown colour
    known = torch.zeros(len(names), 3)                                         # layer -> known colour
    for k, name in enumerate(names):
        if name in _KNOWN:
            known[k] = torch.tensor(_KNOWN[name])
        else:
            unknown[k, _UNKNOWN.index("skin" if name == "neck" else name)] = 0.85 if name == "neck" else 1.0
    design = torch.einsum("knp,kc->npc", weight, unknown)                      # (n, P, unknowns)
    target = y - torch.einsum("knp,kc->npc", weight, known)
    gram = design.transpose(1, 2) @ design + ridge * torch.eye(len(_UNKNOWN))
    colours = torch.linalg.solve(gram, design.transpose(1, 2) @ target + ridge * 0.5)
    return colours, (design @ colours - target).pow(2).mean((1, 2))


def _fit_geometry(y: torch.Tensor, u, v, pixel: float, steps: int):
    """The head's position and shape and the glasses' strength that best explain the window ``y`` (n, P, 3): the
    best of a coarse grid, then ``steps`` Adam steps on the least-squares residual (the coverages are smooth in
    the geometry), kept inside :data:`GEOMETRY_RANGES` and strength in [0, 1]. -> (theta (n, 4), colours, mse)."""
    n = y.shape[0]
    ranges = torch.tensor([*GEOMETRY_RANGES.values(), (0.0, 1.0)])               # (4, 2): cu, cv, aspect, glasses
    as_geometry = lambda t: {"center": t[:, :2], "aspect": t[:, 2], "glasses": t[:, 3],  # noqa: E731
                             "hair_length": torch.full_like(t[:, 0], 0.5)}       # long hair never reaches the box
    grid = torch.cartesian_prod(torch.linspace(*ranges[0], 5), torch.linspace(*ranges[1], 3),
                                torch.linspace(*ranges[2], 3), ranges[3])
    with torch.no_grad():
        mse = torch.stack([_solve_colours(y, as_geometry(t.expand(n, 4)), u, v, pixel)[1] for t in grid], dim=1)
    start = grid[mse.argmin(dim=1)]
    shape, strength = start[:, :3].clone().requires_grad_(True), start[:, 3:].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": [shape], "lr": 0.004}, {"params": [strength], "lr": 0.03}])
    for _ in range(steps):
        theta = torch.cat([shape, strength], dim=1)
        loss = _solve_colours(y, as_geometry(theta), u, v, pixel)[1].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            shape.copy_(shape.clamp(ranges[:3, 0], ranges[:3, 1]))
            strength.clamp_(0, 1)
    with torch.no_grad():
        theta = torch.cat([shape, strength], dim=1)
        colours, mse = _solve_colours(y, as_geometry(theta), u, v, pixel)
    return theta, colours, mse


def _nearest(colours: torch.Tensor, palette: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index of the nearest palette colour, distance to it, readable) for colours (n, 3): readable = within
    :data:`READABLE_FRACTION` of the distance from that palette colour to its nearest neighbour in the palette."""
    table = torch.tensor(list(palette.values()))
    distance, index = torch.cdist(colours, table).min(dim=1)
    spacing = torch.cdist(table, table) + torch.eye(len(table)) * 1e9
    return index, distance, distance <= READABLE_FRACTION * spacing.min(dim=1).values[index]


def read_attributes(images: torch.Tensor, *, steps: int = 40) -> dict:
    """Read which face of the world an image shows: eye colour, glasses, hair colour and skin tone, each with a
    *readable* flag (is the measured value one of the world's, or in between?).

    ``images`` (n, 3, H, W) or (3, H, W) in [0, 1], square, H >= 16 (rendered faces, a generator's samples,
    PULSE's answers; a ValueError names ``images`` otherwise).

    How: inside the window :data:`READ_BOX` (hair cap, fringe, forehead, eyes, glasses) an image of the world is,
    for a given head position and shape, *linear* in its colours (alpha compositing with known coverages, the
    renderer's own :func:`_face_layers`). So the reader fits the geometry (head centre, aspect, glasses strength
    in [0, 1]: a coarse grid, then ``steps`` Adam steps on the least-squares residual) and solves for the colours
    (background, hair, skin, eye) in closed form; the skin tone is :func:`skin_tone`'s cheek measurement.
    Readable: a colour within :data:`READABLE_FRACTION` of the way from its nearest palette colour to the next
    (an average of two colours is half-way: not readable); glasses strength <= 1/3 or >= 2/3; a cheek colour
    within :data:`SKIN_TOLERANCE` of the tone curve, with a tone outside the middle third of the gap between the
    groups (0.4 .. 0.6).

    -> dict of (n,) tensors (scalars for one image): ``eye``, ``hair`` (int64 indices into :data:`EYE_COLOURS`,
    :data:`HAIR_COLOURS`), ``glasses`` (bool), ``tone`` (float), ``group`` (:func:`tone_group`), each with
    ``<name>_readable`` (bool); ``valid`` (bool): every attribute readable, i.e. a face of the world, not an
    average of two; the measurements ``eye_colour``, ``hair_colour``, ``skin_colour`` (n, 3),
    ``glasses_strength``, the distances ``eye_distance``, ``hair_distance``, ``skin_distance`` to the world's
    values, ``fit_rmse`` (the window's RMS residual against the best-fitting face of the world: a realism proxy),
    ``center`` (n, 2) and ``aspect`` of the fitted head."""
    _check_faces(images)
    steps = check_positive_int(steps, "steps", minimum=0)
    batch = images[None] if images.dim() == 3 else images
    batch = batch.detach().float().cpu()
    n, size = batch.shape[0], batch.shape[-1]
    coords = _pixel_coords(size)
    u0, u1, v0, v1 = READ_BOX
    rows, cols = (coords >= v0) & (coords <= v1), (coords >= u0) & (coords <= u1)
    v, u = torch.meshgrid(coords[rows], coords[cols], indexing="ij")
    u, v = u.reshape(1, -1), v.reshape(1, -1)                                   # (1, P): the window's pixels
    y = batch[:, :, rows][:, :, :, cols].reshape(n, 3, -1).transpose(1, 2)     # (n, P, 3)
    chunk = max(1, 400_000 // u.shape[1])                                       # bounded memory at any size
    with torch.enable_grad():
        fits = [_fit_geometry(y[i: i + chunk], u, v, 2.0 / size, steps) for i in range(0, n, chunk)]
    theta, colours, mse = (torch.cat(parts) for parts in zip(*fits))
    eye, eye_distance, eye_readable = _nearest(colours[:, _UNKNOWN.index("eye")], EYE_COLOURS)
    hair, hair_distance, hair_readable = _nearest(colours[:, _UNKNOWN.index("hair")], HAIR_COLOURS)
    strength = theta[:, 3]
    tone, skin_distance, skin = _cheek_colour(batch)
    gap = GROUPS["dark"][0] - GROUPS["light"][1]
    between = (tone > GROUPS["light"][1] + gap / 3) & (tone < GROUPS["dark"][0] - gap / 3)
    tone_readable = (skin_distance <= SKIN_TOLERANCE) & ~between
    glasses_readable = (strength <= 1 / 3) | (strength >= 2 / 3)
    out = {"eye": eye, "eye_readable": eye_readable, "hair": hair, "hair_readable": hair_readable,
           "glasses": strength > 0.5, "glasses_readable": glasses_readable, "tone": tone,
           "group": tone_group(tone), "tone_readable": tone_readable,
           "valid": eye_readable & hair_readable & glasses_readable & tone_readable,
           "eye_colour": colours[:, _UNKNOWN.index("eye")], "hair_colour": colours[:, _UNKNOWN.index("hair")],
           "skin_colour": skin, "glasses_strength": strength, "eye_distance": eye_distance,
           "hair_distance": hair_distance, "skin_distance": skin_distance, "fit_rmse": mse.sqrt(),
           "center": theta[:, :2], "aspect": theta[:, 2]}
    return {k: x[0] for k, x in out.items()} if images.dim() == 3 else out


def valid(images: torch.Tensor) -> torch.Tensor:
    """Whether each image is a face of the world: every attribute :func:`read_attributes` reads is readable (an
    average of two faces, a blur or noise is not). (n, 3, H, W) -> (n,) bool; (3, H, W) -> () bool."""
    return read_attributes(images)["valid"]


class FaceSampler:
    """Training pairs drawn from the world itself: each call renders ``batch`` fresh faces of ``mix`` at ``size``
    px and downsamples them with ``operators.Downsample(scale)``, the world's own low-res (notebooks 07-08). Same
    interface as :class:`course_utils.sr.PatchSampler`: ``sample(batch, generator)`` -> (low (batch, 3, size/scale,
    size/scale), high (batch, 3, size, size)) in [0, 1]; no flips or rotations (the world's faces are upright)."""

    def __init__(self, mix="balanced", scale: int = 4, size: int = 32):
        from .operators import Downsample

        self.mix, self.size = mix, check_positive_int(size, "size", minimum=16)
        mix_fraction(mix)                                          # a clear error for an unknown mix
        self.scale = check_positive_int(scale, "scale", minimum=2)
        if self.size % self.scale:
            raise ValueError(f"scale must divide the faces' size {self.size}, got scale={scale}")
        self.downsample = Downsample(self.scale)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        high, _ = render_faces(check_positive_int(batch, "batch"), self.mix, self.size, generator)
        return self.downsample(high), high                         # (B, 3, s/scale, s/scale), (B, 3, s, s)
