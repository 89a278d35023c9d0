"""The Draw page teaches, in a real browser: a drawing flagged "not one of my classes" shows
real examples of its closest class, and "Look inside" shows every layer of a convolutional
and of an MLP model for the drawing on the canvas."""

from __future__ import annotations

import re

import pytest

from conftest import ARTIFACTS, browser_page, serving, skip_without_browser, until
from test_browser import CANVAS, draw, no_error_boxes, open_draw

expect = skip_without_browser().expect

VIEWPORT = {"width": 1280, "height": 1400}   # a projector's width, tall enough to see the panels below


@pytest.fixture(scope="module")
def app_url(data_root, tmp_path_factory):
    """Two tiny Kuzushiji-MNIST models of the synthetic data, a LeNet and an MLP, served."""
    from kmnist_core import training
    from kmnist_core.config import TrainConfig
    runs_dir = tmp_path_factory.mktemp("teaching_runs")
    for arch in ("mlp_small", "lenet"):
        training.train(TrainConfig(dataset="kmnist", arch=arch, epochs=1, data_root=str(data_root), device="cpu"),
                       runs_dir=runs_dir)
    with serving(data_root, runs_dir, "streamlit-teaching.log") as url:
        yield url


@pytest.fixture
def page(browser):
    with browser_page(browser, VIEWPORT) as page:
        yield page


def choose_model(page, arch: str) -> None:
    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option").filter(has_text=re.compile(rf"· {arch} ·")).click()
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile(rf"· {arch} ·"))


def scribble_a_blot(page, canvas) -> None:
    """A big filled blot, zigzagged with the widest pen: none of the synthetic classes."""
    page.get_by_test_id("stSlider").get_by_role("slider").focus()
    page.keyboard.press("End")                                       # pen 40
    points = [(0.15 + 0.7 * (i % 2), 0.15 + 0.05 * i) for i in range(15)]
    draw(page, canvas, points)


def test_a_flagged_drawing_shows_its_closest_class_in_the_training_set(app_url, page):
    canvas = open_draw(page, app_url)
    scribble_a_blot(page, canvas)
    expect(page.get_by_text("Not one of my classes?")).to_be_visible(timeout=120_000)
    strip = page.get_by_test_id("stImage").filter(has_text=re.compile(r"^Kuzushiji-MNIST's .+ looks like these"))
    expect(strip).to_be_visible()
    expect(strip.locator("img")).to_have_js_property("complete", True)
    size = strip.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 4 * 28 and size[1] > 2 * 28, size                             # eight examples, two rows of four
    expect(page.get_by_text("larger")).to_have_count(0)                            # big and bold: no such advice
    panel = page.get_by_test_id("stExpander").get_by_text("How to write these")
    shown = page.get_by_text("three of its cursive forms")
    until(lambda: None if shown.is_visible() else panel.click(), lambda ms: expect(shown).to_be_visible(timeout=ms))
    no_error_boxes(page)
    page.screenshot(path=ARTIFACTS / "draw-flagged.png", full_page=True)
    assert not page.js_errors, page.js_errors


@pytest.mark.parametrize("arch, first_layer, kind", [
    ("lenet", "Conv2d 1→6 5x5 · MaxPool2d · ReLU", "6 feature maps of 12x12"),
    ("mlp_small", "Linear 784→64 · ReLU", "64 units"),
])
def test_look_inside_shows_each_layer_for_the_drawing(app_url, page, arch, first_layer, kind):
    canvas = open_draw(page, app_url)
    choose_model(page, arch)
    draw(page, page.locator(CANVAS), [(0.3, 0.15), (0.3, 0.85), (0.75, 0.85)])
    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=120_000)
    page.get_by_text("Look inside the model").click()
    expect(page.get_by_text(f"Layer 1 · {first_layer}")).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(f"^{kind}")).first).to_be_visible()
    expect(page.get_by_text("Which classes each layer pushes towards")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(3)          # the probabilities and the two pushes
    # and it follows the pen: another stroke changes what the first layer shows
    first = page.get_by_test_id("stHorizontalBlock").filter(has_text="Layer 1 ·").get_by_test_id("stImage")
    first = first.locator("img")
    before = first.get_attribute("src")
    draw(page, canvas, [(0.3, 0.15), (0.8, 0.15)])
    expect(first).not_to_have_attribute("src", before, timeout=120_000)
    no_error_boxes(page)
    page.screenshot(path=ARTIFACTS / f"draw-inside-{arch}.png", full_page=True)
    assert not page.js_errors, page.js_errors
