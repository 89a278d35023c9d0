"""Dates and durations as the pages write them."""

from __future__ import annotations

from datetime import datetime


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
