"""Dates, durations and names as the pages write them."""

from __future__ import annotations

import re
from datetime import datetime

# What markdown (with GFM's autolinks, and Streamlit's :material/...: and :color[...]: directives and
# $LaTeX$) reads as markup anywhere in a line; each is escaped with a backslash and shows as itself.
_MARKUP = re.compile(r"([\\`*\[\]<>!#~$|:&@]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|(?i:(?<=\bwww)\.))")
# GFM turns web and mail addresses into links after escapes are read: an invisible word joiner
# after "http", "www" or "@" keeps the text as written but stops it being an address.
_ADDRESS = re.compile(r"(?i)\b(https?|ftp|www)(?=\\?[:.])|(@)")
WORD_JOINER = "\u2060"
_LINE_START = re.compile(r"^([-+=]|\d+(?=[.)]))")  # a list, a heading underline, a numbered list


def literal(text) -> str:
    """Text a user or a data folder named (a run, a class, a dataset, a person), made safe to put
    in markdown: shown exactly as written, never as a link, an image, HTML or formatting. Only
    what could be read as markup is escaped, so a plain name (mlp_small-3f2a) stays as it is."""
    escaped = _MARKUP.sub(r"\\\1", " ".join(str(text).split()))
    escaped = _ADDRESS.sub(lambda m: m.group(0) + WORD_JOINER, escaped)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" if m.group(1)[0].isdigit() else "\\" + m.group(1), escaped)


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
