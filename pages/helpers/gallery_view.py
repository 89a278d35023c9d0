"""The class gallery on the pages: "Share with the class" on Draw, and the Class page's wall.
The rules (bounds, who may remove) are kmnist_core.gallery's; this only shows them. Every name
a user or a run brings (owners, class names) is escaped: shown as the text it is."""

from __future__ import annotations

import base64
import hashlib
import html
import io

import numpy as np
import streamlit as st
from PIL import Image

from kmnist_core import charts, gallery, runs
from pages.helpers.identity import current_actor

SHARED = "gallery_shared"   # session key: a digest of the drawing this session shared last
MEANT = "share_meant"       # the class picker's key
PROBLEM = "share_problem"   # why the last share was refused, shown once
WALL_SIZE = 60              # the newest drawings shown on the wall
TILE_SCALE = 3              # 28x28 -> 84 px


def _who() -> tuple[str, bool]:
    """(the user's name, whether they are the teacher). Without a class key the one user is in
    charge: ("", True)."""
    actor = current_actor()
    return actor.name, actor.is_teacher


def share_button(run: runs.Run, image28, answer: int) -> None:
    """"Share with the class": the drawing, the class the student meant (picked by them, from the
    model's classes) and the model's answer go to the class gallery."""
    names = run.class_names
    image = gallery.as_uint8(image28)
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    if st.session_state.get(SHARED) == digest:
        st.caption(":material/check: Shared with the class.")
        return
    with st.popover("Share with the class", icon=":material/share:"):
        meant = st.selectbox("What did you mean to draw?", range(len(names)), index=None, key=MEANT,
                             format_func=lambda i: names[i], placeholder="Pick the class you meant")
        st.button("Share", type="primary", disabled=meant is None, key="share_send", on_click=_share,
                  args=(run, image, answer, digest))
        if problem := st.session_state.pop(PROBLEM, None):
            st.error(problem)


def _share(run: runs.Run, image: np.ndarray, answer: int, digest: str) -> None:
    """The Share button's callback: before the page reruns, so the rerun shows it shared."""
    owner, _ = _who()
    try:
        gallery.share(image, owner=owner, label=st.session_state[MEANT], answer=answer, class_names=run.class_names,
                      dataset=run.record.dataset.display_name, run_id=run.id)
    except (gallery.GalleryError, OSError) as error:
        st.session_state[PROBLEM] = str(error).splitlines()[0]
    else:
        st.session_state[SHARED] = digest
        del st.session_state[MEANT]   # the next drawing's class is picked afresh


def _data_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(charts.enlarge(image, TILE_SCALE)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _tile(d: gallery.SharedDrawing) -> str:
    e = html.escape
    verdict = (f"<span style='color:#1a7f37'>✓ {e(d.answer_name)}</span>" if d.correct else
               f"<span style='color:#cf222e'>✗ read as {e(d.answer_name)}</span>")
    border = "#1a7f3766" if d.correct else "#cf222e"
    return (f"<figure class='gallery-tile' data-correct='{str(d.correct).lower()}' style='margin:0;width:112px;"
            f"padding:6px;border:3px solid {border};border-radius:8px;text-align:center;font-size:0.8rem;"
            f"line-height:1.25;overflow-wrap:anywhere'>"
            f"<img src='{_data_url(d.image)}' width='84' height='84' alt='a shared drawing' "
            f"style='image-rendering:pixelated;border-radius:4px'>"
            f"<div><b>{e(d.label_name)}</b></div><div>{verdict}</div>"
            f"<div style='opacity:0.7'>{e(d.owner or 'someone')} · {e(d.created[11:16])} UTC</div></figure>")


def wall(drawings: list[gallery.SharedDrawing]) -> None:
    """The newest shared drawings as tiles, wrong answers marked in red."""
    shown = drawings[:WALL_SIZE]
    tiles = "".join(_tile(d) for d in shown)
    st.html(f"<div class='gallery-wall' style='display:flex;flex-wrap:wrap;gap:8px'>{tiles}</div>")
    wrong = sum(not d.correct for d in drawings)
    st.caption(f"{len(drawings)} drawings shared, {wrong} misread by the model that answered"
               + (f"; the newest {WALL_SIZE} shown." if len(drawings) > WALL_SIZE else "."))


def label_of(d: gallery.SharedDrawing) -> str:
    """A drawing in a list of choices (plain text: choices are not markdown)."""
    return f"{d.owner or 'someone'}: {d.label_name}, read as {d.answer_name} ({d.created[11:19]} UTC)"


def teacher_tools(drawings: list[gallery.SharedDrawing]) -> None:
    """Remove one drawing, or clear the gallery: the teacher's (the engine refuses anyone else)."""
    _, is_teacher = _who()
    if not is_teacher or not drawings:
        return
    st.subheader("Tidy the gallery")
    by_id = {d.id: d for d in drawings}
    pick_col, remove_col, clear_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("A drawing to remove", list(by_id), index=None, key="gallery_remove_pick",
                                format_func=lambda i: label_of(by_id[i]), placeholder="Pick a drawing")
    if remove_col.button("Remove", disabled=chosen is None, key="gallery_remove"):
        _as_teacher(gallery.remove, chosen)
    if clear_col.button("Clear the gallery…", key="gallery_clear"):
        _confirm_clear(len(drawings))


@st.dialog("Clear the class gallery?")
def _confirm_clear(count: int) -> None:
    st.write(f"All {count} shared drawings will be removed from the server (exported datasets stay).")
    if st.button("Clear", type="primary", key="gallery_clear_confirm"):
        _as_teacher(gallery.clear)


def _as_teacher(action, *args) -> None:
    _, is_teacher = _who()
    try:
        action(*args, is_teacher=is_teacher)
    except (gallery.TeacherOnly, gallery.GalleryError, OSError) as error:
        st.error(str(error).splitlines()[0])
        return
    st.session_state.pop("gallery_remove_pick", None)
    st.rerun()
