"""Turning a drawing or a photo of one character into the 28x28 image a model sees,
the way MNIST itself was made: ink light on dark, cropped to the ink, the longer
side scaled to 20 px, pasted into 28x28 so that the centre of mass is central.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import Normalization
from .evaluation import predict_proba
from .models import eval_mode

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
INK_THRESHOLD = 0.25        # of the strongest ink: weaker pixels are background noise
MIN_INK_SHARE = 0.0005      # fewer ink pixels than this share of the image: a speck, not a character
MIN_INK_EXTENT = 0.04       # an ink box shorter than this share of the image's side: a dot


class ImageProblem(ValueError):
    """An upload that is not one usable still image."""


def read_image_bytes(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG/... into an (H, W) or (H, W, 4) uint8 array, refusing
    oversized, animated and undecodable files with a message a user can act on."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageProblem(f"The file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            raise ImageProblem(f"The image is {image.width}x{image.height} pixels; the limit is 4096x4096. "
                               "Crop it to the character first.")
        if getattr(image, "n_frames", 1) > 1:
            raise ImageProblem("Animated images are not supported: upload a single still image.")
        image.load()
    except ImageProblem:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageProblem(f"This file is not an image that can be read ({type(error).__name__}). "
                           "Upload a PNG or JPEG of one character.") from None
    image = _upright(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "L"))


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag: phones store photos sideways and only tag the
    rotation, so without this a photographed character reaches the model on its side."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):
        return image  # unreadable EXIF: the pixels as stored are the best guess


def read_image_file(path: str | Path) -> np.ndarray:
    try:
        return read_image_bytes(Path(path).read_bytes())
    except ImageProblem as problem:
        raise ImageProblem(f"{path}: {problem}") from None


def ink_map(image: np.ndarray) -> np.ndarray:
    """(H, W) float ink in [0, 1], 1 where the strokes are, whatever the colours.

    With a transparent background (a canvas) the alpha channel is the ink. Otherwise
    the background is the typical border brightness: dark strokes on light paper
    are inverted, and the background level is subtracted (photos are never pure white).
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4 and image[..., 3].min() < 255:
        return image[..., 3].astype(np.float32) / 255
    if image.ndim == 3:
        rgb = image[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    else:
        gray = image.astype(np.float32)
    gray /= 255.0 if image.dtype == np.uint8 else max(float(gray.max()), 1e-6)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = background - gray if background > 0.5 else gray - background
    return np.clip(ink / max(float(ink.max()), 1e-6), 0, 1)


def prepare_drawing(image: np.ndarray) -> torch.Tensor | None:
    """A drawing or photo -> (28, 28) float tensor in [0, 1], ink light on dark, MNIST-style;
    None when there is no character (blank, or only a speck of ink)."""
    ink = ink_map(image)
    mask = ink > INK_THRESHOLD
    height, width = ink.shape
    if mask.sum() < max(4, MIN_INK_SHARE * height * width):
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if max(bottom - top, right - left) < MIN_INK_EXTENT * max(height, width):
        return None
    crop = torch.from_numpy(np.where(mask, ink, 0)[top:bottom, left:right].copy())

    # Longer side to 20 px, aspect kept; antialiased so thin strokes survive the shrink.
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    small = F.interpolate(crop[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    small = small.clamp(0, 1) / small.max().clamp(min=1e-6)

    # Paste so the centre of mass lands on the centre of the 28x28 frame.
    ys, xs = torch.arange(size[0], dtype=torch.float32), torch.arange(size[1], dtype=torch.float32)
    mass = small.sum()
    com_y, com_x = float((small.sum(1) * ys).sum() / mass), float((small.sum(0) * xs).sum() / mass)
    top, left = round(13.5 - com_y), round(13.5 - com_x)
    top, left = min(max(top, 0), 28 - size[0]), min(max(left, 0), 28 - size[1])
    out = torch.zeros(28, 28)
    out[top:top + size[0], left:left + size[1]] = small
    return out


def predict_drawing(model: torch.nn.Module, normalization: Normalization, image28: torch.Tensor) -> torch.Tensor:
    """Class probabilities (C,) for one prepared (28, 28) image."""
    return predict_proba(model, image28[None, None], normalization)[0]


def saliency(model: torch.nn.Module, normalization: Normalization, image28: torch.Tensor,
             target: int, samples: int = 8, noise: float = 0.1, seed: int = 0) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): the input gradient of the target class's logit,
    averaged over slightly noisy copies so it shows strokes rather than pixel noise.
    Returns (28, 28) in [0, 1]."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    noisy = image28[None, None] + noise * torch.randn(samples, 1, 28, 28, generator=generator)
    x = normalization.apply(noisy.clamp(0, 1)).to(device).requires_grad_(True)
    with eval_mode(model):
        # autograd.grad, not backward(): the model may be shared by several sessions,
        # and this leaves its parameters' .grad untouched.
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    grad = grad.abs().mean(0)[0].cpu()
    return grad / grad.max().clamp(min=1e-12)
