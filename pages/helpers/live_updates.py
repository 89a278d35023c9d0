"""Every page's lists kept live, cheaply: a small fragment polls the engine's version number
(kmnist_core/live.py) and reruns the page only when a job or run changed, so job lists and
run pickers follow other sessions within about two seconds while an idle page costs the
server one counter read and the browser one tiny redraw per poll. The poll is also the
page's heartbeat (how many pages are open) and brings the notice of this user's own jobs
ending, on whatever page they are.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from kmnist_core import live
from kmnist_core.access import Actor
from pages.helpers.background_jobs import job_manager
from pages.helpers.formatting import literal

POLL_SECONDS = 1.5
SEEN = "live_version"           # session key: the version this page last drew
MINE = "live_my_active_jobs"    # session key: this user's jobs that were waiting or training
NOTICES = "live_notices"        # session key: notices for the next full run to show
ENDINGS = {"finished": ("✅", "finished"), "stopped": ("⏹️", "was stopped"), "failed": ("❌", "failed"),
           "cancelled": ("🚫", "was cancelled")}


def keep_lists_live(actor: Actor) -> None:
    """Call once per run of the app, before the page: shows pending notices, then polls."""
    for notice in st.session_state.pop(NOTICES, []):
        st.toast(notice, icon=":material/notifications:")
    _remember_my_jobs(actor)

    @st.fragment(run_every=POLL_SECONDS)
    def poll() -> None:
        context = get_script_run_ctx()
        live.heartbeat(context.session_id if context is not None else "")
        version = live.version()
        if st.session_state.get(SEEN) == version:
            return
        changed = SEEN in st.session_state
        st.session_state[SEEN] = version
        if changed:
            st.session_state[NOTICES] = _ended_jobs(actor)
            st.rerun(scope="app")

    poll()


def _remember_my_jobs(actor: Actor) -> None:
    st.session_state[MINE] = [job.id for job in job_manager().active() if job.owner == actor.owner]


def _ended_jobs(actor: Actor) -> list[str]:
    """A notice for each of this user's jobs that has ended since the page last drew."""
    notices = []
    for job_id in st.session_state.get(MINE, []):
        job = job_manager().get(job_id)
        snap = job.snapshot() if job is not None else None
        if snap is not None and snap.status in ENDINGS:
            icon, ended = ENDINGS[snap.status]
            name = literal(snap.config.name or f"{snap.config.arch} on {snap.config.dataset}")
            notices.append(f"{icon} Your job {snap.id} ({name}) {ended}.")
    return notices


def open_pages_note() -> str | None:
    """"6 pages open: training runs slower", when other browsers share the machine's cores."""
    pages = live.open_pages()
    if pages <= 1:
        return None
    return f"{pages} pages open: training runs slower"
