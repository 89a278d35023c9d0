"""End to end in a real browser: the app served by `streamlit run`, driven by Playwright
through Debian's Chromium. AppTest cannot draw on the canvas component or watch a
fragment refresh itself; this does both.

Screenshots and the server's log go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import ARTIFACTS, browser_page, serving, skip_without_browser, write_dataset

expect = skip_without_browser().expect

VIEWPORT = {"width": 1400, "height": 1600}   # tall: Streamlit scrolls inside the page, full_page cannot
TRAIN_IMAGES = 10_000      # synthetic MNIST: LeNet trains at 15-20k images/s on 2 idle cores
TRAIN_EPOCHS = 20  # about 15 s of training: long enough to see the 5-second chart refresh twice
TRAINING_DEADLINE = 900    # seconds: a generous limit on a busy machine; the test waits on the job's state


@pytest.fixture(scope="module")
def app_runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser_runs")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, app_runs_dir):
    """A data root with a synthetic MNIST, a runs folder with one small LeNet trained on it,
    and `streamlit run app.py` serving both on a free port."""
    from kmnist_core import training
    from kmnist_core.config import TrainConfig

    data_root = tmp_path_factory.mktemp("browser_data")
    # Big enough that a training job on the Train page lasts several of its one-second refreshes.
    write_dataset(data_root / "MNIST", n_train=TRAIN_IMAGES, n_test=1000)
    training.train(TrainConfig(dataset="mnist", arch="lenet", epochs=2, data_root=str(data_root), device="cpu"),
                   runs_dir=app_runs_dir)
    with serving(data_root, app_runs_dir, "streamlit-server.log") as url:
        yield url


@pytest.fixture
def page(browser):
    with browser_page(browser, VIEWPORT) as page:
        yield page


def no_error_boxes(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)


def open_app(page, url: str) -> None:
    """Open Home first: see test_a_deep_link_opens_inside_the_apps_navigation."""
    page.goto(url + "/")
    expect(page.get_by_role("heading", name="KMNIST Lab")).to_be_visible(timeout=60_000)


def draw(page, canvas, points: list[tuple[float, float]]) -> None:
    """One stroke through `points`, given as fractions of the canvas's width and height, pressed the
    instant the pointer arrives (no hover first), as a hurried hand does."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def plotted_points(page) -> int:
    """How many points the first Plotly chart on the page holds, 0 without one."""
    return page.evaluate("""() => {
        const plot = document.querySelector('.js-plotly-plot');
        return plot && plot.data ? plot.data.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0) : 0;
    }""")


CANVAS = "canvas[aria-label^='Drawing area']"   # the Draw page's canvas component (pages/canvas)


def test_a_deep_link_opens_inside_the_apps_navigation(app_url, page):
    # Must run first on the fresh server, before any test opens Home.
    page.goto(app_url + "/draw")
    expect(page.locator(CANVAS)).to_be_visible(timeout=60_000)
    page.screenshot(path=ARTIFACTS / "draw-deep-link.png")
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_text("Home", exact=True)).to_be_visible(timeout=120_000)
    expect(nav.get_by_test_id("stSidebarNavLink")).to_have_count(9)  # app.py's pages, no helper module
    # and the page works from there: a stroke gets a prediction
    draw(page, page.locator(CANVAS), [(0.5, 0.15), (0.5, 0.85)])
    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=120_000)


def test_draw_a_stroke_and_see_the_prediction(app_url, page):
    open_app(page, app_url)
    page.goto(app_url + "/draw")
    canvas = page.locator(CANVAS)
    expect(canvas).to_be_visible(timeout=60_000)
    expect(page.get_by_text("a blank canvas or a speck of ink gets no guess")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(0)

    draw(page, canvas, [(0.25, 0.2), (0.75, 0.2), (0.6, 0.45), (0.5, 0.65), (0.42, 0.85)])  # a 7

    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=120_000)
    # the answer: a class and how sure, or (this model knows only synthetic patterns) "not one of my classes"
    expect(page.get_by_text(re.compile(r"^(\d+% sure|Closest: .*)$"))).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(1)
    assert plotted_points(page) == 10                      # one bar per class
    expect(page.get_by_text("Which strokes drove the decision")).to_be_visible()
    no_error_boxes(page)
    page.wait_for_timeout(500)                             # let the chart finish drawing
    page.screenshot(path=ARTIFACTS / "draw.png", full_page=True)

    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("a blank canvas or a speck of ink gets no guess")).to_be_visible(timeout=120_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    assert not page.js_errors, page.js_errors


def png_bytes(array) -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_a_photo_or_a_broken_file(app_url, page):
    import numpy as np

    open_app(page, app_url)
    page.goto(app_url + "/draw")
    page.get_by_text("Upload a photo").click()
    upload = page.locator("input[type=file]")
    expect(upload).to_have_count(1, timeout=120_000)
    expect(page.get_by_text(re.compile(r"10\s?MB per file"))).to_be_visible()   # the app's limit, not Streamlit's 200

    upload.set_input_files(files=[{"name": "scan.png", "mimeType": "image/png", "buffer": b"%PDF-1.4 not an image"}])
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("not an image", timeout=120_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.locator(".js-plotly-plot")).to_have_count(0)

    paper = np.full((400, 300), 225, dtype=np.uint8)      # a dark "1" on light paper
    paper[60:340, 135:165] = 25
    upload.set_input_files(files=[{"name": "one.png", "mimeType": "image/png", "buffer": png_bytes(paper)}])
    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=120_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(1)
    no_error_boxes(page)
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "draw-upload.png", full_page=True)
    assert not page.js_errors, page.js_errors


def new_run_ended(runs_dir: Path, before: set[str]) -> bool:
    """Whether the run the page started (the job's record on disk) is no longer running."""
    from kmnist_core import runs
    return any(run.id not in before and run.record.status != "running" for run in runs.scan_runs(runs_dir)[0])


def test_train_a_tiny_model_and_watch_it_live(app_url, app_runs_dir, page):
    from kmnist_core import runs
    before = {run.id for run in runs.scan_runs(app_runs_dir)[0]}
    open_app(page, app_url)
    page.goto(app_url + "/train")
    start = page.get_by_role("button", name="Start training")
    expect(start).to_be_visible(timeout=60_000)

    page.get_by_label("Dataset", exact=True).click()
    page.get_by_role("option").filter(has_text=re.compile(r"^MNIST$")).click()
    expect(page.get_by_label("Dataset", exact=True)).to_have_value("MNIST")
    page.get_by_label("Architecture", exact=True).click()
    page.get_by_role("option").filter(has_text=re.compile(r"^lenet\b")).click()
    expect(page.get_by_label("Architecture", exact=True)).to_have_value(re.compile(r"^lenet\b"))
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill(str(TRAIN_EPOCHS))
    epochs.press("Enter")
    expect(epochs).to_have_value(str(TRAIN_EPOCHS))
    page.wait_for_timeout(500)                             # the rerun that stores the new values
    start.click()

    # Sample the chart and the progress bar until the job ends, without reloading the page. The
    # job's state decides when that is (its record on disk), not a guess of how long it takes.
    finished = page.get_by_test_id("stMetricLabel").filter(has_text="Test accuracy")
    progress = page.get_by_test_id("stProgress")
    seen_points, seen_progress, screenshot_taken = [], [], False
    deadline = time.monotonic() + TRAINING_DEADLINE
    while not new_run_ended(app_runs_dir, before) and time.monotonic() < deadline:
        points = plotted_points(page)
        if points and (not seen_points or points != seen_points[-1]):
            seen_points.append(points)
        texts = progress.all_inner_texts()
        if texts and (not seen_progress or texts[0] != seen_progress[-1]):
            seen_progress.append(texts[0])
        if len(seen_points) >= 2 and not screenshot_taken:
            page.screenshot(path=ARTIFACTS / "train-running.png", full_page=True)
            screenshot_taken = True
        page.wait_for_timeout(200)
    assert new_run_ended(app_runs_dir, before), f"the job did not end within {TRAINING_DEADLINE} s"
    expect(finished).to_be_visible(timeout=60_000)  # the page's next refresh shows the outcome
    # The progress bar and the chart appeared while the job ran and refreshed themselves.
    assert len(seen_progress) >= 2, seen_progress
    assert len(seen_points) >= 2 and seen_points == sorted(seen_points), seen_points
    steps = [int(re.search(r"step (\d+)/", text).group(1)) for text in seen_progress]
    assert steps == sorted(steps), seen_progress
    # The run can end between two samples, so the last epoch is checked on the finished job's bar.
    expect(progress.first).to_contain_text(re.compile(rf"^epoch {TRAIN_EPOCHS}/{TRAIN_EPOCHS} · step (\d+)/\1 "))
    expect(page.locator(".js-plotly-plot")).to_have_count(1)
    no_error_boxes(page)
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "train.png", full_page=True)
    assert not page.js_errors, page.js_errors


# --- The Draw page's canvas: no lost ink, touch, and a layout that fits a projector -------

PEN = 20                  # the page's default pen width


def open_draw(page, url: str):
    open_app(page, url)
    page.goto(url + "/draw")
    canvas = page.locator(CANVAS)
    expect(canvas).to_be_visible(timeout=60_000)
    return canvas


def seen_source(page) -> str | None:
    """The address of the 28x28 image the page shows, None while it shows none."""
    figure = page.get_by_test_id("stImage").filter(has_text=re.compile("^28x28"))
    return figure.locator("img").get_attribute("src") if figure.count() else None


def seen_image(page, url: str, before: str | None = None):
    """The 28x28 image the page shows as what the model sees, as floats in [0, 1], once it is
    another than the one at address `before` (the image of the drawing before the last change)."""
    import base64
    import io

    import numpy as np
    from PIL import Image
    deadline = time.monotonic() + 120   # a generous bound on a busy machine: the loop waits on the page's state
    while (src := seen_source(page)) in (None, before):
        assert time.monotonic() < deadline, "the page did not show a new 28x28 image"
        page.wait_for_timeout(100)
    if src.startswith("data:"):
        content = base64.b64decode(src.split(",", 1)[1])
    else:
        content = page.request.get(src if src.startswith("http") else url + src).body()
    shown = np.asarray(Image.open(io.BytesIO(content)).convert("L"), dtype=np.float32)
    factor = shown.shape[0] // 28
    return shown.reshape(28, factor, 28, factor).mean((1, 3)) / 255


def expected_image(points: list[tuple[float, float]]):
    """What prepare_drawing makes of the same stroke drawn in Python, as the canvas draws it
    (a round pen PEN px wide on a black 280 px square)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from kmnist_core import drawing, framing
    canvas = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(canvas)
    at = [(fx * 280, fy * 280) for fx, fy in points]
    pen.line([xy for point in at for xy in point], fill=255, width=PEN)
    for x, y in at:
        pen.ellipse((x - PEN / 2, y - PEN / 2, x + PEN / 2, y + PEN / 2), fill=255)
    return drawing.prepare_drawing(np.asarray(canvas), framing.MNIST_FRAMING, pen_width=PEN).numpy()


def correlation(a, b) -> float:
    """How alike two 28x28 images are, after a blur: a stroke placed half a pixel apart (the
    browser's and Pillow's pens differ by that) is the same stroke; a lost piece is not."""
    import numpy as np
    import torch
    blur = lambda x: torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    a, b = (blur(blur(torch.as_tensor(x, dtype=torch.float32)[None, None])).numpy().ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


def clear(page) -> None:
    """Clear the canvas and wait until the page has drawn its blank state: the old 28x28 image gone
    too (while the page reruns, its elements of the last drawing can still stand beside the new ones)."""
    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("a blank canvas or a speck of ink gets no guess")).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stImage").filter(has_text=re.compile("^28x28"))).to_have_count(0, timeout=120_000)


# A stroke from each region of the canvas towards the middle and on: the corners, the edges'
# middles, the centre, and the band at the top right where streamlit-drawable-canvas's invisible
# toolbar swallowed strokes started at once.
STARTS = [(0.05, 0.05), (0.5, 0.04), (0.93, 0.04), (0.75, 0.06), (0.05, 0.5), (0.5, 0.5), (0.95, 0.5),
          (0.05, 0.95), (0.5, 0.96), (0.95, 0.95)]


def stroke_from(start: tuple[float, float]) -> list[tuple[float, float]]:
    x, y = start
    middle = (0.5 + (x - 0.5) * 0.3, 0.5 + (y - 0.5) * 0.3)
    return [start, middle, (middle[0], min(0.95, middle[1] + 0.3)), (min(0.95, middle[0] + 0.25), min(0.95, middle[1] + 0.3))]


def test_strokes_started_anywhere_arrive_whole(app_url, page):
    canvas = open_draw(page, app_url)
    for i, start in enumerate(STARTS):
        if i:
            clear(page)
        points = stroke_from(start)
        draw(page, canvas, points)
        shown = seen_image(page, app_url)
        assert correlation(shown, expected_image(points)) > 0.9, f"the stroke from {start} did not arrive whole"
    # right after Clear, at once, at the bottom, where the old Clear button's tooltip opened over the canvas
    shown = seen_source(page)
    page.get_by_role("button", name="Clear").click()
    points = [(0.3, 0.97), (0.5, 0.6), (0.7, 0.97)]
    draw(page, canvas, points)
    assert correlation(seen_image(page, app_url, before=shown), expected_image(points)) > 0.9
    no_error_boxes(page)
    assert not page.js_errors, page.js_errors


def test_undo_and_redo_take_back_and_restore_a_stroke(app_url, page):
    canvas = open_draw(page, app_url)
    first, second = [(0.3, 0.15), (0.3, 0.85), (0.7, 0.85)], [(0.3, 0.15), (0.75, 0.15)]   # an L, then its lid
    draw(page, canvas, first)
    seen_image(page, app_url)
    shown = seen_source(page)
    draw(page, canvas, second)
    both = seen_image(page, app_url, before=shown)
    shown = seen_source(page)
    page.get_by_role("button", name="Undo").click()
    assert correlation(seen_image(page, app_url, before=shown), expected_image(first)) > 0.9
    shown = seen_source(page)
    page.get_by_role("button", name="Redo").click()
    assert correlation(seen_image(page, app_url, before=shown), both) > 0.95


def touch_stroke(page, canvas, points: list[tuple[float, float]]) -> None:
    """A finger's stroke, through Chromium's touch events (Playwright's touchscreen only taps)."""
    box = canvas.bounding_box()
    at = [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]} for fx, fy in points]
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at[0]]})
    for a, b in zip(at, at[1:]):
        for step in range(1, 7):
            point = {k: a[k] + (b[k] - a[k]) * step / 6 for k in ("x", "y")}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_a_finger_draws_too(app_url, browser):
    with browser_page(browser, {"width": 1024, "height": 768}, has_touch=True, is_mobile=False) as page:
        canvas = open_draw(page, app_url)
        box = canvas.bounding_box()
        page.touchscreen.tap(box["x"] + 0.9 * box["width"], box["y"] + 0.05 * box["height"])  # the top-right band
        expect(page.get_by_text("only a dot or a dash")).to_be_visible(timeout=120_000)       # the tap arrived
        clear(page)
        points = [(0.9, 0.05), (0.5, 0.3), (0.5, 0.9)]
        touch_stroke(page, canvas, points)
        assert correlation(seen_image(page, app_url), expected_image(points)) > 0.9
        assert page.evaluate("() => window.scrollY") == 0                                   # and the page did not scroll


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width, height", [(1280, 720), (1024, 768)])
def test_the_draw_page_fits_a_projector(app_url, browser, width, height, theme):
    with browser_page(browser, {"width": width, "height": height}, color_scheme=theme) as page:
        canvas = open_draw(page, app_url)
        inside = lambda box, outer: (box["x"] >= outer["x"] - 0.5 and box["y"] >= outer["y"] - 0.5 and
                                     box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5 and
                                     box["y"] + box["height"] <= outer["y"] + outer["height"] + 0.5)
        viewport = {"x": 0, "y": 0, "width": width, "height": height}
        column = page.get_by_test_id("stColumn").filter(has=canvas)
        box = canvas.bounding_box()
        assert box["width"] >= 250, box                                   # the whole canvas, barely shrunk
        assert inside(box, column.bounding_box()) and inside(box, viewport), (box, column.bounding_box())
        assert inside(page.get_by_role("button", name="Clear").bounding_box(), viewport)
        slider = page.get_by_test_id("stSlider").bounding_box()
        assert slider["y"] + slider["height"] <= box["y"]                  # the pen slider is not under the canvas
        # a border that shows on either theme's background
        outline = page.evaluate("""(c) => { const s = getComputedStyle(c); return [s.outlineStyle, s.outlineWidth, s.outlineColor]; }""",
                                canvas.element_handle())
        assert outline[0] == "solid" and float(outline[1].rstrip("px")) >= 1, outline

        draw(page, canvas, [(0.25, 0.2), (0.75, 0.2), (0.6, 0.45), (0.5, 0.65), (0.42, 0.85)])
        seen = page.get_by_test_id("stImage").filter(has_text=re.compile("^28x28"))
        expect(seen).to_be_visible(timeout=120_000)
        answer = page.locator(".draw-answer")
        expect(answer).to_be_visible()
        for element in (seen, answer):
            assert inside(element.bounding_box(), viewport), element.bounding_box()
        assert page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTop") == 0
        page.wait_for_timeout(500)
        page.screenshot(path=ARTIFACTS / f"draw-{width}x{height}-{theme}.png")
        no_error_boxes(page)
