"""Turning a drawing or a photo of one character into the 28x28 image a model sees,
framed the way the model's dataset frames its images (see framing.py): ink light on
dark, cropped to the ink, scaled and centred by the dataset's own convention.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pillow_heif
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import Normalization
from .evaluation import predict_proba
from .models import eval_mode
from .framing import INK_THRESHOLD, MNIST_FRAMING, Framing

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 50_000_000   # a 50-megapixel photo; larger ones take seconds and hundreds of MB to decode
# What is decoded in full: a JPEG decodes at a reduced scale (draft), every other format at its own
# size, up to 4 bytes a pixel, and shrinking an RGBA picture copies it once more (premultiplied
# alpha). 8 megapixels keep one upload under about 80 MB of server memory (benchmarks/memory.py:
# 16 took 143 MB); a 7000x7000 16-bit PNG of 100 kB cost 1.8 GB before this limit.
MAX_DECODED_PIXELS = 8_000_000
WORKING_SIDE = 1024              # larger pictures are shrunk to this first: the model sees 28x28 anyway
# The file types the page offers, and the only decoders an upload is given to: Pillow would
# otherwise try every plugin it has, and hand an EPS named .png to Ghostscript.
UPLOAD_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP",
                  "tif": "TIFF", "tiff": "TIFF", "heic": "HEIF", "heif": "HEIF"}
# HEIC, the iPhone camera's format, through the maintained pillow-heif plugin (libheif). Its photos
# are 12 megapixels, decoded as 8-bit RGB at 3 bytes a pixel.
pillow_heif.register_heif_opener(thumbnails=False)
MAX_HEIF_PIXELS = 13_000_000
MIN_INK_SHARE = 0.0005      # fewer ink pixels than this share of the image: a speck, not a character
MIN_INK_EXTENT = 0.04       # an ink box shorter than this share of the image's side: a dot
MIN_STROKE_WIDTHS = 3       # a character spans at least this many stroke widths; less is a dot or a dash
TRANSPARENT_SHEET = 0.5     # at least this share of transparent pixels: the picture is ink on a clear sheet


class ImageProblem(ValueError):
    """An upload that is not one usable still image."""


def read_image_bytes(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG/... into an (H, W) or (H, W, 4) uint8 array, no side longer
    than WORKING_SIDE, refusing oversized, animated and undecodable files with a message a
    user can act on."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageProblem(f"The file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(set(UPLOAD_FORMATS.values())))
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            raise ImageProblem(f"The image is {image.width}x{image.height} pixels; the limit is "
                               f"{MAX_UPLOAD_PIXELS // 1_000_000} megapixels. Crop it to the character first.")
        if getattr(image, "n_frames", 1) > 1:
            raise ImageProblem("Animated images are not supported: upload a single still image.")
        image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))  # JPEG: decode at a reduced scale, much faster
        limit = MAX_HEIF_PIXELS if image.format == "HEIF" else MAX_DECODED_PIXELS
        if image.width * image.height > limit:  # the size it will be decoded at
            raise ImageProblem(f"The image is {image.width}x{image.height} pixels; the limit is "
                               f"{limit // 1_000_000} megapixels. Crop it to the character or shrink it first.")
        image.load()
    except ImageProblem:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        cut_short = "truncated" in str(error) or "broken data stream" in str(error)
        raise ImageProblem(("This image file is cut short: save or download it again." if cut_short else
                            "This file is not an image that can be read.") +
                           " Upload a PNG or JPEG of one character.") from None
    # Shrunk first, while it is in its own compact mode: every conversion after it is of a small
    # picture. (A square bound, so the EXIF rotation applied after it gives the same size.)
    image.thumbnail((WORKING_SIDE, WORKING_SIDE))
    image = _upright(image)
    image = _eight_bit(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "L"))


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag: phones store photos sideways and only tag the
    rotation, so without this a photographed character reaches the model on its side."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):
        return image  # unreadable EXIF: the pixels as stored are the best guess


def _eight_bit(image: Image.Image) -> Image.Image:
    """Float and 16/32-bit integer pictures (scientific TIFFs, 16-bit PNGs) stretched to
    0-255 by their own range: Pillow's conversion would clip a float image in [0, 1] to
    black and a 16-bit one to white."""
    if image.mode not in ("F", "I") and not image.mode.startswith("I;"):
        return image
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)  # NaN and infinite pixels: background
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def read_image_file(path: str | Path) -> np.ndarray:
    try:
        return read_image_bytes(Path(path).read_bytes())
    except ImageProblem as problem:
        raise ImageProblem(f"{path}: {problem}") from None


def ink_map(image: np.ndarray) -> np.ndarray:
    """(H, W) float ink in [0, 1], 1 where the strokes are, whatever the colours.

    A picture that is mostly transparent (a canvas, a drawing on a clear sheet) has its
    ink in the alpha channel. Otherwise the ink is in the brightness: the background is
    the typical border brightness, dark strokes on light paper are inverted, and the
    background level is subtracted (photos are never pure white). Partly transparent
    pixels of such a picture (cut-off corners) show that background, not ink.
    """
    image = np.asarray(image)
    alpha = image[..., 3].astype(np.float32) / 255 if image.ndim == 3 and image.shape[2] == 4 else None
    if alpha is not None and (alpha < 0.5).mean() >= TRANSPARENT_SHEET:
        return alpha
    if image.ndim == 3:
        gray = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    else:
        gray = image.astype(np.float32)
    gray /= 255.0 if image.dtype == np.uint8 else max(float(gray.max()), 1e-6)
    border_mask = np.zeros(gray.shape, dtype=bool)
    border_mask[[0, -1]], border_mask[:, [0, -1]] = True, True
    if alpha is not None:
        opaque = alpha >= 0.5
        trusted = border_mask & opaque if (border_mask & opaque).any() else opaque
        background = float(np.median(gray[trusted])) if trusted.any() else 0.0
        gray = alpha * gray + (1 - alpha) * background
    else:
        background = float(np.median(gray[border_mask]))
    ink = background - gray if background > 0.5 else gray - background
    return np.clip(ink / max(float(ink.max()), 1e-6), 0, 1)


def prepare_drawing(image: np.ndarray, framing: Framing = MNIST_FRAMING,
                    pen_width: float | None = None) -> torch.Tensor | None:
    """A drawing or photo -> (28, 28) float tensor in [0, 1], ink light on dark, framed as
    `framing` says (the model's dataset's convention). None when there is no character:
    a blank picture, a speck, or - when the pen's width is known, as on the canvas, in the
    picture's pixels - a dot or a dash shorter than MIN_STROKE_WIDTHS pen widths. (A photo's
    strokes have no known width, and a filled silhouette, as Fashion-MNIST's, is no dot.)"""
    ink = ink_map(image)
    mask = ink > INK_THRESHOLD
    height, width = ink.shape
    if mask.sum() < max(4, MIN_INK_SHARE * height * width):
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    longer = max(bottom - top, right - left)
    if longer < MIN_INK_EXTENT * max(height, width):
        return None
    if pen_width is not None and longer < MIN_STROKE_WIDTHS * pen_width:
        return None
    crop = np.where(mask, ink, 0)[top:bottom, left:right]
    return frame(torch.from_numpy(np.ascontiguousarray(crop)), framing)


def frame(crop: torch.Tensor, framing: Framing) -> torch.Tensor:
    """Ink cropped to its box (h, w) -> the (28, 28) image: the longer side scaled to the
    framing's extent, aspect kept, and pasted where the framing centres it."""
    scale = framing.extent / max(crop.shape)
    size = (max(1, min(28, round(crop.shape[0] * scale))), max(1, min(28, round(crop.shape[1] * scale))))
    # Antialiased so thin strokes survive the shrink.
    small = F.interpolate(crop[None, None].float(), size=size, mode="bilinear", antialias=True,
                          align_corners=False)[0, 0]
    small = small.clamp(0, 1) / small.max().clamp(min=1e-6)
    if framing.centring == "mass":
        mass = small.sum()
        centre_y = float((small.sum(1) * torch.arange(size[0])).sum() / mass)
        centre_x = float((small.sum(0) * torch.arange(size[1])).sum() / mass)
    else:
        centre_y, centre_x = (size[0] - 1) / 2, (size[1] - 1) / 2
    top, left = round(framing.centre_y - centre_y), round(framing.centre_x - centre_x)
    top, left = min(max(top, 0), 28 - size[0]), min(max(left, 0), 28 - size[1])
    out = torch.zeros(28, 28)
    out[top:top + size[0], left:left + size[1]] = small
    return out


def predict_drawing(model: torch.nn.Module, normalization: Normalization, image28: torch.Tensor) -> torch.Tensor:
    """Class probabilities (C,) for one prepared (28, 28) image."""
    return predict_proba(model, image28[None, None], normalization)[0]


def saliency(model: torch.nn.Module, normalization: Normalization, image28: torch.Tensor,
             target: int, samples: int = 16, noise: float = 0.15, seed: int = 0) -> torch.Tensor:
    """Which ink raised the score of class `target`: SmoothGrad x input. The gradient of the
    target's logit with respect to the pixels, averaged over noisy copies of the image so
    it shows strokes rather than pixel noise (Smilkov et al., 2017), times the image itself:
    a pixel's share of the score, measured from a blank background. Its positive part,
    (28, 28) in [0, 1]: background pixels hold no ink and get none."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    noisy = (image28[None, None] + noise * torch.randn(samples, 1, 28, 28, generator=generator)).clamp(0, 1)
    noisy = noisy.to(device).requires_grad_(True)
    with eval_mode(model):
        # autograd.grad, not backward(): the model may be shared by several sessions,
        # and this leaves its parameters' .grad untouched.
        (grad,) = torch.autograd.grad(model(normalization.apply(noisy))[:, target].sum(), noisy)
    contribution = (grad.mean(0)[0].cpu() * image28).clamp(min=0)
    return contribution / contribution.max().clamp(min=1e-12)


# Why a drawing may be hard to read, measured on the raw picture and on what the model sees.
SMALL_DRAWING = 0.4   # an ink box's longer side under this share of the picture's: drawn small
# Mean ink of the 28x28 image under this: thin or faint strokes. Fewer than 1% of the training
# images hold so little (1st percentiles measured: MNIST 0.051, Kuzushiji-MNIST 0.066,
# Fashion-MNIST 0.065); a Kuzushiji character re-drawn with the thinnest pen, 6 px, holds 0.10
# (median).
FAINT_INK = 0.04


def small_or_faint(image: np.ndarray, image28: torch.Tensor) -> str | None:
    """"small" when the character fills little of the picture, "faint" when what the model sees
    holds little ink, else None: the only drawings for which "draw it larger and clearer" is
    advice. (A clean drawing the model does not know needs other advice.) `image` is the
    drawing or photo, `image28` what prepare_drawing made of it."""
    mask = ink_map(image) > INK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) and max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < SMALL_DRAWING * max(mask.shape):
        return "small"
    if float(image28.mean()) < FAINT_INK:
        return "faint"
    return None
