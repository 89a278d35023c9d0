"""Projector mode: a page laid out for a classroom projector's 1280x720 screen, with no sidebar,
large type and what the class watches above the fold.

On with `?projector=1` in the address (a bookmark for the lesson) or the "Projector mode"
toggle; remembered for the session, so moving to another page keeps it. The toggle sits in
the sidebar while the mode is off, and in the top-right corner (where Streamlit's header was)
while it is on, as the sidebar is hidden then.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import streamlit as st

PARAM = "projector"         # ?projector=1 turns it on, ?projector=0 off
MODE = "projector_mode"     # session key: the mode, kept across pages (a page switch drops the address's parameters)
SWITCH = "projector_switch"  # the toggle's own key

# No sidebar or header; less padding; large type; the live view's heading left out (its job picker
# says what it is), so the Train page's curves stay above the fold. Streamlit's test ids name the parts.
STYLE = """<style>
[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'], [data-testid='stExpandSidebarButton'],
[data-testid='stHeader'] {display: none}
[data-testid='stMainBlockContainer'] {padding: 0.75rem 1.5rem 1rem 1.5rem !important; max-width: none}
[data-testid='stMain'] h1 {font-size: 1.9rem; padding: 0 0 0.25rem 0}
[data-testid='stMain'] [data-testid='stMarkdownContainer'] p {font-size: 1.2rem}
[data-testid='stMain'] [data-testid='stCaptionContainer'] p {font-size: 1rem}
.st-key-projector_corner {position: fixed; top: 0.6rem; right: 1.5rem; z-index: 999990; width: auto}
.st-key-projector_live [data-testid='stElementContainer']:has(h3) {display: none}
[data-testid='stMain'] [data-testid='stMetricValue'] p {font-size: 2.5rem}
.st-key-projector_live [data-testid='stMetricValue'] p {font-size: 1.75rem}
</style>"""


def is_on() -> bool:
    """Whether the page is being projected: the address's `?projector=` when it has one, else
    the session's last choice."""
    asked = st.query_params.get(PARAM)
    if asked is not None:
        st.session_state[MODE] = asked == "1"
    return bool(st.session_state.get(MODE, False))


def _switched() -> None:
    on = bool(st.session_state[SWITCH])
    st.session_state[MODE] = on
    if on:
        st.query_params[PARAM] = "1"
    else:
        st.query_params.pop(PARAM, None)


def toggle() -> bool:
    """The projector toggle, and the projector's style while it is on; whether it is on.
    Call once near the top of a page that has a projector layout."""
    on = is_on()
    st.session_state[SWITCH] = on
    place = st.container(key="projector_corner") if on else st.sidebar
    place.toggle(":material/co_present: Projector mode", key=SWITCH, on_change=_switched,
                 help="Lay this page out for a classroom projector (1280x720): no sidebar, large type. "
                      "Or open any page with ?projector=1 in its address.")
    if on:
        st.query_params[PARAM] = "1"   # the address says so: a reload or a bookmark keeps it
        st.html(STYLE)
    return on


@dataclass(frozen=True)
class DrawLayout:
    top: tuple       # (the canvas's, what the model sees's, the answer's) columns
    below: tuple     # (the probabilities', the saliency's) columns


def draw_layout() -> DrawLayout | None:
    """The Draw page on one projector screen: the canvas, what the model sees, the answer, the
    probabilities and the saliency side by side in one row; None when not projecting."""
    if not is_on():
        return None
    canvas, seen, answer, chart, saliency = st.columns([1.15, 0.7, 1.0, 1.45, 0.75], gap="small")
    return DrawLayout((canvas, seen, answer), (chart, saliency))


def above_the_fold():
    """Where a page's live view goes: a container here, at the top, when projecting (the Train
    page's progress and curves above its form); otherwise wherever it is drawn."""
    return st.container(key="projector_live") if is_on() else contextlib.nullcontext()
