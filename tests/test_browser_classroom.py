"""Issue 12 in a real browser at a classroom projector's 1280x720: what AppTest cannot see
(text cut off, a frontend that resets a widget, a table's row selection, plotly's tick labels).
The app is served by `streamlit run` and driven through Debian's Chromium, as in test_browser.py."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ARTIFACTS, browser_page, serving, skip_without_browser, until, write_dataset

expect = skip_without_browser().expect

from test_browser import open_app  # noqa: E402

PROJECTOR = {"width": 1280, "height": 720}
LOADED = 120_000  # ms: a generous limit for a page's first draw on a busy machine (evaluating takes a while)


@pytest.fixture(scope="module")
def app_runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("classroom_runs")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, app_runs_dir):
    """A synthetic MNIST, one small LeNet trained on it and two copies of it to delete."""
    from kmnist_core import runs, training
    from kmnist_core.config import TrainConfig

    data_root = tmp_path_factory.mktemp("classroom_data")
    write_dataset(data_root / "MNIST", n_train=2000, n_test=500)
    trained = training.train(TrainConfig(dataset="mnist", arch="lenet", epochs=3, data_root=str(data_root),
                                         device="cpu"), runs_dir=app_runs_dir)
    for minutes, name in ((2, "delete-me-first"), (1, "delete-me-second")):  # listed first, newest first
        shutil.copytree(trained.path, app_runs_dir / name)
        run = runs.load_run(name, app_runs_dir)
        run.record.name = name
        run.record.created = (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()
        run.save()
    with serving(data_root, app_runs_dir, "streamlit-classroom.log") as url:
        yield url


@pytest.fixture
def page(browser):
    with browser_page(browser, PROJECTOR, timeout_ms=60_000) as page:
        yield page


def cut_off_labels(page) -> list[str]:
    """The page links of the main area whose label is cut short (Streamlit ends it with an ellipsis)."""
    return page.evaluate("""() => [...document.querySelectorAll(
            "[data-testid='stMain'] [data-testid='stPageLink-NavLink'] span:not([data-testid='stIconMaterial'])")]
        .filter(span => /[A-Za-z]/.test(span.textContent))   // the label, not the icon
        .filter(span => span.scrollWidth > span.clientWidth + 1)
        .map(span => span.textContent)""")


def test_home_links_are_whole_and_data_has_its_address(app_url, page):
    """Item 18: the "Where to go" links were cut off at 1280 px; /data silently opened Home."""
    open_app(page, app_url)
    expect(page.get_by_role("heading", name="Where to go")).to_be_visible(timeout=LOADED)
    links = page.locator("[data-testid='stMain'] [data-testid='stPageLink-NavLink']")
    expect(links.filter(has_text="Explore a dataset")).to_be_visible(timeout=LOADED)
    page.screenshot(path=ARTIFACTS / "home-1280x720.png")
    assert cut_off_labels(page) == []
    assert links.count() >= 7 + 2       # where to go, and where to start
    for address in ("/data", "/dataset"):    # the page's title, and its old address
        page.goto(app_url + address)
        expect(page.get_by_role("heading", name="Explore a dataset")).to_be_visible(timeout=LOADED)


def row_marker(page, table, row: int) -> tuple[float, float]:
    """Where to click to select a row of a st.dataframe (its row-marker column, left)."""
    box = table.bounding_box()
    return box["x"] + 12, box["y"] + 35 * (row + 1) + 17   # a 35 px header, then 35 px rows


def test_deleting_a_run_leaves_no_run_selected(app_url, page):
    """Item 17: after a delete, the next run was selected with its Delete… button ready."""
    open_app(page, app_url)
    page.goto(app_url + "/train")
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible(timeout=LOADED)
    table.scroll_into_view_if_needed()
    page.mouse.click(*row_marker(page, table, 0))      # the newest: delete-me-first
    expect(page.get_by_role("link", name=re.compile("Evaluate delete-me-first"))).to_be_visible(timeout=LOADED)
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("delete-me-first", timeout=LOADED)
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).to_have_count(0, timeout=LOADED)
    expect(page.get_by_text("Select a run to evaluate, rename or delete it.")).to_be_visible(timeout=LOADED)
    page.wait_for_timeout(1500)
    expect(page.get_by_role("button", name="Delete…")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Evaluate delete-me-second"))).to_have_count(0)


def test_loss_axis_ticks_read_as_numbers(app_url, page):
    """Item 12: the log-scale loss axis read "2, 1, 5, 2, 0.1, 5"."""
    open_app(page, app_url)
    page.goto(app_url + "/evaluate")
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=LOADED)
    chart.scroll_into_view_if_needed()
    ticks = chart.locator(".yaxislayer-above .ytick text")
    expect(ticks.first).to_be_visible(timeout=LOADED)
    labels = [(tick.bounding_box()["y"], tick.text_content()) for tick in ticks.all()]
    values = [float(text) for _, text in sorted(labels, reverse=True)]   # bottom to top
    assert len(values) >= 2 and values == sorted(values), labels


def choose(page, label: str, option: re.Pattern) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option").filter(has_text=option).click()


def test_the_job_picker_keeps_every_choice(app_url, page):
    """Item 6: choosing job-4 then job-6 still showed job-4 (every second choice was ignored)."""
    open_app(page, app_url)
    page.goto(app_url + "/train")
    start = page.get_by_role("button", name="Start training")
    expect(start).to_be_visible(timeout=LOADED)
    choose(page, "Dataset", re.compile(r"^MNIST$"))
    choose(page, "Architecture", re.compile(r"^lenet\b"))
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("500")                                  # the first runs on, the others wait in the queue
    epochs.press("Enter")
    expect(epochs).to_have_value("500", timeout=LOADED)
    picker = page.get_by_label("Job", exact=True)
    for number in (1, 2, 3):
        start.click()
        expect(picker).to_have_value(re.compile(rf"^job-{number}: "), timeout=LOADED)
    for number in (1, 2, 3, 1, 2):
        choose(page, "Job", re.compile(rf"^job-{number}: "))
        expect(picker).to_have_value(re.compile(rf"^job-{number}: "), timeout=LOADED)
        page.wait_for_timeout(2500)                      # the live view refreshes every second
        expect(picker).to_have_value(re.compile(rf"^job-{number}: "))
        expect(page.get_by_text(re.compile(rf"job-{number}\b.* — lenet on MNIST"))).to_be_visible(timeout=LOADED)
    page.screenshot(path=ARTIFACTS / "train-job-picker.png")
    for number in (3, 2, 1):                             # leave nothing training
        choose(page, "Job", re.compile(rf"^job-{number}: "))
        expect(picker).to_have_value(re.compile(rf"^job-{number}: "), timeout=LOADED)
        stop = page.get_by_role("button", name="Stop")
        until(lambda: stop.click() if stop.count() else None, lambda ms: expect(stop).to_have_count(0, timeout=ms))
