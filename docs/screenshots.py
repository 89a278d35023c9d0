"""Take the README's screenshots in headless Chromium: python docs/screenshots.py

Starts `streamlit run app.py` on a copy of the shipped runs (so nothing is added to
checkpoints/), trains one quick run from the Train page to show the live view, and saves
one small PNG per page in docs/screenshots/. Needs the test requirements and Debian's
chromium, like the browser tests, and fonts for the icons and the kana
(apt-get install fonts-noto-color-emoji fonts-noto-cjk).
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.app_browser import app_page  # noqa: E402  (the browser tests' server-plus-browser set-up)


def save(page, path: Path) -> None:
    page.wait_for_timeout(800)  # let charts finish drawing
    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # about a third of the size
    print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} KB")


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()


def main() -> int:
    from kmnist_core.data import default_data_root
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(default_data_root()))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--classroom-only", action="store_true",
                        help="only the classroom's shots: projector.png and class.png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(tempfile.mkdtemp())
    for shipped in (REPO / "checkpoints").glob("shipped-*"):
        shutil.copytree(shipped, runs_dir / shipped.name)
    env = {"KMNIST_DATA_ROOT": args.data_root, "KMNIST_RUNS_DIR": str(runs_dir)}
    try:
        with app_page(env, viewport={"width": 1280, "height": 720}) as (page, url):  # a classroom projector
            page.goto(url)
            expect(page.get_by_role("heading", name="KMNIST Lab")).to_be_visible(timeout=60_000)
            if args.classroom_only:
                return classroom(page, url, args.out, args.data_root, runs_dir)
            save(page, args.out / "home.png")

            page.goto(f"{url}/train")
            choose(page, "Architecture", "lenet (")
            page.get_by_role("spinbutton", name="Epochs").fill("4")
            page.get_by_role("spinbutton", name="Epochs").press("Enter")
            page.wait_for_timeout(1000)
            page.get_by_role("button", name="Start training").click()
            expect(page.get_by_text("epoch 3/").first).to_be_visible(timeout=120_000)
            save(page, args.out / "train.png")
            expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=600_000)  # four epochs of Kuzushiji-MNIST, the default

            page.goto(f"{url}/evaluate")
            expect(page.get_by_text("Confusion matrix")).to_be_visible(timeout=60_000)
            page.get_by_text("Confusion matrix").scroll_into_view_if_needed()
            save(page, args.out / "evaluate.png")

            page.goto(f"{url}/draw")
            draw_tsu(page)
            save(page, args.out / "draw.png")
            page.get_by_text("Look inside the model").click()
            expect(page.get_by_text("Layer 1 ·")).to_be_visible(timeout=60_000)
            page.get_by_text("Look inside the model").evaluate("e => e.scrollIntoView({block: 'start'})")
            save(page, args.out / "draw-inside.png")

            page.goto(f"{url}/compare")
            expect(page.get_by_text("Compare runs")).to_be_visible(timeout=60_000)
            save(page, args.out / "compare.png")

            page.goto(f"{url}/sweep")
            expect(page.get_by_text("New sweep")).to_be_visible(timeout=60_000)
            save(page, args.out / "sweep.png")

            page.goto(f"{url}/dataset")
            expect(page.get_by_label("Dataset", exact=True).first).to_be_visible(timeout=60_000)
            choose(page, "Dataset", "Kuzushiji-MNIST")
            page.wait_for_timeout(3000)
            save(page, args.out / "data.png")

            page.goto(f"{url}/features")
            expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=120_000)
            save(page, args.out / "features.png")
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    return 0


def draw_tsu(page) -> None:
    """つ (tsu) on the Draw page's canvas, for its default model, the Kuzushiji-MNIST flagship."""
    canvas = page.locator("canvas[aria-label^='Drawing area']")
    expect(canvas).to_be_visible(timeout=60_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 0.15 * box["width"], box["y"] + 0.35 * box["height"])
    page.mouse.down()
    for x, y in [(0.35, 0.28), (0.6, 0.25), (0.8, 0.3), (0.85, 0.45), (0.75, 0.6), (0.55, 0.7), (0.4, 0.72)]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()
    expect(page.get_by_text("Prediction", exact=True)).to_be_visible(timeout=30_000)


def classroom(page, url: str, out: Path, data_root: str, runs_dir: Path) -> int:
    """Projector mode on the Draw page, then the Class page (projected) with a wall of shared
    drawings: the つ drawn here, shared through the page, and, standing in for a class's drawings,
    images of the Kuzushiji-MNIST test set shared through the engine with the flagship's real
    answers: the first 30, and the first 3 it misreads."""
    from kmnist_core import data, gallery, runs
    from kmnist_core.evaluation import predict_proba

    page.goto(f"{url}/draw?projector=1")
    draw_tsu(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .bars path').length >= 10")
    expect(page.get_by_test_id("stColumn").filter(has_text="Which strokes drove").locator("img")).to_be_visible()
    save(page, out / "projector.png")
    page.get_by_text("Share with the class").click()
    page.get_by_label("What did you mean to draw?").click()
    page.get_by_role("option", name="つ tsu").click()
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.get_by_text("Shared with the class.")).to_be_visible(timeout=30_000)

    flagship = runs.load_run("shipped-kmnist-resnet", runs_dir)
    test = data.load_dataset("kmnist", data_root, download=False)
    images, labels = test.test_images[:2000], test.test_labels[:2000]
    answers = predict_proba(runs.load_model(flagship), images, flagship.normalization).argmax(1)
    shown = [*range(30), *(answers != labels).nonzero().flatten()[:3].tolist()]
    for image, label, answer in zip(images[shown], labels[shown], answers[shown]):
        gallery.share(image.numpy(), owner="test-set sample", label=int(label), answer=int(answer),
                      class_names=flagship.class_names, dataset="Kuzushiji-MNIST", run_id=flagship.id,
                      runs_dir=runs_dir)
    page.goto(f"{url}/class?projector=1")
    expect(page.locator(".gallery-tile")).to_have_count(34, timeout=60_000)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    page.wait_for_timeout(2000)   # the table draws on a canvas of its own
    save(page, out / "class.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
