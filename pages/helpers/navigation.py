"""Every page's first call: make sure the app's own navigation (app.py) shows it."""

import streamlit as st


def use_app_navigation() -> None:
    """Call first on every page. Until some session has run app.py's st.navigation,
    Streamlit treats the pages/ folder as old-style pages, so a deep link (say /draw)
    opened first after a restart would run the page alone, outside the app's shell.
    Clearing that flag and rerunning hands the request to app.py, which shows the page."""
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
