"""A generated "O vs X" image dataset in the spirit of seed 000 (the `ox` assignment).

The seed's student photographed and drew O and X: in a paint program, in a phone's notes app,
with system fonts, and with pen and marker on paper, photographed. This module draws the same
kinds of pictures, so the `ox` reference CNN has a real (but learnable) problem:

* the glyph, one of four styles:
  - ``font``: a system font glyph (O, o, circles, X, x, multiplication signs, crosses), in any
    TrueType font found on the machine (PIL's built-in font when there is none);
  - ``brush``: a smooth stroke whose thickness varies along its length (an O is an open or
    overlapping ellipse with wobble; an X is two curved crossing strokes);
  - ``pen``: thin strokes of nearly constant width with a little pressure variation;
  - ``marker``: thick, slightly translucent strokes with round ends;
* placed with a random size, position, rotation and a slight perspective (one homography);
* on paper: a background colour, low-frequency texture and grain, sometimes ruled or squared
  lines, writing showing through from the back or a stray speck, a lighting gradient and a soft shadow like a phone photo, a colour cast;
* then downsampled, blurred, with gaussian noise and sometimes JPEG softening.

Position, scale and rotation vary enough that a linear model on raw pixels (logistic
regression) does clearly worse than a small CNN: see ``benchmarks/ox_learnability.py``.

Every image comes from its own ``numpy.random.Generator`` derived from a hash of
(seed, split, class, index): the output does not depend on generation order, the same arguments
give byte-identical PNG files, and splits never share a random stream.
Pure stdlib + numpy + Pillow.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SPLITS = ("train", "validation", "test")
CLASSES = ("o", "x")
DEFAULT_COUNTS = {"train": 500, "validation": 150, "test": 150}
STYLES = ("font", "brush", "pen", "marker")
STYLE_WEIGHTS = (0.25, 0.30, 0.25, 0.20)

SUPERSAMPLE = 2  # drawing happens at SUPERSAMPLE x image_size, then is downsampled
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/X11R6/lib/X11/fonts")
GLYPHS = {"o": ("O", "o", "\u25cb", "\u25ef", "\u039f", "\u041e"),  # O o ○ ◯ Greek/Cyrillic O
          "x": ("X", "x", "\u00d7", "\u2715", "\u2716", "\u2717", "\u2718", "\u2573")}  # X x × ✕ ✖ ✗ ✘ ╳

INKS = np.array([(20, 20, 22), (45, 45, 50), (25, 40, 140), (15, 25, 90), (170, 25, 30),
                 (20, 100, 45), (90, 30, 120), (60, 40, 30)], dtype=np.float32)
PAPERS = np.array([(250, 250, 248), (242, 238, 225), (235, 235, 235), (250, 243, 200),
                   (225, 232, 240), (246, 240, 232), (215, 210, 200)], dtype=np.float32)


# --------------------------------------------------------------------------- randomness

def image_rng(seed: int, split: str, cls: str, index: int) -> np.random.Generator:
    """The random stream of one image: a hash of everything that identifies it."""
    digest = hashlib.sha256(f"ox/{seed}/{split}/{cls}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


# --------------------------------------------------------------------------- fonts

@functools.lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """TrueType/OpenType fonts installed on this machine, sorted (empty when there are none)."""
    found: set[str] = set()
    for folder in FONT_DIRS:
        base = Path(folder)
        if base.is_dir():
            for pattern in ("*.ttf", "*.otf", "*.TTF", "*.OTF"):
                found.update(str(p) for p in base.rglob(pattern))
    return tuple(sorted(found))


@functools.lru_cache(maxsize=256)
def _font(path: str | None, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):  # Pillow < 10.1 or no FreeType: bitmap font
        return ImageFont.load_default()


def _render(text: str, font, size: int, stroke: int = 0) -> np.ndarray:
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).text((size / 2, size / 2), text, font=font, fill=255, anchor="mm",
                               stroke_width=stroke, stroke_fill=255)
    return np.asarray(image)


@functools.lru_cache(maxsize=512)
def _has_glyph(path: str | None, char: str) -> bool:
    """False when the font would draw its 'missing glyph' box (or nothing) for `char`."""
    font = _font(path, 48)
    try:
        drawn = _render(char, font, 96)
        missing = _render("\ue000", font, 96)  # a private-use code point: never in a font
    except (UnicodeEncodeError, ValueError, OSError):
        return False
    return bool(drawn.any()) and not np.array_equal(drawn, missing)


@functools.lru_cache(maxsize=1)
def _font_choices() -> dict[str, tuple[tuple[str | None, str], ...]]:
    """(font file, character) pairs each class can be drawn with, on this machine."""
    paths: tuple[str | None, ...] = font_files() or (None,)
    choices = {}
    for cls, chars in GLYPHS.items():
        pairs = tuple((p, c) for p in paths for c in chars if _has_glyph(p, c))
        choices[cls] = pairs or ((None, chars[0]),)
    return choices


# --------------------------------------------------------------------------- glyph masks
# Every glyph is drawn centred in a canvas of side `n`, with a nominal size of n/2; placement
# (scale, rotation, position, perspective) is applied afterwards by one homography.

def _stamp(draw: ImageDraw.ImageDraw, points: np.ndarray, radii: np.ndarray,
           levels: np.ndarray) -> None:
    """A stroke as a dense chain of discs: smooth, with varying radius and ink level."""
    for (x, y), r, v in zip(points, radii, levels):
        r = max(float(r), 0.35)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(v))


def _resample(points: np.ndarray, step: float) -> np.ndarray:
    """Points spaced `step` apart along the polyline `points`."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.arange(0.0, dist[-1] + 1e-9, max(step, 0.2))
    return np.stack([np.interp(at, dist, points[:, 0]), np.interp(at, dist, points[:, 1])], axis=1)


def _o_path(rng: np.random.Generator, c: float, half: float) -> list[np.ndarray]:
    """An ellipse drawn by hand: eccentric, wobbly, not quite closed or overlapping."""
    ratio = rng.uniform(0.6, 1.0)
    a, b = half, half * ratio
    if rng.random() < 0.5:
        a, b = b, a
    start = rng.uniform(0, 2 * math.pi)
    sweep = 2 * math.pi + rng.uniform(-0.45, 0.6)
    t = np.linspace(0, 1, 120)
    theta = start + sweep * t * rng.choice([-1, 1])
    drift = 1 + rng.uniform(-0.12, 0.12) * t  # start and end radii differ: a slight spiral
    wobble = 1 + sum(rng.uniform(-0.05, 0.05) * np.sin(k * theta + rng.uniform(0, 6.3)) for k in (2, 3))
    x = c + a * drift * wobble * np.cos(theta)
    y = c + b * drift * wobble * np.sin(theta)
    return [np.stack([x, y], axis=1)]


def _x_path(rng: np.random.Generator, c: float, half: float) -> list[np.ndarray]:
    """Two strokes crossing near the centre, at random angles, slightly curved."""
    strokes = []
    cross = np.array([c, c]) + rng.normal(0, 0.15 * half, 2)
    base = rng.uniform(35, 55)
    for angle in (base + rng.normal(0, 6), base + 90 + rng.uniform(-25, 25)):
        rad = math.radians(angle)
        d = np.array([math.cos(rad), math.sin(rad)])
        before, after = half * rng.uniform(0.95, 1.5, 2)  # as wide as an O, as much ink
        p0, p2 = cross - d * before, cross + d * after
        bend = np.array([-d[1], d[0]]) * rng.normal(0, 0.15) * half
        p1 = (p0 + p2) / 2 + bend
        t = np.linspace(0, 1, 60)[:, None]
        strokes.append((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2)
    return strokes


def _stroke_mask(rng: np.random.Generator, cls: str, style: str, n: int) -> tuple[Image.Image, float]:
    """A hand-drawn glyph: its mask (L, 255 = full ink) and its ink opacity."""
    half = n / 4
    paths = (_o_path if cls == "o" else _x_path)(rng, n / 2, half)
    width = {"brush": (0.06, 0.16), "pen": (0.025, 0.055), "marker": (0.12, 0.22)}[style]
    base = rng.uniform(*width) * half * (1.15 if cls == "x" else 1.0)  # X: as much ink as O
    image = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(image)
    for path in paths:
        pts = _resample(path, base * 0.3)
        t = np.linspace(0, 1, len(pts))
        if style == "brush":  # pressure: thin at both ends, thick in the middle
            radii = base * (0.35 + 0.65 * np.sin(np.pi * np.clip(t * rng.uniform(0.9, 1.1), 0, 1)) ** 0.6)
            radii *= 1 + 0.25 * np.sin(2 * np.pi * t * rng.uniform(1, 3) + rng.uniform(0, 6.3))
            levels = np.full(len(pts), 255.0)
        elif style == "pen":
            radii = base * (1 + 0.15 * np.sin(2 * np.pi * t * rng.uniform(1, 4) + rng.uniform(0, 6.3)))
            levels = 255 * (0.75 + 0.25 * np.sin(2 * np.pi * t * rng.uniform(0.5, 2) + rng.uniform(0, 6.3)) ** 2)
        else:  # marker: constant width
            radii = np.full(len(pts), base)
            levels = np.full(len(pts), 255.0)
        _stamp(draw, pts, radii, levels)
    opacity = rng.uniform(0.7, 0.92) if style == "marker" else rng.uniform(0.85, 1.0)
    return image, opacity


def _font_mask(rng: np.random.Generator, cls: str, n: int) -> tuple[Image.Image, float]:
    """A system font glyph scaled to the nominal size (n/2)."""
    choices = _font_choices()[cls]
    path, char = choices[int(rng.integers(len(choices)))]
    font = _font(path, n)
    bold = int(rng.integers(0, 3)) * n // 64
    big = _render(char, font, 2 * n, stroke=bold)
    ys, xs = np.nonzero(big > 0)
    if len(xs) == 0:  # nothing drawable: fall back to a brush stroke
        return _stroke_mask(rng, cls, "brush", n)
    crop = Image.fromarray(big[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    scale = (n / 2) / max(crop.size)
    w, h = max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))
    image = Image.new("L", (n, n), 0)
    image.paste(crop.resize((w, h), Image.Resampling.LANCZOS), ((n - w) // 2, (n - h) // 2))
    return image, rng.uniform(0.85, 1.0)


# --------------------------------------------------------------------------- placement

def _placement(rng: np.random.Generator, n: int) -> tuple[float, ...]:
    """The homography coefficients (output -> input, as Pillow wants) that scale, rotate, move
    and tilt the centred glyph."""
    scale = rng.uniform(0.6, 1.7)  # the glyph spans 30 % .. 85 % of the image
    angle = math.radians(rng.uniform(-20, 20))
    room = max(0.0, n / 2 - scale * n / 4)  # an X's arms may touch the edge
    shift = rng.uniform(-room, room, 2)
    c = n / 2
    to_origin = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]], dtype=float)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
    shear = np.array([[1, rng.uniform(-0.15, 0.15), 0], [0, 1, 0], [0, 0, 1]])
    px, py = rng.uniform(-0.25, 0.25, 2) / c  # at the edge, w = 1 +- 0.25
    tilt = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]])
    back = np.array([[1, 0, c + shift[0]], [0, 1, c + shift[1]], [0, 0, 1]])
    forward = back @ tilt @ rotate @ shear @ to_origin
    inverse = np.linalg.inv(forward)
    inverse /= inverse[2, 2]
    return tuple(inverse.ravel()[:8])


def _place(mask: Image.Image, rng: np.random.Generator) -> np.ndarray:
    coeffs = _placement(rng, mask.size[0])
    placed = mask.transform(mask.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    return np.asarray(placed, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- paper and light

def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of shape (n, n)."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((n, n), Image.Resampling.BICUBIC))


def _paper(rng: np.random.Generator, n: int) -> np.ndarray:
    """Paper colour with texture, grain and sometimes ruled or squared lines: (n, n, 3) in 0..255."""
    colour = PAPERS[int(rng.integers(len(PAPERS)))] + rng.normal(0, 6, 3)
    texture = 1 + rng.uniform(0.0, 0.06) * _smooth_noise(rng, n, int(rng.integers(3, 9)))
    grain = 1 + rng.normal(0, rng.uniform(0.0, 0.03), (n, n))
    paper = colour[None, None, :] * (texture * grain)[..., None]
    kind = rng.random()
    if kind < 0.25:  # ruled or squared paper
        gap = int(rng.integers(n // 8, n // 3))
        offset = int(rng.integers(gap))
        line = np.array([150, 170, 215], dtype=np.float32) + rng.normal(0, 15, 3)
        strength = rng.uniform(0.3, 0.7)
        rows = np.zeros(n, dtype=bool)
        rows[offset::gap] = True
        lines = np.zeros((n, n), dtype=bool)
        lines[rows, :] = True
        if kind < 0.1:
            lines[:, rows] = True
        paper[lines] = paper[lines] * (1 - strength) + line * strength
    return paper


def _marks(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ink that is not the glyph, the same for both classes: (n, n) opacity in 0..1.

    Writing showing through from the back of the sheet (faint, blurred curves) and stray
    specks or dashes, as on real paper."""
    marks = np.zeros((n, n), dtype=np.float32)
    if rng.random() < 0.3:  # show-through
        image = Image.new("L", (n, n), 0)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            p0, p1, p2 = rng.uniform(0, n, (3, 2))
            t = np.linspace(0, 1, 40)[:, None]
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
            draw.line([tuple(p) for p in curve], fill=255, width=max(1, round(n * rng.uniform(0.015, 0.04))))
        image = image.filter(ImageFilter.GaussianBlur(n / 64))
        marks += np.asarray(image, dtype=np.float32) / 255 * rng.uniform(0.05, 0.15)
    if rng.random() < 0.25:  # a speck or a short dash
        image = Image.new("L", (n, n), 0)
        draw = ImageDraw.Draw(image)
        x, y = rng.uniform(0.05 * n, 0.95 * n, 2)
        if rng.random() < 0.5:
            r = n * rng.uniform(0.008, 0.025)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        else:
            dx, dy = rng.normal(0, n * 0.05, 2)
            draw.line((x, y, x + dx, y + dy), fill=255, width=max(1, round(n * rng.uniform(0.01, 0.025))))
        marks += np.asarray(image, dtype=np.float32) / 255 * rng.uniform(0.4, 0.9)
    return np.clip(marks, 0, 1)


def _lighting(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multiplicative light: a gradient across the sheet, sometimes a soft shadow; (n, n)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.35) * (xx * math.cos(angle) + yy * math.sin(angle))
    light *= 1 + rng.uniform(0, 0.05) * _smooth_noise(rng, n, 4)
    if rng.random() < 0.3:  # the shadow of a hand or phone over part of the sheet
        cx, cy = rng.uniform(-0.7, 0.7, 2)
        r = rng.uniform(0.3, 0.7)
        d = np.hypot(xx - cx, yy - cy)
        light *= 1 - rng.uniform(0.1, 0.3) * np.clip((r - d) / 0.2, 0, 1)
    return light * rng.uniform(0.8, 1.05)


# --------------------------------------------------------------------------- camera

def _camera(rgb: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """Downsample, blur, add sensor noise and sometimes JPEG softening."""
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    image = image.resize((size, size), Image.Resampling.BOX)
    radius = rng.uniform(0, 0.9)
    if radius > 0.25:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    sigma = rng.uniform(0, 7)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (size, size, 3))
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(25, 80)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


# --------------------------------------------------------------------------- one image

def draw_image(rng: np.random.Generator, cls: str, image_size: int = 64) -> Image.Image:
    """One RGB picture of an O (cls "o") or an X (cls "x")."""
    if cls not in CLASSES:
        raise ValueError(f"class must be one of {CLASSES}, not {cls!r}")
    n = image_size * SUPERSAMPLE
    style = STYLES[int(rng.choice(len(STYLES), p=STYLE_WEIGHTS))]
    if style == "font":
        mask, opacity = _font_mask(rng, cls, n)
    else:
        mask, opacity = _stroke_mask(rng, cls, style, n)
    alpha = _place(mask, rng) * opacity
    ink = INKS[int(rng.integers(len(INKS)))] + rng.normal(0, 10, 3)
    paper = _paper(rng, n)
    alpha = np.maximum(alpha, _marks(rng, n))
    rgb = paper * (1 - alpha[..., None]) + ink * alpha[..., None]
    rgb *= _lighting(rng, n)[..., None]
    rgb *= rng.uniform(0.94, 1.05, 3)  # white balance
    return _camera(rgb, rng, image_size)


# --------------------------------------------------------------------------- the dataset

def generate(root: Path, seed: int = 0, counts: dict[str, int] | None = None,
             image_size: int = 64) -> dict[str, dict[str, int]]:
    """Write root/<split>/<class>/<index>.png for splits train/validation/test and classes o/x.

    `counts` is the number of images per class for each split (default DEFAULT_COUNTS; splits
    left out are not written). Returns {split: {class: images written}}.
    """
    root = Path(root)
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {SPLITS}")
    written: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        if split not in counts:
            continue
        written[split] = {}
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(int(counts[split])):
                image = draw_image(image_rng(seed, split, cls, index), cls, image_size)
                image.save(folder / f"{index}.png", format="PNG", optimize=False)
            written[split][cls] = int(counts[split])
    return written
