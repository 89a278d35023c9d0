"""Shared fixtures: small synthetic datasets written as real idx files, so every
test exercises the same loading path as the real data and none needs the network."""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from kmnist_core import data

REAL_DATASETS = data.default_data_root()   # the real datasets, found as the app finds them
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"   # the browser tests' screenshots and logs
IDX_NAMES = data.IDX_FILES


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def synthetic_images(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 10-class set: each class is a fixed random stroke pattern, drawn
    shifted by up to 2 px and with noise, on a black background."""
    templates = np.random.default_rng(1234).random((num_classes, 20, 20)) > 0.8
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = np.zeros((n, 28, 28), dtype=np.float32)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(2, 7, size=2)
        images[i, dy:dy + 20, dx:dx + 20] = templates[label] * rng.uniform(0.6, 1.0)
    images += rng.normal(0, 0.1, images.shape) * (images > 0)
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


def write_dataset(folder: Path, n_train: int = 1000, n_test: int = 300, seed: int = 0) -> Path:
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_images(n_train, seed)
    test_images, test_labels = synthetic_images(n_test, seed + 1)
    for name, array in zip(IDX_NAMES, (train_images, train_labels, test_images, test_labels)):
        write_idx(raw / name, array)
    return folder


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root where 'mnist' and 'kmnist' are synthetic sets in torchvision's layout."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root / "MNIST", seed=0)
    write_dataset(root / "KMNIST", seed=10)
    return root


@pytest.fixture(scope="session", autouse=True)
def no_shipped_models(tmp_path_factory):
    """Each test sees only the runs it makes: the install's shipped models, always listed beside
    the runs folder, are looked for in an empty folder instead (set for the whole session, so the
    app servers of the browser tests inherit it). Tests of the shipped models point
    KMNIST_SHIPPED_DIR back at them."""
    before = os.environ.get("KMNIST_SHIPPED_DIR")
    os.environ["KMNIST_SHIPPED_DIR"] = str(tmp_path_factory.mktemp("no-shipped-models"))
    yield
    if before is None:
        del os.environ["KMNIST_SHIPPED_DIR"]
    else:
        os.environ["KMNIST_SHIPPED_DIR"] = before


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def tiny_config(data_root):
    from kmnist_core.config import TrainConfig
    return TrainConfig(dataset="mnist", arch="mlp_small", epochs=2, batch_size=64, lr=3e-3,
                       data_root=str(data_root), device="cpu")


@pytest.fixture(scope="session")
def trained_once(data_root, tmp_path_factory):
    """The tiny config trained once per session; trained_run gives each test its own copy."""
    from kmnist_core import training
    from kmnist_core.config import TrainConfig
    config = TrainConfig(dataset="mnist", arch="mlp_small", epochs=2, batch_size=64, lr=3e-3,
                         data_root=str(data_root), device="cpu")
    return training.train(config, runs_dir=tmp_path_factory.mktemp("trained_once")).path


@pytest.fixture
def trained_run(trained_once, runs_dir):
    """A finished run of tiny_config in runs_dir, free to change or break."""
    import shutil
    from kmnist_core import runs
    shutil.copytree(trained_once, runs_dir / trained_once.name)
    return runs.load_run(trained_once.name, runs_dir)


def make_run(config=None, test_accuracy: float | None = None, folder: str = "made-up-run"):
    """A run in memory (its folder need not exist) with the given config and test accuracy."""
    from kmnist_core import runs
    from kmnist_core.config import TrainConfig
    record = runs.RunRecord(
        config=config or TrainConfig(), dataset=runs.DatasetRecord("mnist", "MNIST", [str(i) for i in range(10)]),
        normalization=data.Normalization(0.13, 0.31), model=runs.ModelRecord("resnet", 1),
        test=runs.TestResult(loss=0.5, accuracy=test_accuracy) if test_accuracy is not None else None,
        status="finished" if test_accuracy is not None else "stopped", created=runs.now_iso())
    return runs.Run(Path(folder), record)


needs_shared = pytest.mark.skipif(not (REAL_DATASETS / "MNIST").is_dir(),
                                  reason=f"no real datasets at {REAL_DATASETS} (KMNIST_DATA_ROOT, else ../shared/datasets)")


APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app_env(data_root, runs_dir, monkeypatch):
    """The app's environment for AppTest: synthetic data, an empty runs folder, fresh caches,
    and no job left running afterwards."""
    import streamlit as st
    import pages.helpers.navigation
    # AppTest puts Streamlit back in legacy pages/ mode before every run, where the deep-link
    # rerun of use_app_navigation would swallow each click; deep links are tested in the browser.
    monkeypatch.setattr(pages.helpers.navigation, "use_app_navigation", lambda: None)
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(data_root))
    monkeypatch.setenv("KMNIST_RUNS_DIR", str(runs_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    from pages.helpers.background_jobs import job_manager
    for job in job_manager().jobs():
        job_manager().stop(job.id)
        job_manager().wait(job, timeout=30)
    st.cache_resource.clear()


def open_page(page: str | None = None):
    """Run the app in AppTest (torch's import is slow: a generous timeout) on `page`."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(APP, default_timeout=120)
    if page:
        at.switch_page(page)
    return at.run()


@pytest.fixture
def offline_kmnist(tmp_path, monkeypatch) -> Path:
    """No Kuzushiji-MNIST here and its download refused at once: torchvision's mirror is a closed
    local port, the data root an empty folder (returned)."""
    import socket
    import torchvision
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{closed}/"])
    root = tmp_path / "offline-root"
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(root))
    return root


@pytest.fixture
def kmnist_mirror(tmp_path, monkeypatch):
    """A local HTTP mirror serving synthetic KMNIST files (gzipped, with their md5s),
    patched into torchvision's KMNIST: the real download path, never the internet."""
    import gzip
    import hashlib
    import http.server
    import threading
    import torchvision
    mirror = tmp_path / "mirror"
    source = write_dataset(tmp_path / "mirror-source", n_train=200, n_test=50) / "raw"
    mirror.mkdir()
    resources = []
    for name in IDX_NAMES:
        packed = gzip.compress((source / name).read_bytes())
        (mirror / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", hashlib.md5(packed).hexdigest()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(mirror), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(torchvision.datasets.KMNIST, "resources", resources)
    yield mirror
    server.shutdown()


# The browser tests (test_browser*.py): the app served by `streamlit run`, driven by Playwright
# through Debian's Chromium (benchmarks/app_browser.py starts both, with deadlines).

def skip_without_browser():
    """Called at the top of a browser-test module: skips it unless Debian's Chromium and
    Playwright for Python are installed; returns playwright.sync_api."""
    from benchmarks.app_browser import CHROMIUM
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests drive Debian's Chromium at {CHROMIUM}, which is not installed "
                    "(apt-get install chromium)", allow_module_level=True)
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright for Python "
                                   "(pip install playwright; the browser itself is Debian's Chromium)")
    # Every expect waits on the page's state; its bound is a busy machine's (Playwright's default, 5 s,
    # failed tests whenever other work shared the processor).
    sync_api.expect.set_options(timeout=120_000)
    return sync_api


@contextlib.contextmanager
def serving(data_root: Path, runs_dir: Path, log_name: str, env: dict[str, str] | None = None):
    """The app on `data_root` and `runs_dir` (and `env` added to its environment), its URL
    yielded; a server that does not start fails the test with its log (kept in test-artifacts/log_name)."""
    from benchmarks.app_browser import AppDidNotStart, serve_app
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with serve_app({"KMNIST_DATA_ROOT": str(data_root), "KMNIST_RUNS_DIR": str(runs_dir), **(env or {})},
                       log=ARTIFACTS / log_name) as url:
            yield url
    except AppDidNotStart as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for all the browser tests."""
    from benchmarks.app_browser import chromium
    with chromium() as browser:
        yield browser


@contextlib.contextmanager
def browser_page(browser, viewport: dict, timeout_ms: float = 30_000, **context_options):
    """A page in a fresh browser context (no cookies or state from other tests); the page's
    JavaScript errors are collected in page.js_errors."""
    context = browser.new_context(viewport=viewport, **context_options)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()


def until(action, done, attempts: int = 5, timeout_ms: float = 120_000) -> None:
    """Do `action` until `done(ms)` (an expect given its timeout) holds: a click can land while a
    rerun (a live view's, or another session's change reaching this page) redraws the widget
    under it, and is lost. Only for actions that are harmless to repeat once they took."""
    for attempt in range(attempts):
        action()
        try:
            done(timeout_ms // attempts)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves a screenshot of its page in test-artifacts/, to see what it saw."""
    outcome = yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if outcome.get_result().failed and call.when == "call" and page is not None and hasattr(page, "screenshot"):
        with contextlib.suppress(Exception):
            page.screenshot(path=ARTIFACTS / f"failed-{item.name}.png", full_page=True)
