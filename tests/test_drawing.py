import io

import numpy as np
import pytest
import torch
from PIL import Image

from kmnist_core import drawing


def canvas(strokes, size=280):
    """White strokes on black, drawn as filled rectangles (y0, y1, x0, x1)."""
    image = np.zeros((size, size), dtype=np.uint8)
    for y0, y1, x0, x1 in strokes:
        image[y0:y1, x0:x1] = 255
    return image


def ink_box(image28, threshold=0.05):
    rows = torch.nonzero(image28.max(1).values > threshold).flatten()
    cols = torch.nonzero(image28.max(0).values > threshold).flatten()
    return rows[0].item(), rows[-1].item(), cols[0].item(), cols[-1].item()


def centre_of_mass(image28):
    ys = torch.arange(28, dtype=torch.float32)
    return float((image28.sum(1) * ys).sum() / image28.sum()), float((image28.sum(0) * ys).sum() / image28.sum())


@pytest.mark.parametrize("strokes", [
    [(10, 60, 200, 210), (10, 20, 180, 240)],          # small, off-centre, top right
    [(100, 260, 20, 80)],                                # thick vertical bar, left
    [(120, 130, 30, 250), (40, 250, 135, 145)],         # a large cross
])
def test_strokes_end_up_centred_in_a_20px_box(strokes):
    out = drawing.prepare_drawing(canvas(strokes))
    assert out.shape == (28, 28) and out.max() == pytest.approx(1, abs=1e-3)
    top, bottom, left, right = ink_box(out)
    assert max(bottom - top + 1, right - left + 1) == 20
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


def test_blank_and_specks_are_empty():
    assert drawing.prepare_drawing(canvas([])) is None
    assert drawing.prepare_drawing(canvas([(100, 103, 100, 103)])) is None  # a 3x3 speck on 280x280
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    assert drawing.prepare_drawing(rgba) is None


def test_rgba_white_on_black_and_black_on_white_agree():
    strokes = [(50, 230, 60, 90), (60, 80, 60, 220), (140, 160, 100, 200)]
    white_on_black = canvas(strokes)
    black_on_white = 255 - white_on_black
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)  # a canvas: transparent, blue strokes
    rgba[..., 2] = 200
    rgba[..., 3] = white_on_black
    rgb = np.stack([black_on_white] * 3, axis=-1)
    results = [drawing.prepare_drawing(x) for x in (white_on_black, black_on_white, rgba, rgb)]
    for other in results[1:]:
        assert torch.allclose(results[0], other, atol=1e-4)


def test_photo_with_grey_paper_is_cleaned():
    paper = np.full((300, 300), 190, dtype=np.uint8) + np.random.default_rng(0).integers(0, 20, (300, 300)).astype(np.uint8)
    paper[80:220, 140:160] = 40
    out = drawing.prepare_drawing(paper)
    assert out is not None and out[:4].max() == 0 and out[:, :2].max() == 0


def png_bytes(image, **save):
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


def test_upload_problems_are_clear_messages():
    with pytest.raises(drawing.ImageProblem, match="not an image"):
        drawing.read_image_bytes(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(drawing.ImageProblem, match="cut short"):
        drawing.read_image_bytes(png_bytes(Image.new("L", (50, 50)), format="PNG")[:60])
    frames = [Image.new("L", (20, 20), c) for c in (0, 255)]
    with pytest.raises(drawing.ImageProblem, match="Animated"):
        drawing.read_image_bytes(png_bytes(frames[0], format="GIF", save_all=True, append_images=frames[1:]))
    with pytest.raises(drawing.ImageProblem, match="limit is 50 megapixels"):
        drawing.read_image_bytes(png_bytes(Image.new("L", (8000, 7000)), format="PNG"))
    with pytest.raises(drawing.ImageProblem, match="limit is 10 MB"):
        drawing.read_image_bytes(bytes(11 * 2**20))
    ok = drawing.read_image_bytes(png_bytes(Image.fromarray(canvas([(10, 200, 100, 140)])), format="PNG"))
    assert ok.shape == (280, 280) and drawing.prepare_drawing(ok) is not None


def test_prediction_and_saliency(trained_run):
    from kmnist_core import runs
    model = runs.load_model(trained_run)
    image = drawing.prepare_drawing(canvas([(40, 240, 120, 160)]))
    probabilities = drawing.predict_drawing(model, trained_run.normalization, image)
    assert probabilities.shape == (10,) and probabilities.sum().item() == pytest.approx(1, abs=1e-5)
    heat = drawing.saliency(model, trained_run.normalization, image, int(probabilities.argmax()))
    assert heat.shape == (28, 28) and heat.max().item() == pytest.approx(1) and heat.min() >= 0
    assert all(p.grad is None for p in model.parameters())


def test_phone_photos_are_turned_upright_by_their_exif_orientation():
    paper = np.full((200, 300), 230, dtype=np.uint8)
    paper[20:180, 140:160] = 30                      # a vertical stroke as stored...
    photo = Image.fromarray(paper)
    exif = photo.getexif()
    exif[0x0112] = 6                                 # ...tagged "rotate 90° clockwise to display"
    upright = drawing.read_image_bytes(png_bytes(photo, format="JPEG", exif=exif.tobytes()))
    assert upright.shape == (300, 200)
    out = drawing.prepare_drawing(upright)
    height = (out.max(1).values > 0.1).sum().item()
    width = (out.max(0).values > 0.1).sum().item()
    assert width > 3 * height                        # the stroke is horizontal, as displayed
    palette = Image.fromarray(canvas([(40, 240, 120, 160)])).convert("P")
    assert drawing.read_image_bytes(png_bytes(palette, format="PNG", transparency=0)).shape == (280, 280, 4)


def test_draw_latency_benchmark_covers_every_preset():
    from benchmarks import draw_latency as bench_draw
    from kmnist_core import models
    rows = bench_draw.measure_draw_latency(repeats=2)
    assert [row["arch"] for row in rows] == models.list_models()
    for row in rows:
        assert set(row) == {"arch", "median_ms", "p90_ms"}
        assert 0 < row["median_ms"] <= row["p90_ms"]
    assert drawing.prepare_drawing(bench_draw.synthetic_stroke()) is not None
    with pytest.raises(ValueError):
        bench_draw.measure_draw_latency(repeats=0)


def test_error_messages_name_no_exception_classes():
    for content in (b"%PDF-1.4 definitely not a picture", png_bytes(Image.new("L", (50, 50)), format="PNG")[:60]):
        with pytest.raises(drawing.ImageProblem) as problem:
            drawing.read_image_bytes(content)
        assert "Error" not in str(problem.value) and "(" not in str(problem.value)


def test_a_large_photo_is_shrunk_not_refused():
    paper = np.full((6000, 6000), 220, dtype=np.uint8)      # a 36-megapixel photo of a "1"
    paper[1000:5000, 2800:3200] = 30
    image = drawing.read_image_bytes(png_bytes(Image.fromarray(paper), format="JPEG", quality=80))
    assert max(image.shape) == drawing.WORKING_SIDE
    out = drawing.prepare_drawing(image)
    assert out is not None and (out.max(0).values > 0.5).sum() < (out.max(1).values > 0.5).sum()  # still upright


def test_a_dot_or_a_dash_is_no_character_at_the_pens_width():
    dot = np.zeros((280, 280, 4), dtype=np.uint8)
    yy, xx = np.mgrid[:280, :280]
    dot[np.hypot(yy - 140, xx - 140) <= 10] = 255           # one click at pen width 20
    assert drawing.prepare_drawing(dot, pen_width=20) is None
    dash = canvas([(130, 150, 100, 150)])                    # a 50 px dash at pen width 20
    assert drawing.prepare_drawing(dash, pen_width=20) is None
    one = canvas([(60, 220, 130, 150)])                      # a 160 px stroke at the same pen: a character
    assert drawing.prepare_drawing(one, pen_width=20) is not None
    assert drawing.prepare_drawing(dash, pen_width=6) is not None   # the same dash with a fine pen: 8 widths long


def opaque_photo_rgba(alpha_value: int = 255) -> np.ndarray:
    """An opaque RGBA photo: a dark vertical bar on light paper."""
    image = np.full((200, 200, 4), 230, dtype=np.uint8)
    image[30:170, 90:110, :3] = 20
    image[..., 3] = alpha_value
    return image


def test_an_opaque_rgba_photo_is_read_by_its_brightness_not_its_alpha():
    reference = drawing.prepare_drawing(opaque_photo_rgba()[..., :3])
    corners = opaque_photo_rgba()
    corners[:4, :4, 3] = corners[:4, -4:, 3] = corners[-4:, :4, 3] = corners[-4:, -4:, 3] = 0   # rounded-off corners
    corners[:4, :4, :3] = 0                                  # transparent black: it must not read as ink
    for image in (corners, opaque_photo_rgba(250)):
        out = drawing.prepare_drawing(image)
        assert out is not None and torch.allclose(out, reference, atol=0.05)
        assert (out > 0.25).sum() < 150                      # a bar, not a solid square (28x28 = 784)


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_float_and_sixteen_bit_images_are_stretched_by_their_range():
    digit = np.zeros((100, 100), dtype=np.float32)
    digit[15:85, 45:55] = 1.0                                # a clear "1", float32 in [0, 1]
    reference = drawing.prepare_drawing((digit * 255).astype(np.uint8))
    for array in (digit, digit * 0.01 + 5.0, (digit * 60000).astype(np.uint16)):
        data = tiff_bytes(array) if array.dtype != np.uint16 else png_bytes(Image.fromarray(array), format="PNG")
        out = drawing.prepare_drawing(drawing.read_image_bytes(data))
        assert out is not None and torch.allclose(out, reference, atol=0.02)


def test_only_the_listed_image_formats_are_decoded(monkeypatch):
    from PIL import EpsImagePlugin
    reached = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: reached.append("eps") or 1 / 0)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 20 20\nnewpath 0 0 moveto 20 20 lineto stroke\n%%EOF\n"
    with pytest.raises(drawing.ImageProblem, match="not an image"):
        drawing.read_image_bytes(eps)                       # an EPS named scan.png: never handed to Ghostscript
    assert reached == []
    assert set(drawing.UPLOAD_FORMATS.values()) <= set(Image.registered_extensions().values())
    assert drawing.read_image_bytes(tiff_bytes(canvas([(10, 200, 100, 140)]))).shape == (280, 280)


def ink_share_of_saliency(model, normalization, image28) -> float:
    probabilities = drawing.predict_drawing(model, normalization, image28)
    heat = drawing.saliency(model, normalization, image28, int(probabilities.argmax()))
    return float(heat[image28 > 0.1].sum() / heat.sum())


def test_saliency_lies_on_the_ink_of_clear_drawings(trained_run, data_root):
    from kmnist_core import data, runs
    model = runs.load_model(trained_run)
    test = data.load_dataset("mnist", data_root).test_images[:20].float() / 255
    shares = [ink_share_of_saliency(model, trained_run.normalization, image) for image in test]
    assert min(shares) >= 0.9, shares
    drawn = drawing.prepare_drawing(canvas([(40, 240, 120, 160), (40, 70, 60, 220)]))
    assert ink_share_of_saliency(model, trained_run.normalization, drawn) >= 0.9


@pytest.mark.parametrize("framing_name", ["kmnist", "mnist"])
@pytest.mark.parametrize("strokes, expected", [
    ([(40, 240, 130, 150), (120, 140, 40, 240)], None),               # a big cross, pen 20: clean
    ([(20, 260, 130, 150)], None),                                     # one tall stroke, pen 20: a clean "1"
    ([(100, 160, 120, 130), (125, 135, 100, 170)], "small"),           # a cross 70 px across
    ([(20, 260, 140, 143), (257, 260, 40, 143)], "faint"),             # an L drawn with a 3 px pen
])
def test_only_small_or_faint_drawings_are_called_so(strokes, expected, framing_name):
    from kmnist_core import framing
    image = canvas(strokes)
    image28 = drawing.prepare_drawing(image, framing.KNOWN_FRAMINGS[framing_name])
    assert drawing.small_or_faint(image, image28) == expected


def test_a_heic_photo_reads_like_any_other():
    """Issue 18: HEIC photos (iPhones' default) were refused by the Draw page's upload."""
    assert drawing.UPLOAD_FORMATS["heic"] == "HEIF"
    picture = np.full((240, 320, 3), 235, np.uint8)
    picture[60:180, 150:170] = 15                      # a dark bar on light paper: a "1"
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="HEIF", quality=90)
    image = drawing.read_image_bytes(buffer.getvalue())
    assert image.shape[:2] == (240, 320)
    assert image[120, 160].mean() < 80 and image[20, 20].mean() > 180   # lossy, but the same picture
