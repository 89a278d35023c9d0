"""The class gallery's pages in Streamlit's AppTest: "Share with the class" on Draw (the canvas's
value set as the component sends it) and the Class page's live wall, scores, export and the
teacher's tools. tests/test_browser_projector.py shows both in a real browser."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import synthetic_images
from kmnist_core import data, gallery
from test_pages_draw import CANVAS_KEY, canvas_value, no_errors, open_draw, train_tiny

HOSTILE = "![x](http://evil.example/p.png) **URGENT** <img src=x>"


@pytest.fixture(scope="module")
def model_runs(data_root, tmp_path_factory):
    return train_tiny("mnist", data_root, tmp_path_factory.mktemp("gallery_runs"))


@pytest.fixture
def env(app_env, model_runs, runs_dir):
    """The app's test environment (conftest.app_env) with the module's model: an empty gallery."""
    import shutil
    shutil.copytree(model_runs, runs_dir)
    return runs_dir


def synthetic_drawing(seed: int) -> tuple[np.ndarray, int]:
    """One of the synthetic dataset's images on a 280 px canvas, and its class."""
    images, labels = synthetic_images(1, seed=seed)
    image = np.zeros((280, 280, 4), dtype=np.uint8)
    image[..., 3] = 255
    image[..., :3] = np.kron(images[0], np.ones((10, 10), np.uint8))[..., None]
    return image, int(labels[0])


def wall_html(at) -> str:
    return "\n".join(str(element.proto.body) for element in at.get("html"))


def test_sharing_three_drawings_shows_them_on_the_class_page(env):
    at = open_draw()
    meant = []
    for seed in (21, 22, 23):
        image, label = synthetic_drawing(seed)
        at.session_state[CANVAS_KEY] = canvas_value(image)
        at.run()
        no_errors(at)
        assert at.selectbox(key="share_meant").value is None and at.button(key="share_send").disabled
        at.selectbox(key="share_meant").set_value(label).run()
        at.button(key="share_send").click().run()
        no_errors(at)
        assert "Shared with the class" in "\n".join(c.value for c in at.caption)
        meant.append(label)
    shared = gallery.list_shared(env)
    assert [d.label for d in shared] == meant[::-1]          # newest first, each with the class its student meant
    assert all(d.run_id and d.class_names == data.MNIST_CLASSES for d in shared)

    at.switch_page("pages/class_gallery.py").run()
    no_errors(at)
    wall = wall_html(at)
    assert wall.count("class='gallery-tile'") == 3
    assert sum("data-correct='false'" in tile for tile in wall.split("<figure")) == sum(not d.correct for d in shared)
    scores = at.dataframe[0].value
    assert int(scores["drawings"].sum()) == 3 and int(scores["read right"].sum()) == sum(d.correct for d in shared)


def test_the_class_page_shows_names_as_text_exports_and_lets_the_teacher_clear(env):
    images, labels = synthetic_images(12, seed=4)
    for image, label in zip(images, labels):
        gallery.share(image, owner=HOSTILE, label=int(label), answer=int(label), class_names=data.MNIST_CLASSES,
                      dataset="MNIST", run_id="r", runs_dir=env)
    at = open_draw()
    at.switch_page("pages/class_gallery.py").run()
    no_errors(at)
    wall = wall_html(at)
    assert "&lt;img src=x&gt;" in wall and "<img src=x>" not in wall      # escaped: shown, never fetched
    assert wall.count("class='gallery-tile'") == 12

    at.button(key="class_export_button").click().run()
    no_errors(at)
    folder = at.code[0].value
    assert re.search(r"class-drawings-12-[0-9a-f]{10}$", folder)
    assert len(data.load_dataset(folder, download=False).test_labels) >= 1

    at.selectbox(key="gallery_remove_pick").set_value(gallery.list_shared(env)[0].id).run()
    at.button(key="gallery_remove").click().run()
    no_errors(at)
    assert len(gallery.list_shared(env)) == 11
