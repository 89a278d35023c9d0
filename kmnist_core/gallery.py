"""The class gallery: drawings students share with the class, the model's accuracy on them,
and their export as an idx dataset folder that the class can train on.

Each shared drawing is two files in `<runs folder>/class-gallery/`: the 28x28 image as the
model saw it (`<id>.png`, 8-bit grey) and what is known of it (`<id>.json`: who shared it,
the class they meant, the model's answer, the run, the dataset and its class names, when).
Both are written whole or not at all (runs.atomic_write), the image first: a drawing is
listed once its JSON is there. The gallery is bounded in count and bytes, so a class cannot
fill the server's disk; only the teacher may remove drawings, and the rule is enforced here,
not by hiding a page's buttons.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import struct
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import runs
from .data import IDX_FILES, Normalization
from .evaluation import predict_proba

log = logging.getLogger(__name__)

MAX_DRAWINGS = 1000              # about 30 drawings for each of 30 students
MAX_BYTES = 8 * 2**20            # all the gallery's files together (a drawing takes about 1.5 KB)
MAX_ENTRY_BYTES = 64 * 2**10     # a JSON larger than this is not one of ours
MAX_NAME = 60                    # characters kept of an owner's or a class's name
MAX_CLASSES = 100
EXPORTS = "exports"              # sub-folder of the gallery for the exported datasets
MAX_EXPORTS = 50
_ID = re.compile(r"^\d{8}-\d{6}-\d{6}-[0-9a-f]{6}$")
_lock = threading.Lock()         # share, remove and clear: the count check and the write go together


class GalleryError(ValueError):
    """A drawing that cannot be shared or exported; the message is one line for the user."""


class GalleryFull(GalleryError):
    """The gallery holds MAX_DRAWINGS drawings or MAX_BYTES bytes."""


class TeacherOnly(PermissionError):
    """Someone other than the teacher tried to remove shared drawings."""


@dataclass(frozen=True)
class SharedDrawing:
    id: str
    owner: str                      # as typed; "" when the app runs without a class
    label: int                      # the class the student meant, an index into class_names
    answer: int                     # the model's answer, an index into class_names
    class_names: tuple[str, ...]
    dataset: str                    # the dataset's display name
    run_id: str
    created: str                    # ISO time, UTC
    image: np.ndarray               # (28, 28) uint8, ink light on dark

    @property
    def correct(self) -> bool:
        return self.label == self.answer

    @property
    def label_name(self) -> str:
        return self.class_names[self.label]

    @property
    def answer_name(self) -> str:
        return self.class_names[self.answer]


def gallery_dir(runs_dir: Path | None = None) -> Path:
    return Path(runs_dir if runs_dir is not None else runs.default_runs_dir()) / runs.GALLERY_FOLDER


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise GalleryError(f"The {what} must be text.")
    return " ".join(value.split())[:MAX_NAME]


def share(image28, *, owner: str, label: int, answer: int, class_names, dataset: str, run_id: str,
          runs_dir: Path | None = None) -> SharedDrawing:
    """Add a prepared (28, 28) drawing (float in [0, 1] or uint8) to the gallery; GalleryFull
    past its bounds, GalleryError for anything malformed."""
    names = tuple(_text(name, "class name") for name in class_names)
    if not 2 <= len(names) <= MAX_CLASSES or not all(names):
        raise GalleryError(f"A shared drawing needs 2 to {MAX_CLASSES} class names, none of them blank.")
    for what, index in (("intended class", label), ("model's answer", answer)):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names):
            raise GalleryError(f"The {what} must be one of the model's {len(names)} classes.")
    image = as_uint8(image28)
    created = datetime.now(timezone.utc)
    drawing = SharedDrawing(f"{created:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(3)}", _text(owner, "name"), label,
                            answer, names, _text(dataset, "dataset name"), _text(run_id, "run id"),
                            created.isoformat(timespec="milliseconds"), image)
    png, entry = _png(image), json.dumps(_entry_json(drawing), ensure_ascii=False).encode("utf-8")
    folder = gallery_dir(runs_dir)
    with _lock:
        folder.mkdir(parents=True, exist_ok=True)
        count, size = _usage(folder)
        if count >= MAX_DRAWINGS or size + len(png) + len(entry) > MAX_BYTES:
            raise GalleryFull(f"The class gallery is full ({count:,} drawings, {size / 2**20:.1f} MB): "
                              f"the teacher can remove drawings or clear it.")
        runs.atomic_write(folder / f"{drawing.id}.png", png)
        try:
            runs.atomic_write(folder / f"{drawing.id}.json", entry)
        except BaseException:
            (folder / f"{drawing.id}.png").unlink(missing_ok=True)   # no image left without its entry
            raise
    return drawing


def as_uint8(image28) -> np.ndarray:
    """A prepared drawing (a (28, 28) tensor or array, float in [0, 1] or uint8) as uint8."""
    array = np.asarray(image28.detach().cpu() if isinstance(image28, torch.Tensor) else image28)
    if array.shape != (28, 28):
        raise GalleryError(f"A shared drawing is a 28x28 image, not {'x'.join(map(str, array.shape))}.")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return array


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)   # uint8 (28, 28): 8-bit grey
    return buffer.getvalue()


def _entry_json(d: SharedDrawing) -> dict:
    return {"owner": d.owner, "label": d.label, "answer": d.answer, "class_names": list(d.class_names),
            "dataset": d.dataset, "run_id": d.run_id, "created": d.created}


def _usage(folder: Path) -> tuple[int, int]:
    """(drawings, bytes) of the gallery as it is on disk now."""
    count = size = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        if entry.is_file() and not entry.name.startswith("."):
            count += entry.name.endswith(".json")
            size += entry.stat().st_size
    return count, size


# A shared drawing never changes once written: each is read from disk once per process
# (every open Class page lists the gallery every two seconds).
_read_before: dict[Path, dict[str, SharedDrawing]] = {}


def list_shared(runs_dir: Path | None = None) -> list[SharedDrawing]:
    """Every readable shared drawing, newest first; a damaged or half-removed one is skipped
    (and logged)."""
    folder = gallery_dir(runs_dir)
    try:
        ids = sorted((p.stem for p in folder.glob("*.json") if _ID.match(p.stem)), reverse=True)
    except OSError:
        return []
    before = _read_before.get(folder, {})
    known = {}
    for drawing_id in ids:
        try:
            known[drawing_id] = before.get(drawing_id) or _read(folder, drawing_id)
        except FileNotFoundError:
            continue  # removed meanwhile
        except (GalleryError, OSError, ValueError, KeyError, TypeError, UnidentifiedImageError) as error:
            log.warning("skipping shared drawing %s: %s", drawing_id, error)
    _read_before[folder] = known   # those removed since are forgotten
    return list(known.values())


def _read(folder: Path, drawing_id: str) -> SharedDrawing:
    path = folder / f"{drawing_id}.json"
    if path.stat().st_size > MAX_ENTRY_BYTES:
        raise GalleryError(f"{path.name} is larger than {MAX_ENTRY_BYTES:,} bytes")
    entry = json.loads(path.read_text(encoding="utf-8"))
    with Image.open(folder / f"{drawing_id}.png", formats=["PNG"]) as picture:
        if picture.size != (28, 28):
            raise GalleryError(f"{drawing_id}.png is not 28x28")
        image = np.asarray(picture.convert("L"))
    names = tuple(_text(name, "class name") for name in entry["class_names"])
    label, answer = entry["label"], entry["answer"]
    if not (isinstance(label, int) and isinstance(answer, int) and 0 <= label < len(names) and 0 <= answer < len(names)):
        raise GalleryError("its label or answer is not one of its classes")
    return SharedDrawing(drawing_id, _text(entry["owner"], "name"), label, answer, names,
                         _text(entry["dataset"], "dataset name"), _text(entry["run_id"], "run id"),
                         _text(entry["created"], "time"), image)


def _refuse_unless_teacher(is_teacher: bool, what: str) -> None:
    if not is_teacher:
        raise TeacherOnly(f"Only the teacher can {what} the class gallery.")


def remove(drawing_id: str, *, is_teacher: bool, runs_dir: Path | None = None) -> None:
    """Remove one shared drawing (the teacher only); one already gone is no error."""
    _refuse_unless_teacher(is_teacher, "remove drawings from")
    if not isinstance(drawing_id, str) or not _ID.match(drawing_id):
        raise GalleryError("No such shared drawing.")
    folder = gallery_dir(runs_dir)
    with _lock:
        (folder / f"{drawing_id}.json").unlink(missing_ok=True)   # unlisted first, then its image
        (folder / f"{drawing_id}.png").unlink(missing_ok=True)


def clear(*, is_teacher: bool, runs_dir: Path | None = None) -> int:
    """Remove every shared drawing (the teacher only; the exported datasets stay); how many."""
    _refuse_unless_teacher(is_teacher, "clear")
    folder = gallery_dir(runs_dir)
    with _lock:
        removed = 0
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if _ID.match(path.stem):
                path.unlink(missing_ok=True)
                path.with_suffix(".png").unlink(missing_ok=True)
                removed += 1
    return removed


# ---------------------------------------------------------------------------------------------
# What a model makes of the class's drawings


@dataclass(frozen=True)
class ClassScore:
    name: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


def of_classes(drawings: list[SharedDrawing], class_names) -> list[SharedDrawing]:
    """The drawings shared for a model with exactly these classes (in this order)."""
    names = tuple(_text(name, "class name") for name in class_names)
    return [d for d in drawings if d.class_names == names]


def accuracy_by_class(model: torch.nn.Module, normalization: Normalization, drawings: list[SharedDrawing],
                      class_names) -> list[ClassScore]:
    """The model's accuracy on the class's own drawings of each of its classes (drawings shared
    for other classes are left out), scored against the class each student meant."""
    mine = of_classes(drawings, class_names)
    correct, total = np.zeros(len(class_names), int), np.zeros(len(class_names), int)
    if mine:
        images = torch.from_numpy(np.stack([d.image for d in mine]))
        answers = predict_proba(model, images, normalization).argmax(1).numpy()
        labels = np.array([d.label for d in mine])
        np.add.at(total, labels, 1)
        np.add.at(correct, labels, answers == labels)
    return [ClassScore(name, int(c), int(t)) for name, c, t in zip(class_names, correct, total)]


# ---------------------------------------------------------------------------------------------
# Export as an idx dataset folder


def split(labels: list[int], test_fraction: float = 0.25, seed: int = 0) -> tuple[list[int], list[int]]:
    """Stratified, deterministic (train, test) positions: of each class's drawings, a seeded
    shuffle puts `test_fraction` (at least one when it has two or more) in test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(set(labels)):
        members = [i for i, value in enumerate(labels) if value == label]
        rng.shuffle(members)
        held = max(1, round(len(members) * test_fraction)) if len(members) >= 2 else 0
        test += members[:held]
        train += members[held:]
    return sorted(train), sorted(test)


def _idx_bytes(array: np.ndarray) -> bytes:
    """MNIST's idx format, as data.py reads it: 00 00 08 <ndim>, big-endian sizes, the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def export_dataset(class_names, *, runs_dir: Path | None = None, test_fraction: float = 0.25,
                   seed: int = 0) -> Path:
    """Write the drawings shared for these classes as an idx dataset folder (raw/ with the four
    idx files, and classes.txt) under the gallery's exports/, and return its path: the Train
    page's "own idx folder" reads it as it is. The folder is named by its content, so exporting
    the same drawings again returns the same folder; it is written hidden and renamed into
    place, so a half-written export is never seen. At most MAX_EXPORTS are kept."""
    names = [_text(name, "class name") for name in class_names]
    mine = of_classes(list_shared(runs_dir), names)
    train, test = split([d.label for d in mine], test_fraction, seed)
    if len(train) < 2 or not test:
        raise GalleryError(f"Too few drawings to export: {len(mine)} shared for these classes; a training set "
                           f"and a held-out test set need at least two drawings of one class and three in all.")
    content = hashlib.sha256(json.dumps([names, test_fraction, seed, [(d.id, d.label) for d in mine]]).encode())
    exports = gallery_dir(runs_dir) / EXPORTS
    final = exports / f"class-drawings-{len(mine)}-{content.hexdigest()[:10]}"
    with _lock:
        if final.is_dir():
            return final
        if exports.is_dir() and sum(not p.name.startswith(".") for p in exports.iterdir()) >= MAX_EXPORTS:
            raise GalleryFull(f"The gallery already holds {MAX_EXPORTS} exported datasets: delete old ones "
                              f"from {exports} to export again.")
        _write_export(exports / f".{final.name}.{secrets.token_hex(4)}.tmp", final, mine, train, test, names)
    return final


def _write_export(staging: Path, final: Path, drawings: list[SharedDrawing], train: list[int], test: list[int],
                  names: list[str]) -> None:
    try:
        raw = staging / "raw"
        raw.mkdir(parents=True)
        for name, part in zip(IDX_FILES, (train, train, test, test)):
            picked = [drawings[i] for i in part]
            array = np.stack([d.image for d in picked]) if "images" in name else np.array([d.label for d in picked])
            (raw / name).write_bytes(_idx_bytes(array))
        (staging / "classes.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
