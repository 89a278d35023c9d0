"""A full room on one machine: the app served with a class key, N student browser contexts
(one headless Chromium on this same machine) signed in and idle on the Draw page, then:
- the trainer's images/s: one job (lenet, 1 epoch of MNIST by default) started by the
  teacher from the Train page, read from the finished run's record, against N = 0;
- the Draw answer latency: one more student draws, timed in the page from mouse-up to the
  answer shown (benchmarks/draw_answer_latency.py's instrument), p50 and p95;
- the server's resident memory (its VmRSS) with the N pages open.

    python -m benchmarks.classroom [--students 0,1,10,30] [--rounds 10] [--arch lenet --epochs 1]
    python -m benchmarks --sections classroom

Target (issue 19): the trainer less than 10% slower with 30 idle student pages open than with none.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.app_browser import REPO, chromium, serve_app
from benchmarks.draw_answer_latency import CANVAS, INSTRUMENT, STROKES

KEY = "benchmark-class-key"
VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT_MS = 180_000


def server_rss_mb(port: str) -> float | None:
    """VmRSS of the `streamlit run` process serving `port` (found by its command line)."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            if b"streamlit" in b" ".join(command) and port.encode() in command:
                status = (proc / "status").read_text()
                return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        except (OSError, AttributeError):
            continue
    return None


def signed_in_page(browser, url: str, name: str, teacher: bool = False):
    """A fresh context whose cookies already say who it is (as after a first sign-in)."""
    from kmnist_core import access
    context = browser.new_context(viewport=VIEWPORT)
    host = url.split("//")[1].split(":")[0]
    cookies = [{"name": "kmnist_name", "value": quote(name), "domain": host, "path": "/"}]
    if teacher:
        cookies.append({"name": "kmnist_teacher", "value": access.teacher_token(KEY, name), "domain": host, "path": "/"})
    context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def open_students(browser, url: str, count: int) -> list:
    from playwright.sync_api import expect
    pages = []
    for i in range(count):
        page = signed_in_page(browser, url, f"Student {i + 1}")
        page.goto(f"{url}/draw")
        pages.append(page)
    for page in pages:
        expect(page.locator(CANVAS)).to_be_visible(timeout=TIMEOUT_MS)
    return pages


def trainer_images_per_second(browser, url: str, runs_dir: Path, arch: str, epochs: int) -> float:
    """Start one job from the teacher's Train page, close the page, and read the finished run's speed."""
    from playwright.sync_api import expect
    before = {p.name for p in runs_dir.iterdir()}
    page = signed_in_page(browser, url, "Teacher", teacher=True)
    page.goto(f"{url}/train")
    for label, option in (("Dataset", r"^MNIST$"), ("Architecture", rf"^{arch}\b")):
        page.get_by_label(label, exact=True).click()
        page.get_by_role("option").filter(has_text=re.compile(option)).click()
    epochs_box = page.get_by_label("Epochs", exact=True)
    epochs_box.fill(str(epochs))
    epochs_box.press("Enter")
    expect(epochs_box).to_have_value(str(epochs))
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_label("Job", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    page.context.close()  # the job trains on in the server; only the students' pages stay open
    while True:
        for folder in set(p.name for p in runs_dir.iterdir()) - before:
            try:
                record = json.loads((runs_dir / folder / "run.json").read_text())
            except (OSError, ValueError):
                continue
            if record.get("status") == "finished":
                return record["timings"]["images_per_second"]
            if record.get("status") in ("failed", "stopped"):
                raise RuntimeError(f"the benchmark's job ended {record['status']}: {record.get('reason')}")
        time.sleep(1)


def draw_latencies(browser, url: str, rounds: int) -> list[float]:
    from playwright.sync_api import expect
    page = signed_in_page(browser, url, "Drawing student")
    page.goto(f"{url}/draw")
    canvas = page.locator(CANVAS)
    expect(canvas).to_be_visible(timeout=TIMEOUT_MS)
    page.evaluate(INSTRUMENT)
    for i in range(rounds + 2):  # two warm-up rounds
        if i:
            page.get_by_role("button", name="Clear").click()
            expect(page.locator(".draw-answer")).to_have_count(0, timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)
        box = canvas.bounding_box()
        points = STROKES["seven" if i % 2 else "one"]
        page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()
        expect(page.locator(".draw-answer")).to_have_count(1, timeout=TIMEOUT_MS)
    latencies = page.evaluate("() => window.drawLatencies")[2:]
    page.context.close()
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))]


def measure(counts: list[int], rounds: int, arch: str, epochs: int, data_root: str) -> list[dict]:
    runs_dir = Path(tempfile.mkdtemp())
    for shipped in (REPO / "checkpoints").glob("shipped-*"):
        shutil.copytree(shipped, runs_dir / shipped.name)
    rows = []
    env = {"KMNIST_RUNS_DIR": str(runs_dir), "KMNIST_DATA_ROOT": data_root, "KMNIST_CLASS_KEY": KEY}
    try:
        with serve_app(env) as url, chromium() as browser:
            port = url.rsplit(":", 1)[1]
            for count in counts:
                students = open_students(browser, url, count)
                speed = trainer_images_per_second(browser, url, runs_dir, arch, epochs)
                latencies = draw_latencies(browser, url, rounds)
                rows.append({"students": count, "images_per_second": speed, "rss_mb": server_rss_mb(port),
                             "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95)})
                print(format_row(rows[-1], rows[0]["images_per_second"]), flush=True)
                for page in students:
                    page.context.close()
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    return rows


def format_row(row: dict, baseline: float) -> str:
    change = row["images_per_second"] / baseline - 1
    rss = f"{row['rss_mb']:.0f} MB" if row["rss_mb"] is not None else "?"
    return (f"classroom: {row['students']:>2} idle student pages: trainer {row['images_per_second']:,.0f} images/s "
            f"({change:+.1%} vs the first row), Draw answer p50 {row['p50']:.0f} ms / p95 {row['p95']:.0f} ms, "
            f"server RSS {rss}")


def main(argv: list[str] | None = None) -> int:
    from kmnist_core.data import default_data_root
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="0,1,10,30", help="comma-separated counts of idle student pages")
    parser.add_argument("--rounds", type=int, default=10, help="drawings timed per count")
    parser.add_argument("--arch", default="lenet")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    data_root = str(default_data_root())
    counts = [int(n) for n in args.students.split(",")]
    print(f"classroom: {args.arch}, {args.epochs} epoch(s) of MNIST per job; the server, the trainer and one "
          "headless Chromium (all the student contexts) on this machine")
    measure(counts, args.rounds, args.arch, args.epochs, data_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
