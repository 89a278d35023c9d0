"""A button whose press is acted on once, whatever reruns meet it.

Read as `if st.button(...)`, a press is the button's value in the one run it starts. On a busy
machine that run can be cut short by a refresh (a live view's, or the page following another
session's change), and the next run sees the button unpressed: the press is lost. A callback
runs once per press before any of that, so it leaves a note that the page reads when it gets
there.
"""

from __future__ import annotations

import streamlit as st


def pressed(container, label: str, *, key: str, **button_options) -> bool:
    """Draw the button in `container` (st or a column); True once for each press."""
    asked = f"{key}-pressed"
    container.button(label, key=key, on_click=st.session_state.update, args=({asked: True},), **button_options)
    return st.session_state.pop(asked, False)
