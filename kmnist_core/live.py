"""What changed, for pages that keep their lists live: a version number, the open pages,
and who last renamed or deleted a run.

The job manager and the run store call `bump()` whenever a job is submitted, starts or
ends and whenever a run is created, renamed or deleted. A page polls `version()` (a
counter and one stat of the runs folder, so runs made by another process count too) and
redraws its pickers only when it moved. Each polling page also calls `heartbeat()`, so
`open_pages()` can tell the Train page how many browsers share the machine's cores.
All of it is per process and bounded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_SECONDS = 10.0   # a page that has not polled for this long is closed (pages poll every ~1.5 s)
MAX_SESSIONS = 1000
MAX_RUN_EVENTS = 500

_lock = threading.Lock()
_counter = 0
_seen: OrderedDict[str, float] = OrderedDict()          # session id -> last heartbeat (monotonic)
_run_events: OrderedDict[str, "RunEvent"] = OrderedDict()  # run id -> the last rename or delete


@dataclass(frozen=True)
class RunEvent:
    action: str   # "renamed" or "deleted"
    by: str       # who did it, as others read it ("the teacher", "Aiko")
    name: str     # the run's name afterwards (renamed) or before (deleted)


def bump() -> None:
    global _counter
    with _lock:
        _counter += 1


def version(runs_dir: Path | None = None) -> tuple[int, int]:
    """Changes whenever a job or run changed in this process, or a run folder was added to or
    removed from `runs_dir` by any process."""
    if runs_dir is None:
        from .runs import default_runs_dir
        runs_dir = default_runs_dir()
    try:
        folder = Path(runs_dir).stat().st_mtime_ns
    except OSError:
        folder = 0
    return _counter, folder


def note_run(run_id: str, action: str, by: str, name: str) -> None:
    """Remember the last rename or delete of a run, for the pages that had it open."""
    with _lock:
        _run_events[run_id] = RunEvent(action, by, name)
        _run_events.move_to_end(run_id)
        while len(_run_events) > MAX_RUN_EVENTS:
            _run_events.popitem(last=False)
    bump()


def run_event(run_id: str) -> RunEvent | None:
    with _lock:
        return _run_events.get(run_id)


def heartbeat(session: str) -> None:
    with _lock:
        _seen[session] = time.monotonic()
        _seen.move_to_end(session)
        while len(_seen) > MAX_SESSIONS:
            _seen.popitem(last=False)


def open_pages(within: float = HEARTBEAT_SECONDS) -> int:
    """Browser pages that polled in the last `within` seconds."""
    now = time.monotonic()
    with _lock:
        return sum(1 for last in _seen.values() if now - last <= within)
