"""Dates, durations and names as the pages write them."""

from __future__ import annotations

import re
from datetime import datetime

# What markdown (and Streamlit's own :material/...: and :color[...]: directives, $LaTeX$) would
# read as markup: every ASCII punctuation mark, escaped with a backslash, shows as itself.
_MARKUP = re.compile(r"([!-/:-@\[-`{-~])")


def literal(text) -> str:
    """Text a user or a data folder named (a run, a class, a dataset, a person), made safe to put
    in markdown: shown exactly as written, never as a link, an image, HTML or formatting."""
    return _MARKUP.sub(r"\\\1", " ".join(str(text).split()))


def when(timestamp: str | float | None) -> str:
    """A record's ISO time or a job's epoch seconds, in local time to the minute."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp) if isinstance(timestamp, (int, float)) else \
        datetime.fromisoformat(timestamp).astimezone()
    return f"{moment:%Y-%m-%d %H:%M}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
