"""Who is acting, and what they may do: the one home of the classroom's permission rule.

A class is what the teacher turns on by starting the app with a class key (the environment
variable KMNIST_CLASS_KEY, or `class_key` in .streamlit/secrets.toml, which the app reads
and passes in). Without a key there is one user, in charge of everything: `Actor.local()`,
today's behaviour. With a key, every browser names itself once; a session that gives the
key is the teacher's. The teacher may act on everything; a student only on what they
started. The job manager, the run store and the class limits call `check` and raise
`NotAllowed`, so a page that forgets to hide a button is refused all the same.

A display name is not a password: two students who type the same name share their work.
The key is the one secret, and is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

CLASS_KEY_ENV = "KMNIST_CLASS_KEY"
MAX_NAME_LENGTH = 40
TEACHER = "the teacher"  # how the teacher is named to others ("deleted by the teacher")


class NotAllowed(PermissionError):
    """The acting user may not do this; the message is one plain line saying why."""


@dataclass(frozen=True)
class Actor:
    """Whoever asks the engine to do something: a display name, and whether they are in charge."""
    name: str
    is_teacher: bool

    @classmethod
    def local(cls) -> "Actor":
        """The one user of an app started without a class key: in charge of everything."""
        return cls("", True)

    @classmethod
    def student(cls, name: str) -> "Actor":
        return cls(clean_name(name), False)

    @classmethod
    def teacher(cls, name: str = "") -> "Actor":
        return cls(clean_name(name) if name.strip() else "", True)

    @property
    def owner(self) -> str:
        """What the jobs and runs this user starts record as their owner: the student's name, or ""
        for the teacher (as for the lone user), which no student can type: a student who signs in
        under the teacher's name still owns nothing of the teacher's."""
        return "" if self.is_teacher else self.name

    @property
    def label(self) -> str:
        """How others read this user's name in a notice: "the teacher", or the student's name."""
        return TEACHER if self.is_teacher else self.name


def clean_name(name: str) -> str:
    """A display name as stored: spaces collapsed, at most MAX_NAME_LENGTH characters, no
    control characters; ValueError for an empty one. It is shown literally wherever it appears."""
    cleaned = re.sub(r"\s+", " ", "".join(c for c in str(name) if c.isprintable() or c.isspace())).strip()
    if not cleaned:
        raise ValueError("Type a name (any name your class knows you by).")
    return cleaned[:MAX_NAME_LENGTH]


def may(actor: Actor, owner: str) -> bool:
    """The rule: the teacher (or the lone user) may act on anything; a student only on their own.
    Work without an owner (the teacher's, or made before the class, from the command line, or
    shipped) is the teacher's."""
    return actor.is_teacher or (bool(owner) and owner == actor.name)


def check(actor: Actor, owner: str, action: str, what: str) -> None:
    """Raise NotAllowed unless `actor` may do `action` ("stop", "delete"...) to `what` (a plain
    description, "job-3") started by `owner`."""
    if not may(actor, owner):
        who = f"{owner} or the teacher" if owner else "the teacher"
        raise NotAllowed(f"Only {who} may {action} {what}; you are signed in as {actor.name}.")


def require_teacher(actor: Actor, action: str) -> None:
    if not actor.is_teacher:
        raise NotAllowed(f"Only the teacher may {action}.")


def class_key(configured: str | None = None) -> str:
    """The class key in force: KMNIST_CLASS_KEY, else the one the app read from its secrets
    ("" for none: no class, the single-user app)."""
    return (os.environ.get(CLASS_KEY_ENV) or configured or "").strip()


def key_matches(given: str, key: str) -> bool:
    """Whether `given` is the class key, compared in constant time; never true without a key."""
    return bool(key) and hmac.compare_digest(given.strip().encode("utf-8"), key.encode("utf-8"))


def teacher_token(key: str, name: str) -> str:
    """What a browser keeps to stay the teacher across reloads: a keyed hash of the name, never
    the key itself. Changing the key signs every teacher's browser out."""
    return hmac.new(key.encode("utf-8"), f"teacher:{name}".encode("utf-8"), hashlib.sha256).hexdigest()


def token_matches(token: str, key: str, name: str) -> bool:
    return bool(key) and hmac.compare_digest(token.encode("utf-8"), teacher_token(key, name).encode("utf-8"))
