"""The app in a real browser: `streamlit run app.py` on a free local port and Debian's
Chromium driven by Playwright. One set-up for the browser tests, the benchmarks and
docs/screenshots.py; every wait in it has a deadline, so a server that never starts
fails with its log instead of hanging."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("KMNIST_CHROMIUM", "/usr/bin/chromium"))  # Debian's; never `playwright install`
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER_START_SECONDS = 60.0  # torch's import alone takes several seconds on the reference machine


class AppDidNotStart(RuntimeError):
    """The server exited or did not answer its health check in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(env: dict[str, str] | None = None, *, log: Path | None = None,
              timeout: float = SERVER_START_SECONDS) -> Iterator[str]:
    """`streamlit run app.py` from the repository, with `env` added to the environment; yields
    its URL once its health check answers, and stops its whole process group afterwards.
    The server's output goes to `log` (a temporary file if None)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        if log is None:
            log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "streamlit.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                 # Edits to the sources (other people's, in a shared checkout) must not rerun the app.
                 "--server.fileWatcherType", "none"],
                cwd=REPO, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_healthy(url, process, log, timeout)
            yield url
        finally:
            stop_server(process)


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AppDidNotStart(f"streamlit exited with code {process.returncode} before answering; "
                                 f"{log}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AppDidNotStart(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s; {log}:\n{_tail(log)}")


def _tail(log: Path, characters: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-characters:]
    except OSError:
        return "(no log)"


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, as a Playwright Browser (Playwright is a test requirement)."""
    from playwright.sync_api import sync_playwright
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"Chromium is not at {CHROMIUM}: apt-get install chromium (or set KMNIST_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def app_page(env: dict[str, str] | None = None, *, viewport: dict | None = None,
             timeout_ms: float = 60_000) -> Iterator:
    """The app served and a Playwright page (not yet navigated) for it: yields (page, url).
    Every Playwright wait on the page defaults to `timeout_ms`."""
    with serve_app(env) as url, chromium() as browser:
        page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
        page.set_default_timeout(timeout_ms)
        yield page, url
