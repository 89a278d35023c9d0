"""The Draw page in Streamlit's AppTest: no model, upload problems, blank input, and a
prediction from a drawing (the canvas's value is set the way the component sends it:
AppTest cannot draw on it; tests/test_browser.py does that in a real browser)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CANVAS_KEY = "draw_canvas"


def png(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, **({"format": "PNG"} | save))
    return buffer.getvalue()


def stroke_image(size: int = 280) -> np.ndarray:
    """What the canvas sends: RGBA, white strokes on an opaque black background."""
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[..., 3] = 255
    image[40:240, 120:150, :3] = 255
    image[60:85, 60:220, :3] = 255
    return image


def class_drawing(size: int = 280) -> np.ndarray:
    """One of the synthetic dataset's own images (conftest.synthetic_images), drawn on the canvas:
    a drawing the tiny test models know (a stroke is none of their classes)."""
    from conftest import synthetic_images
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[..., 3] = 255
    image[..., :3] = np.kron(synthetic_images(1, seed=5)[0][0], np.ones((size // 28, size // 28), np.uint8))[..., None]
    return image


def canvas_value(image: np.ndarray, pen: int = 20) -> dict:
    """The canvas component's state after a stroke: the PNG and the widest pen used."""
    url = "data:image/png;base64," + base64.b64encode(png(image)).decode()
    return {"drawing": {"png": url, "pen": pen, "strokes": 1}}


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(element.value) for element in getattr(at, kind))


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def train_tiny(dataset: str, data_root: Path, runs_dir: Path) -> Path:
    from kmnist_core import training
    from kmnist_core.config import TrainConfig
    training.train(TrainConfig(dataset=dataset, arch="mlp_small", epochs=1, data_root=str(data_root), device="cpu"),
                   runs_dir=runs_dir)
    return runs_dir


@pytest.fixture(scope="module")
def mnist_runs(data_root, tmp_path_factory) -> Path:
    """A runs folder with one tiny MNIST model (synthetic data), trained once for the module."""
    return train_tiny("mnist", data_root, tmp_path_factory.mktemp("mnist_runs"))


@pytest.fixture(scope="module")
def kmnist_runs(data_root, tmp_path_factory) -> Path:
    return train_tiny("kmnist", data_root, tmp_path_factory.mktemp("kmnist_runs"))


@pytest.fixture
def no_runs(monkeypatch, data_root, tmp_path):
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(data_root))
    monkeypatch.setenv("KMNIST_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def env(monkeypatch, data_root, mnist_runs):
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(data_root))
    monkeypatch.setenv("KMNIST_RUNS_DIR", str(mnist_runs))


def open_draw() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/draw.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def to_upload(at: AppTest) -> AppTest:
    at.radio(key="draw_source").set_value(at.radio(key="draw_source").options[1]).run()
    return at


def test_no_model_points_to_the_train_page(no_runs):
    at = open_draw()
    no_errors(at)
    assert "no trained model yet" in texts(at, "info")
    links = [e for e in at.get("page_link")]
    assert links and "train" in str(links[0].proto).lower()
    assert not at.get("plotly_chart")


def test_blank_canvas_gives_a_hint_not_a_guess(env):
    at = open_draw()
    no_errors(at)
    assert "blank canvas" in texts(at, "info")
    assert "Prediction" not in texts(at, "markdown")
    at.session_state[CANVAS_KEY] = {"drawing": {"png": None, "pen": 0, "strokes": 0}}
    at.run()
    no_errors(at)
    assert "blank canvas" in texts(at, "info") and not at.get("plotly_chart")
    speck = np.zeros((280, 280, 4), np.uint8)
    speck[..., 3] = 255
    speck[100:103, 100:103, :3] = 255
    at.session_state[CANVAS_KEY] = canvas_value(speck, pen=6)
    at.run()
    no_errors(at)
    assert "only a dot" in texts(at, "info") and not at.get("plotly_chart")


def test_a_drawing_gets_a_prediction_probabilities_examples_and_saliency(env):
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(class_drawing())
    at.run()
    no_errors(at)
    markdown = texts(at, "markdown")
    assert "Prediction" in markdown and "sure" in markdown and "Which strokes drove the decision" in markdown
    assert len(at.get("plotly_chart")) == 1
    captions = texts(at, "caption")
    assert "Next:" in captions
    captions = " | ".join(c for image in at.get("image") for c in image.captions)
    # what the model sees, real examples of the predicted class, the saliency overlay
    assert "28x28" in captions and "Real examples of" in captions and "SmoothGrad" in captions


def test_clearing_the_canvas_brings_the_hint_back(env):
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(stroke_image())
    at.run()
    assert at.get("plotly_chart")
    at.session_state[CANVAS_KEY] = {"drawing": {"png": None, "pen": 0, "strokes": 0}}   # what Clear sends
    at.run()
    no_errors(at)
    assert not at.get("plotly_chart") and "blank canvas" in texts(at, "info")


def test_a_single_dot_or_a_short_dash_gets_no_guess(env):
    at = open_draw()
    for y0, y1, x0, x1 in ((130, 150, 130, 150), (130, 150, 100, 150)):   # a click, a 50 px dash, at pen 20
        image = np.zeros((280, 280, 4), np.uint8)
        image[..., 3] = 255
        image[y0:y1, x0:x1, :3] = 255
        at.session_state[CANVAS_KEY] = canvas_value(image, pen=20)
        at.run()
        no_errors(at)
        assert "only a dot or a dash" in texts(at, "info") and not at.get("plotly_chart")


def without_data(runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Serve a copy of `runs_dir` as if on another machine: no datasets, and the runs' own
    data roots gone. Their novelty statistics go too (the trainer fits them): a tiny model of
    synthetic data finds any drawing odd."""
    import shutil
    from kmnist_core import novelty, runs
    elsewhere = tmp_path / "runs"
    shutil.copytree(runs_dir, elsewhere)
    for fitted in elsewhere.glob(f"*/{novelty.FILE}"):
        fitted.unlink()
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("KMNIST_RUNS_DIR", str(elsewhere))
    for run in runs.list_runs(elsewhere):
        if not run.shipped:  # the install's own, listed too: never rewritten
            run.record.config.data_root = str(tmp_path / "gone")
            run.save()


def test_kmnist_models_answer_in_hiragana_with_romanisation(monkeypatch, kmnist_runs, tmp_path):
    from kmnist_core.data import KMNIST_CLASSES
    without_data(kmnist_runs, tmp_path, monkeypatch)
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(stroke_image())
    at.run()
    no_errors(at)
    answer = next(m.value for m in at.markdown if "sure" in m.value)
    kana, roman = next((k, r) for k, r in (c.split() for c in KMNIST_CLASSES) if f">{k}<" in answer)
    assert f">{roman}<" in answer and "font-size:5rem" in answer
    seen = next(c for image in at.get("image") for c in image.captions if "28x28" in c)
    assert "Kuzushiji-MNIST" in seen and "28 px" in seen and "box" in seen       # KMNIST's framing, not MNIST's


def test_the_mnist_caption_says_its_framing(env):
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(stroke_image())
    at.run()
    seen = next(c for image in at.get("image") for c in image.captions if "28x28" in c)
    assert "20 px" in seen and "centre of mass" in seen


def test_without_its_dataset_the_page_still_predicts_and_warns_of_nothing(monkeypatch, mnist_runs, tmp_path):
    without_data(mnist_runs, tmp_path, monkeypatch)
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(stroke_image())
    at.run()
    no_errors(at)
    assert not at.warning, [w.value for w in at.warning]
    assert "Prediction" in texts(at, "markdown") and len(at.get("plotly_chart")) == 1
    captions = " | ".join(c for image in at.get("image") for c in image.captions)
    assert "Real examples of" not in captions
    assert "needs this model's training data" in texts(at, "caption")


def test_a_drawing_like_none_of_the_classes_is_called_so(env):
    at = open_draw()
    square = np.zeros((280, 280, 4), np.uint8)
    square[..., 3] = 255
    square[30:250, 40:240, :3] = 255                                       # a big filled square
    at.session_state[CANVAS_KEY] = canvas_value(square)
    at.run()
    no_errors(at)
    markdown = texts(at, "markdown")
    assert "Not one of my classes?" in markdown and "Closest:" in markdown
    assert len(at.get("plotly_chart")) == 1                                 # the probabilities are still shown


def test_a_fashion_model_says_to_draw_filled_silhouettes(monkeypatch, tmp_path):
    from conftest import write_dataset
    root = tmp_path / "data"
    write_dataset(root / "FashionMNIST", seed=3)
    runs_dir = train_tiny("fashion", root, tmp_path / "runs")
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(root))
    monkeypatch.setenv("KMNIST_RUNS_DIR", str(runs_dir))
    at = open_draw()
    no_errors(at)
    assert "filled silhouettes" in texts(at, "info")


def test_the_upload_limit_streamlit_shows_is_the_apps():
    import tomllib
    from kmnist_core import drawing
    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == drawing.MAX_UPLOAD_BYTES // 2**20


def test_uploads_go_through_the_same_preprocessing(env):
    at = to_upload(open_draw())
    no_errors(at)
    assert "Upload a picture" in texts(at, "info")
    paper = np.full((400, 300), 220, dtype=np.uint8)       # dark ink on light paper, like a photo
    paper[60:340, 130:170] = 30
    at.file_uploader(key="draw_upload").set_value(("photo.jpg", png(paper, format="JPEG"), "image/jpeg")).run()
    no_errors(at)
    assert "Prediction" in texts(at, "markdown") and len(at.get("plotly_chart")) == 1
    at.file_uploader(key="draw_upload").set_value(("blank.png", png(np.full((100, 100), 255, np.uint8)),
                                                   "image/png")).run()
    no_errors(at)
    assert "No character found" in texts(at, "info") and not at.get("plotly_chart")


def animated_gif() -> bytes:
    frames = [Image.new("L", (30, 30), c) for c in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


BAD_UPLOADS = {
    "not-an-image": ("notes.png", lambda: b"%PDF-1.4 definitely not a picture", "not an image"),
    "truncated": ("cut.png", lambda: png(np.random.default_rng(0).integers(0, 255, (60, 60), np.uint8))[:1500],
                  "cut short"),
    "too-many-pixels": ("huge.png", lambda: png(np.zeros((7000, 8000), np.uint8)), "limit is 50 megapixels"),
    "animated": ("moving.gif", animated_gif, "Animated"),
    "over-10-MB": ("big.bmp", lambda: b"BM" + bytes(11 * 2**20), "limit is 10 MB"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_show_the_problem_not_a_traceback(env, case):
    name, content, message = BAD_UPLOADS[case]
    at = to_upload(open_draw())
    at.file_uploader(key="draw_upload").set_value((name, content(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert message in texts(at, "error") and not at.info
    assert not at.get("plotly_chart") and "Prediction" not in texts(at, "markdown")


def flagged_square(span: tuple[int, int]) -> np.ndarray:
    """A filled square (none of the synthetic classes: the tiny models flag it) from span[0] to span[1] px."""
    square = np.zeros((280, 280, 4), np.uint8)
    square[..., 3] = 255
    square[span[0]:span[1], span[0]:span[1], :3] = 255
    return square


def test_a_flagged_drawing_shows_its_closest_class_and_advises_only_what_fits(env):
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(flagged_square((30, 250)))
    at.run()
    no_errors(at)
    assert "Not one of my classes?" in texts(at, "markdown")
    captions = " | ".join(c for image in at.get("image") for c in image.captions)
    assert "looks like these" in captions and "MNIST" in captions
    assert "larger" not in texts(at, "caption")                     # a big, bold drawing: no such advice
    # The same square 60 px wide: framed, the model sees the same image, flagged again, but now small.
    at.session_state[CANVAS_KEY] = canvas_value(flagged_square((120, 180)))
    at.run()
    no_errors(at)
    assert "Not one of my classes?" in texts(at, "markdown") and "drawn small" in texts(at, "caption")


def test_how_to_write_these_shows_every_class_with_three_examples(env):
    at = open_draw()
    no_errors(at)
    panel = next(e for e in at.expander if e.label == "How to write these")
    strips = panel.get("image")
    assert len(strips) == 10 and all(s.proto.imgs[0].url for s in strips)


def test_look_inside_shows_every_layer_only_when_asked(env):
    at = open_draw()
    at.session_state[CANVAS_KEY] = canvas_value(class_drawing())
    at.run()
    assert "Layer 1" not in texts(at, "markdown") and len(at.get("plotly_chart")) == 1
    at.toggle(key="draw_look_inside").set_value(True).run()
    no_errors(at)
    markdown = texts(at, "markdown")
    assert "**Layer 1** · Linear 784→64 · ReLU" in markdown and "**Layer 2**" in markdown   # mlp_small: two hidden layers
    assert "64 units" in texts(at, "caption") and "Pushes towards" in texts(at, "caption")
    assert len(at.get("plotly_chart")) == 3                                 # probabilities, layers' push, units' push
