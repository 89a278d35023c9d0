"""Who this browser is, in a class: `current_actor()` for every page that acts on jobs or runs.

Without a class key nothing is asked and everyone is `Actor.local()`, in charge, as the app
always was. With a key (KMNIST_CLASS_KEY, or `class_key` in .streamlit/secrets.toml), a browser
is asked once for a display name, and the teacher may give the key as well. The browser keeps
both in cookies: the name, and for the teacher a keyed hash of it (access.teacher_token), never
the key. Streamlit reads cookies as the page connects (st.context.cookies); a tiny component
writes them, since the server cannot set a cookie over its websocket.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

import streamlit as st
import streamlit.components.v1 as components

from kmnist_core import access
from kmnist_core.access import Actor
from pages.helpers.formatting import literal

NAME_COOKIE = "kmnist_name"
TEACHER_COOKIE = "kmnist_teacher"
COOKIE_DAYS = 180
ACTOR = "classroom_actor"           # session key: this session's Actor, once known
COOKIES_TO_WRITE = "classroom_cookies"  # session key: cookies the next run writes in the browser
SIGNED_OUT = "classroom_signed_out"     # session key: ignore the cookies this page connected with


def class_key() -> str:
    """The class key in force ("" for none): the environment's, else the secrets file's."""
    try:
        configured = st.secrets.get("class_key", "")
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no key from it
        configured = ""
    return access.class_key(str(configured))


def in_class() -> bool:
    return bool(class_key())


def current_actor() -> Actor:
    """This session's user. In a class, a browser that has not named itself yet gets the
    sign-in form instead of the page (which stops here)."""
    key = class_key()
    if not key:
        return Actor.local()
    _write_cookies()
    actor = st.session_state.get(ACTOR)
    if actor is None and not st.session_state.get(SIGNED_OUT):  # the cookies were read as the page connected
        actor = _remembered(key)
    if actor is None:
        _sign_in(key)
        st.stop()
    st.session_state[ACTOR] = actor
    return actor


def _remembered(key: str) -> Actor | None:
    """The identity this browser's cookies hold, if any."""
    try:
        name = access.clean_name(unquote(_cookie(NAME_COOKIE)))
    except ValueError:
        return None
    token = _cookie(TEACHER_COOKIE)
    return Actor.teacher(name) if token and access.token_matches(token, key, name) else Actor.student(name)


def _cookie(name: str) -> str:
    value = st.context.cookies.get(name, "")
    return value if isinstance(value, str) else ""  # (a test harness's context has no real cookies)


def _sign_in(key: str) -> None:
    st.title(":material/draw: KMNIST Lab")
    with st.form("sign_in"):
        st.markdown("**This app is running a class.** Type the name your class knows you by; this browser "
                    "remembers it.")
        name = st.text_input("Your name", max_chars=access.MAX_NAME_LENGTH, key="sign_in_name")
        given = st.text_input("Class key (only for the teacher)", type="password", key="sign_in_key")
        if not st.form_submit_button("Start", type="primary"):
            return
    try:
        actor = Actor.teacher(name) if given else Actor.student(name)
    except ValueError as error:
        st.error(str(error))
        return
    if given and not access.key_matches(given, key):
        st.error("That is not the class key. Leave it empty to join as a student.")
        return
    if actor.is_teacher and not actor.name:
        actor = Actor.teacher("Teacher")
    remember(actor, key)
    st.rerun()


def remember(actor: Actor, key: str) -> None:
    """Make `actor` this session's and, on the next run, this browser's."""
    st.session_state[ACTOR] = actor
    st.session_state.pop(SIGNED_OUT, None)
    token = access.teacher_token(key, actor.name) if actor.is_teacher else ""
    st.session_state[COOKIES_TO_WRITE] = {NAME_COOKIE: quote(actor.name), TEACHER_COOKIE: token}


def _write_cookies() -> None:
    cookies = st.session_state.pop(COOKIES_TO_WRITE, None)
    if not cookies:
        return
    age = COOKIE_DAYS * 86400
    lines = [f"{name}={value}; path=/; SameSite=Strict; max-age={age if value else 0}"
             for name, value in cookies.items()]
    # The component's frame has the app's origin: its document.cookie is the app's.
    components.html("<script>" + "".join(f"document.cookie = {json.dumps(line)};" for line in lines)
                    + "</script>", height=0)


def sign_out() -> None:
    st.session_state.pop(ACTOR, None)
    st.session_state[COOKIES_TO_WRITE] = {NAME_COOKIE: "", TEACHER_COOKIE: ""}
    st.session_state[SIGNED_OUT] = True


def identity_badge(actor: Actor) -> None:
    """In the sidebar of a class: who this browser is, and a way to change it."""
    if not in_class():
        return
    with st.sidebar:
        role = "teacher" if actor.is_teacher else "student"
        st.caption(f"Signed in as **{literal(actor.name)}** ({role})")
        st.button("Change name", key="sign_out", on_click=sign_out)
