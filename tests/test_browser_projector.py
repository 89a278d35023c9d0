"""Projector mode (issue 19, item 7) in a real browser at a projector's 1280x720: with
`?projector=1` the Draw page shows the canvas, the answer, every class's probability and the
saliency on one screen, the sidebar hidden; the Train page shows a job's progress and curves
above the fold. Served by `streamlit run`, driven through Debian's Chromium, as test_browser.py."""

from __future__ import annotations

import re

import pytest

from conftest import ARTIFACTS, browser_page, serving, skip_without_browser, write_dataset

expect = skip_without_browser().expect

from test_browser import CANVAS, draw, open_app, plotted_points  # noqa: E402

SCREEN = {"width": 1280, "height": 720}
LOADED = 120_000  # ms: a page's first draw on a busy machine


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A synthetic MNIST and one small LeNet trained on it."""
    from kmnist_core import training
    from kmnist_core.config import TrainConfig

    data_root = tmp_path_factory.mktemp("projector_data")
    runs_dir = tmp_path_factory.mktemp("projector_runs")
    write_dataset(data_root / "MNIST", n_train=2000, n_test=500)
    training.train(TrainConfig(dataset="mnist", arch="lenet", epochs=2, data_root=str(data_root), device="cpu"),
                   runs_dir=runs_dir)
    with serving(data_root, runs_dir, "streamlit-projector.log") as url:
        yield url


@pytest.fixture
def page(browser):
    with browser_page(browser, SCREEN, timeout_ms=60_000) as page:
        yield page


def on_screen(locator) -> dict:
    """The element's box, asserted to lie wholly inside the 1280x720 viewport."""
    box = locator.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0, locator
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= SCREEN["width"] and box["y"] + box["height"] <= SCREEN["height"], box
    return box


def not_scrolled(page) -> None:
    assert page.evaluate("() => window.scrollY + document.querySelector(\"[data-testid='stMain']\").scrollTop") == 0


def test_the_draw_page_fits_one_projector_screen(app_url, page):
    open_app(page, app_url)
    page.goto(app_url + "/draw?projector=1")
    canvas = page.locator(CANVAS)
    expect(canvas).to_be_visible(timeout=LOADED)
    expect(page.get_by_test_id("stSidebar")).to_be_hidden()
    draw(page, canvas, [(0.25, 0.2), (0.75, 0.2), (0.6, 0.45), (0.5, 0.65), (0.42, 0.85)])  # a 7

    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=LOADED)
    chart = page.locator(".js-plotly-plot")
    expect(chart).to_have_count(1, timeout=LOADED)
    saliency = page.get_by_test_id("stColumn").filter(has_text="Which strokes drove the decision").locator("img")
    expect(saliency).to_be_visible(timeout=LOADED)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .bars path').length >= 10")
    assert plotted_points(page) == 10                                       # every class's probability
    page.screenshot(path=ARTIFACTS / "projector-draw-1280x720.png")
    not_scrolled(page)
    on_screen(canvas)
    on_screen(page.locator(".draw-answer"))
    on_screen(chart)
    on_screen(saliency)
    seen = page.get_by_test_id("stColumn").filter(has_text="What the model sees").locator("img").first
    on_screen(seen)                                                         # the 28x28 input
    answer_size = page.locator(".draw-answer").evaluate(
        "e => Math.max(...[e, ...e.querySelectorAll('*')].map(x => parseFloat(getComputedStyle(x).fontSize)))")
    assert answer_size >= 32                                    # the answer in twice the page's usual type
    label_size = page.get_by_text("Prediction", exact=True).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert label_size >= 19                                     # and the text a fifth larger than usual (16 px)

    page.get_by_text("Projector mode").click()                              # and back: the sidebar returns
    expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=LOADED)
    expect(page).not_to_have_url(re.compile(r"projector=1"))


def test_the_train_page_shows_progress_and_curves_above_the_fold(app_url, page):
    open_app(page, app_url)
    page.goto(app_url + "/train?projector=1")
    start = page.get_by_role("button", name="Start training")
    expect(start).to_be_visible(timeout=LOADED)
    expect(page.get_by_test_id("stSidebar")).to_be_hidden()
    for label, option in (("Dataset", r"^MNIST$"), ("Architecture", r"^lenet\b")):
        page.get_by_label(label, exact=True).click()
        page.get_by_role("option").filter(has_text=re.compile(option)).click()
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("200")                                   # runs on while the test looks, then is stopped
    epochs.press("Enter")
    expect(epochs).to_have_value("200", timeout=LOADED)
    page.wait_for_timeout(500)   # the number input's value reaches the server before the click
    start.click()
    progress = page.get_by_test_id("stProgress")
    curves = page.locator(".js-plotly-plot")
    expect(curves).to_have_count(1, timeout=LOADED)       # the live curves, drawn once the first steps are in
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    page.screenshot(path=ARTIFACTS / "projector-train-1280x720.png")
    not_scrolled(page)
    assert on_screen(progress)["y"] < on_screen(curves)["y"] < start.bounding_box()["y"]   # the form comes after
    stop.click()
    # .first: while the page reruns on the job's end, the old view and the new one can both be drawn
    expect(page.get_by_text(re.compile(r"The run was stopped")).first).to_be_visible(timeout=LOADED)
