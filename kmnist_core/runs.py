"""Runs on disk: checkpoints/<run-id>/ holds model.safetensors and run.json.

run.json is a `RunRecord`, read and written only through `RunRecord.from_json` and
`to_json`. `from_json` checks every field's type and range and refuses a malformed
record with a `CheckpointError` that names the field; listings skip such a run with
that reason and keep the others. Top-level keys this version does not know (a newer
version's, or another tool's) are kept in `extras` and written back unchanged, so
renaming a run never loses them; unknown keys inside the nested objects (dataset,
model, history entries...) are ignored and not written back.

Nothing here unpickles: weights are safetensors, metadata is JSON. Every write goes to
a temporary file that is fsynced and then renamed over the old one (and the folder
fsynced), so a process killed mid-save, or a power cut, leaves the previous good file
in place; the temporaries of a killed process are removed by the next scan. Files are
created with the user's umask, so others can read the runs of a shared classroom server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from . import live, models
from .access import Actor, check, require_teacher
from .config import TrainConfig
from .data import DATASETS, Normalization, is_kana

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
RECORD = "run.json"
STATUSES = ("running", "finished", "stopped", "failed", "interrupted")
# A record holds at most TrainConfig's 1,000 epochs (about 250 KB); anything far larger is not one.
MAX_RECORD_BYTES = 16 * 2**20
STALE_TEMPORARY_SECONDS = 3600  # a temporary of another machine (or an older version) this old is abandoned
GALLERY_FOLDER = "class-gallery"  # the class's shared drawings (kmnist_core/gallery.py), beside the runs: not a run


class CheckpointError(RuntimeError):
    """A run's files are missing, corrupt, or do not fit its architecture."""


class RunDeleted(FileNotFoundError):
    """The run's folder was deleted (from a page, or by hand) while it trained: it stays deleted."""


# ---------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One epoch's row: what the trainer appends, the Epoch event carries, a job keeps and the
    charts draw. Frozen, so a job's snapshot can share the rows with the training thread."""
    epoch: int                   # from 1
    train_loss: float
    train_accuracy: float
    val_loss: float | None       # None without a validation split
    val_accuracy: float | None
    seconds: float               # this epoch's wall time
    elapsed: float               # seconds since training began, at the end of this epoch
    lr: float | None = None      # the learning rate at the end of the epoch


@dataclass
class DatasetRecord:
    """What the run was trained on, as it was then (a user's folder may have changed since)."""
    name: str                    # registry key or folder path
    display_name: str
    class_names: list[str]
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    validation_split: str = ""

    @property
    def is_kana(self) -> bool:
        return is_kana(self.class_names)


@dataclass
class ModelRecord:
    arch: str
    parameters: int
    description: str = ""


@dataclass(frozen=True)
class TestResult:
    """The best weights' score on the test set, measured once at the end of training."""
    __test__ = False  # not a pytest test class, whatever its name
    loss: float
    accuracy: float


@dataclass
class Timings:
    train_seconds: float | None = None
    images_per_second: float | None = None
    test_seconds: float | None = None


@dataclass
class RunRecord:
    """Everything run.json holds. The first four fields and `history`, `status` and `created`
    are required in a file; the others have defaults (older records lack some of them)."""
    config: TrainConfig
    dataset: DatasetRecord
    normalization: Normalization
    model: ModelRecord
    history: list[EpochRecord] = field(default_factory=list)
    status: str = "running"      # one of STATUSES; see Run.status for a run whose process died
    reason: str = ""             # why it stopped or failed, in plain words
    id: str = ""
    name: str = ""
    created: str = ""            # ISO 8601 with milliseconds, UTC
    finished: str | None = None
    host: str | None = None      # where it trains, to tell a live run from a killed one
    pid: int | None = None
    process_start: str | None = None  # when that process started (see process_start): a reused pid is another
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    best_epoch: int | None = None  # the epoch whose weights are saved
    best_val_accuracy: float | None = None
    test: TestResult | None = None
    timings: Timings | None = None
    attribution: str = ""        # the dataset licence's credit line
    shipped: bool = False        # ships with the app: listed with a mark, never deleted
    command: str = ""            # the command line that made it, for shipped runs
    framing: dict | None = None  # statistics of how the training images fill their frame (drawing.py)
    owner: str = ""              # the student who started it ("" for the teacher, the lone user, the CLI, shipped)
    extras: dict = field(default_factory=dict)  # top-level keys this version does not know, kept as read

    def to_json(self) -> dict:
        """The run.json object. Optional keys at their defaults are left out, as older versions did."""
        out = {"id": self.id, "status": self.status, "created": self.created, "host": self.host, "pid": self.pid,
               "name": self.name, "config": self.config.to_dict(), "dataset": dataclasses.asdict(self.dataset),
               "normalization": {"mean": self.normalization.mean, "std": self.normalization.std},
               "model": dataclasses.asdict(self.model), "device": self.device, "versions": dict(self.versions),
               "history": [_epoch_json(h) for h in self.history], "best_epoch": self.best_epoch,
               "best_val_accuracy": self.best_val_accuracy,
               "test": dataclasses.asdict(self.test) if self.test is not None else None}
        optional = {"reason": self.reason, "process_start": self.process_start,
                    "timings": dataclasses.asdict(self.timings) if self.timings is not None else None,
                    "finished": self.finished, "shipped": self.shipped, "command": self.command,
                    "attribution": self.attribution, "framing": self.framing, "owner": self.owner}
        out.update((key, value) for key, value in optional.items() if value not in (None, "", False))
        out.update((key, value) for key, value in self.extras.items() if key not in out)
        return out

    @classmethod
    def from_json(cls, value) -> "RunRecord":
        """The record in a parsed run.json; CheckpointError naming the first malformed field."""
        top = _Fields(value, "the record")
        try:
            config = TrainConfig.from_dict(top.take("config", dict))
        except ValueError as error:
            raise CheckpointError(f"config: {error}") from None
        dataset = _Fields(top.take("dataset", dict), "dataset")
        class_names = dataset.take("class_names", list)
        if not class_names or not all(isinstance(name, str) and name for name in class_names):
            raise CheckpointError("dataset.class_names must be a non-empty list of class names")
        norm = _Fields(top.take("normalization", dict), "normalization")
        mean, std = norm.take("mean", float), norm.take("std", float)
        if not std > 0:
            raise CheckpointError(f"normalization.std must be positive, got {std:g}: "
                                  "the training images were all the same colour")
        model = _Fields(top.take("model", dict), "model")
        record = cls(
            config=config,
            dataset=DatasetRecord(
                dataset.take("name", str), dataset.take("display_name", str), list(class_names),
                dataset.take("train_size", int, None, low=0), dataset.take("val_size", int, None, low=0),
                dataset.take("test_size", int, None, low=0), dataset.take("validation_split", str, "")),
            normalization=Normalization(mean, std),
            model=ModelRecord(model.take("arch", str), model.take("parameters", int, low=0),
                              model.take("description", str, "")),
            history=[_epoch(entry, i) for i, entry in enumerate(top.take("history", list), 1)],
            status=top.take("status", str),
            reason=top.take("reason", str, ""),
            id=top.take("id", str, ""),
            name=top.take("name", str, ""),
            created=top.take("created", str),
            finished=top.take("finished", str, None),
            host=top.take("host", str, None),
            pid=top.take("pid", int, None, low=1),
            process_start=top.take("process_start", str, None),
            device=top.take("device", str, ""),
            versions=top.take("versions", dict, {}),
            best_epoch=top.take("best_epoch", int, None, low=1),
            best_val_accuracy=top.take("best_val_accuracy", float, None, low=0, high=1),
            test=_test(top.take("test", dict, None)),
            timings=_timings(top.take("timings", dict, None)),
            attribution=top.take("attribution", str, ""),
            shipped=top.take("shipped", bool, False),
            command=top.take("command", str, ""),
            framing=top.take("framing", dict, None),
            owner=top.take("owner", str, ""),
            extras={key: v for key, v in value.items() if key not in _RECORD_KEYS},
        )
        _check_consistency(record)
        return record


_RECORD_KEYS = {f.name for f in dataclasses.fields(RunRecord)} - {"extras"}
_REQUIRED = object()
_JSON_TYPES = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
               dict: "a JSON object", list: "a list"}


def _json_type(value) -> str:
    return {type(None): "null", bool: "true/false", str: "text", dict: "an object", list: "a list"}.get(
        type(value), "a number")


class _Fields:
    """Typed reads from one JSON object of a record, naming the key in every complaint."""

    def __init__(self, values, where: str):
        if not isinstance(values, dict):
            raise CheckpointError(f"{where} must be a JSON object, not {_json_type(values)}")
        self.values, self.where = values, where

    def take(self, key: str, kind: type, default=_REQUIRED, *,
             low: float | None = None, high: float | None = None, finite: bool = True):
        """The value of `key`, of type `kind` (a float may be written as a whole number).
        A key with a default may also be absent or null."""
        name = key if self.where == "the record" else f"{self.where}.{key}"
        if key not in self.values or (self.values[key] is None and default is not _REQUIRED):
            if default is _REQUIRED:
                raise CheckpointError(f"{name} is missing")
            return default
        value = self.values[key]
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            raise CheckpointError(f"{name} must be {_JSON_TYPES[kind]}, not {_json_type(value)} ({value!r:.40})")
        if kind is float and finite and not math.isfinite(value):
            raise CheckpointError(f"{name} must be a finite number, got {value}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise CheckpointError(f"{name} must be {bounds}, got {value:g}")
        if kind is str and key in ("created", "finished"):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise CheckpointError(f"{name} must be a date and time (ISO 8601), got {value!r:.40}") from None
        return value


def _epoch(value, number: int) -> EpochRecord:
    entry = _Fields(value, f"history[{number - 1}]")
    # A loss can overflow to infinity in a run that diverged: recorded as it happened.
    return EpochRecord(entry.take("epoch", int, low=1), entry.take("train_loss", float, finite=False),
                       entry.take("train_accuracy", float, low=0, high=1),
                       entry.take("val_loss", float, None, finite=False),
                       entry.take("val_accuracy", float, None, low=0, high=1),
                       entry.take("seconds", float, low=0), entry.take("elapsed", float, low=0),
                       entry.take("lr", float, None, low=0))


def _epoch_json(epoch: EpochRecord) -> dict:
    return {f.name: getattr(epoch, f.name) for f in dataclasses.fields(EpochRecord)}


def _test(value) -> TestResult | None:
    if value is None:
        return None
    test = _Fields(value, "test")
    return TestResult(test.take("loss", float, finite=False), test.take("accuracy", float, low=0, high=1))


def _timings(value) -> Timings | None:
    if value is None:
        return None
    timings = _Fields(value, "timings")
    return Timings(*(timings.take(f.name, float, None, low=0) for f in dataclasses.fields(Timings)))


def _check_consistency(record: RunRecord) -> None:
    """What the types alone cannot say, and a reader would trip on."""
    if record.status not in STATUSES:
        raise CheckpointError(f"status must be one of {', '.join(STATUSES)}, got {record.status!r:.40}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in record.versions.items()):
        raise CheckpointError("versions must map each library's name to its version")
    epochs = [h.epoch for h in record.history]
    if epochs != list(range(1, len(epochs) + 1)):
        raise CheckpointError("history must list the epochs 1, 2, 3... in order")
    if len(epochs) > record.config.epochs:
        raise CheckpointError(f"history has {len(epochs)} epochs but the run planned {record.config.epochs}")
    if record.best_epoch is not None and record.best_epoch > len(epochs):
        raise CheckpointError(f"best_epoch is {record.best_epoch} but the history has {len(epochs)} epochs")


# ---------------------------------------------------------------------------------------------
# Files


def default_runs_dir() -> Path:
    # An empty setting is no setting: Path("") would be the working directory.
    return Path(os.environ.get("KMNIST_RUNS_DIR") or "checkpoints")


def runs_dir_problem(runs_dir: Path) -> str | None:
    """Why the runs folder cannot hold runs (a file, a path too long...); None when it can, or
    does not exist yet (the first run makes it)."""
    try:
        if runs_dir.is_dir() or not runs_dir.exists():
            return None
        return f"The runs folder {runs_dir} is a file, not a folder: set another runs folder."
    except OSError as error:  # a name too long, a loop of links
        return f"The runs folder {runs_dir} cannot be used ({error.strerror or error})."


# The models that ship with the app are part of the install, not of the user's runs folder:
# listed wherever the runs folder is ($KMNIST_SHIPPED_DIR moves them, for tests and packagers).
INSTALL_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED_PREFIX = "shipped-"


def shipped_dir() -> Path:
    return Path(os.environ.get("KMNIST_SHIPPED_DIR", INSTALL_CHECKPOINTS))


MAX_ID_DATASET_CHARS = 40  # a folder's name is up to 255 bytes, and the id must fit in one


def new_run_id(config: TrainConfig) -> str:
    name = Path(config.dataset).name.lower() if config.dataset else ""
    # Letters, digits, - _ . only: a name's spaces, newlines and control characters stay out of the folder's name.
    dataset = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:MAX_ID_DATASET_CHARS] or "data"
    return f"{datetime.now():%Y%m%d-%H%M%S}-{dataset}-{config.arch}-{secrets.token_hex(2)}"


def now_iso() -> str:
    # Milliseconds: runs of a quick sweep start within the same second and list in order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _temporary(path: Path) -> Path:
    # Host and pid in the name tell a later scan whether the writer is still alive.
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all: the one writer of every file in a run folder
    (and of the class gallery's). The folder is not made here: a run's folder deleted while it
    trains must stay deleted."""
    tmp = _temporary(path)
    # Mode 0666 less the umask, as for any file the user makes (mkstemp's 0600 hid shared and
    # shipped runs from the other users of a classroom server).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)  # and the rename survives a power cut


def _fsync_folder(folder: Path) -> None:
    try:
        _fsync(folder)
    except OSError:  # some filesystems cannot fsync a folder; renames are atomic all the same
        pass


def write_record(path: Path, record: RunRecord) -> None:
    atomic_write(path, json.dumps(record.to_json(), indent=1, ensure_ascii=False).encode("utf-8"))


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, safetensors_bytes(state, metadata=metadata))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries a killed save left in a run folder; those of a live writer stay."""
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for path in candidates:
        if _stale(path):
            try:
                path.unlink()
                removed.append(path)
            except OSError:  # gone already, or a folder we may only read
                pass
    return removed


def _stale(path: Path) -> bool:
    writer = _writer(path)
    if writer is not None and writer[0] == socket.gethostname():
        return writer[1] != os.getpid() and not _process_alive(*writer)
    try:
        return time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS
    except OSError:
        return False


def _writer(path: Path) -> tuple[str, int] | None:
    """(host, pid) of the process that made a temporary (see _temporary); None for other names."""
    for target in (WEIGHTS, RECORD):
        prefix = f".{target}."
        if path.name.startswith(prefix):
            parts = path.name[len(prefix):-len(".tmp")].rsplit(".", 2)
            if len(parts) == 3 and parts[1].isdigit():
                return parts[0], int(parts[1])
    return None


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    """A run folder and its record."""
    path: Path
    record: RunRecord
    saved_name: str = field(default="", repr=False, compare=False)  # the name on disk when last read or saved

    def __post_init__(self):
        self.saved_name = self.record.name

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return self.record.name or self.id

    @property
    def config(self) -> TrainConfig:
        return self.record.config

    @property
    def owner(self) -> str:
        """Who started it in a class; "" for a run of the lone user, the command line or the install."""
        return self.record.owner

    @property
    def display_name(self) -> str:
        """The name people read: the one given, else for a class's run who made what and when
        ("Aiko's resnet on Kuzushiji-MNIST, 14:03"), else the id (which the CLI takes)."""
        r = self.record
        if r.name or not r.owner:
            return self.name
        moment = datetime.fromisoformat(r.created).astimezone() if r.created else None
        return (f"{r.owner}'s {r.config.arch} on {r.dataset.display_name}"
                + (f", {moment:%H:%M}" if moment else ""))

    @property
    def status(self) -> str:
        status = self.record.status
        # A run still marked "running" whose process is gone was killed mid-training.
        if status == "running" and not _process_alive(self.record.host, self.record.pid, self.record.process_start):
            return "interrupted"
        return status

    @property
    def reason(self) -> str:
        return self.record.reason

    @property
    def test(self) -> TestResult | None:
        return self.record.test

    @property
    def test_accuracy(self) -> float | None:
        return self.record.test.accuracy if self.record.test is not None else None

    @property
    def shipped(self) -> bool:
        return self.record.shipped

    @property
    def attribution(self) -> str:
        """The credit line its dataset's licence asks for ("" for none); records older than the
        field get the registry's."""
        name = self.record.dataset.name
        return self.record.attribution or (DATASETS[name].attribution if name in DATASETS else "")

    @property
    def is_complete(self) -> bool:
        """Trained to its last epoch and tested: a model to draw with and to evaluate."""
        return self.status == "finished" and self.record.test is not None

    @property
    def caveat(self) -> str:
        """What this run's weights are when it is not complete, in plain words ("" when it is)."""
        r = self.record
        if self.is_complete:
            return ""
        if self.status == "running":
            return "still training"
        if not self.has_weights:
            return f"{r.reason or self.status}: no weights kept"
        if r.best_epoch is None:  # stopped inside its first epoch: weights after a few steps
            return f"{r.reason or self.status}: weights never validated"
        return (f"{self.status} after {len(r.history)} of {r.config.epochs} epochs: "
                f"the weights of epoch {r.best_epoch}, never tested")

    @property
    def class_names(self) -> list[str]:
        return self.record.dataset.class_names

    @property
    def normalization(self) -> Normalization:
        return self.record.normalization

    @property
    def has_weights(self) -> bool:
        return (self.path / WEIGHTS).is_file()

    def save(self) -> None:
        """Write the record. RunDeleted when its folder has gone; a name given on disk since
        the last save (a rename while it trains) is kept, unless this record's was changed too."""
        self._check_exists()
        if self.record.name == self.saved_name:
            try:
                on_disk = read_record(self.path).name
            except (OSError, CheckpointError):
                on_disk = self.record.name
            self.record.name = on_disk
        write_record(self.path / RECORD, self.record)
        self.saved_name = self.record.name

    def _check_exists(self) -> None:
        if not self.path.is_dir():
            raise RunDeleted(f"the run {self.id} was deleted while it trained")

    def save_model(self, model: torch.nn.Module) -> None:
        self._check_exists()
        save_weights(self.path / WEIGHTS, model, {
            "arch": self.record.config.arch,
            "num_classes": str(len(self.class_names)),
            "run": self.id,
        })


def process_start(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None
    where that cannot be read. A pid is reused (a container's server is always pid 1), its start never."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _process_alive(host: str | None, pid: int | None, started: str | None = None) -> bool:
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start(pid) if started is not None else None
    return now is None or now == started


def mark_interrupted(run: Run, actor: Actor = Actor.local()) -> None:
    """Mark a run that its record says is training as interrupted, for one whose process is gone
    but cannot be told apart (another host's, or a record without its process's start time);
    NotAllowed unless `actor` may (their own run, or the teacher)."""
    check(actor, run.owner, "mark as interrupted", f"the run {run.id}")
    record = run.record
    if record.host == socket.gethostname() and record.pid == os.getpid() and \
            record.process_start == process_start(os.getpid()) and record.status == "running":
        raise CheckpointError(f"Run '{run.id}' is still training in this server: stop it instead.")
    if record.status != "running":
        return
    marked = dataclasses.replace(record, status="interrupted",
                                 reason="marked interrupted by hand: its training process had ended")
    write_record(run.path / RECORD, marked)
    run.record = marked


def create_run(record: RunRecord, runs_dir: Path | None = None) -> Run:
    """A new run folder for `record`, marked as running in this process, and saved. Made under a
    hidden name and renamed once its record is in it: a scan sees the whole run or none of it."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    path = runs_dir / new_run_id(record.config)
    runs_dir.mkdir(parents=True, exist_ok=True)
    staging = runs_dir / f".{path.name}.new"   # scans skip hidden folders
    staging.mkdir()
    record.id, record.status, record.created = path.name, "running", now_iso()
    record.host, record.pid, record.process_start = socket.gethostname(), os.getpid(), process_start(os.getpid())
    write_record(staging / RECORD, record)
    staging.rename(path)
    _fsync_folder(runs_dir)
    live.bump()
    return Run(path, record)


def resolve(run: str | Path, runs_dir: Path | None = None) -> Path:
    """A run id (folder name under runs_dir, or a shipped model's) or a path to a run folder."""
    path = Path(run)
    if path.is_dir():
        return path
    path = (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / str(run)
    shipped = shipped_dir() / str(run)
    if not path.is_dir() and str(run).startswith(SHIPPED_PREFIX) and shipped.is_dir():
        return shipped
    return path


def read_record(path: Path) -> RunRecord:
    """The record of the run folder `path`. FileNotFoundError if it has no run.json (or
    vanished), CheckpointError if that is unreadable or malformed."""
    content = _read_regular(path / RECORD, MAX_RECORD_BYTES)
    if content is None:
        raise CheckpointError(f"Run '{path.name}': {RECORD} is not a regular file (a pipe, a device or a link to "
                              "one): it is not a record.")
    if len(content) > MAX_RECORD_BYTES:
        raise CheckpointError(f"Run '{path.name}': {RECORD} is more than {MAX_RECORD_BYTES / 2**20:.0f} MB, far "
                              "more than a run's record: it is not one.")
    try:
        value = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        # RecursionError: JSON nested thousands of levels deep.
        raise CheckpointError(f"Run '{path.name}': {RECORD} is corrupt, not valid JSON ({type(error).__name__}: "
                              f"{str(error)[:80]}).") from None
    try:
        return RunRecord.from_json(value)
    except CheckpointError as error:
        raise CheckpointError(f"Run '{path.name}': {RECORD} is malformed: {error}.") from None


def _read_regular(path: Path, limit: int) -> bytes | None:
    """Up to limit + 1 bytes of `path`; None when it is not a regular file. Opened without
    blocking and checked before reading: a FIFO would wait forever for a writer, and a link to
    /dev/zero never ends (st_size is 0 for both)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_run(run: str | Path, runs_dir: Path | None = None) -> Run:
    """The run with this id or path, with its own copy of the record."""
    path = resolve(run, runs_dir)
    try:
        return Run(path, read_record(path))
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"Run '{Path(run).name}' not found: there is no {path / RECORD}.") from None
    except OSError as error:
        raise CheckpointError(f"Run '{path.name}': {RECORD} cannot be read ({error.strerror or error}).") from None


def cache_key(run: Run) -> tuple[str, int, int]:
    """What identifies a run's trained model for a cache: its folder and the version of its
    weights (each save replaces the file, so its mtime and size change)."""
    try:
        stat = (run.path / WEIGHTS).stat()
    except OSError:
        raise CheckpointError(f"Run '{run.id}' has no saved weights.") from None
    return str(run.path), stat.st_mtime_ns, stat.st_size


def load_model(run: Run, device: str | torch.device = "cpu") -> models.Classifier:
    """Build the run's architecture and load its weights, refusing anything that does not fit."""
    weights = run.path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"Run '{run.id}' has no saved weights ({run.status}: {run.reason}).".rstrip(": ."))
    config = run.config
    try:
        model = models.build(config.arch, num_classes=len(run.class_names), dropout=config.dropout, width=config.width)
    except ValueError as error:
        raise CheckpointError(f"Run '{run.id}': {error}") from error
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"Run '{run.id}': {WEIGHTS} is corrupt or truncated ({error}).") from error
    expected = model.state_dict()
    whole = next((name for name, tensor in state.items() if name in expected and
                  expected[name].is_floating_point() and not tensor.is_floating_point()), None)
    if whole is not None:  # copied into the model they would become a near-all-zero model that answers class 0
        raise CheckpointError(f"Run '{run.id}': {WEIGHTS} holds {str(state[whole].dtype).removeprefix('torch.')} "
                              f"weights ({whole}); a model's weights are floating-point numbers (float32, float16 "
                              f"or bfloat16).")
    broken = next((name for name, tensor in state.items()
                   if tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)
    if broken is not None:
        raise CheckpointError(f"Run '{run.id}': its weights hold NaN or infinite values ({broken}): the training "
                              "diverged before they were saved. Train it again with a lower learning rate.")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"Run '{run.id}': the weights do not fit architecture '{config.arch}' with "
            f"{len(run.class_names)} classes ({first[0].strip()}).") from error
    return model.to(device).eval()


class _RecordCache:
    """The records scan_runs has parsed, by folder, with the run.json version they came from
    (mtime, size and inode: every save renames a new file into place). A page that lists
    runs every second then re-reads only what changed. Bounded: least recently used first out."""

    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict[Path, tuple[tuple, RunRecord | CheckpointError]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path, version: tuple):
        with self.lock:
            found = self.entries.get(path)
            if found is None or found[0] != version:
                return None
            self.entries.move_to_end(path)
            return found[1]

    def put(self, path: Path, version: tuple, value) -> None:
        with self.lock:
            self.entries[path] = (version, value)
            self.entries.move_to_end(path)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


MAX_CACHED_RECORDS = 256
_scanned = _RecordCache(MAX_CACHED_RECORDS)


def _run_folders(runs_dir: Path) -> list[Path]:
    """The user's run folders, then the install's shipped ones (once, however the runs folder
    is set; a user's folder of the same name as a shipped one gives way to the install's)."""
    try:
        folders = sorted(p for p in runs_dir.iterdir() if not p.name.startswith(".") and p.name != GALLERY_FOLDER)
    except OSError:  # no runs folder (yet), or it went away
        folders = []
    install = shipped_dir()
    try:
        if install.resolve() == runs_dir.resolve():
            return folders
        shipped = sorted(p for p in install.iterdir() if p.name.startswith(SHIPPED_PREFIX))
    except OSError:  # an install without shipped models
        return folders
    names = {p.name for p in shipped}
    return [p for p in folders if p.name not in names] + shipped


def scan_runs(runs_dir: Path | None = None) -> tuple[list[Run], list[str]]:
    """All readable runs of the runs folder and the install's shipped models, newest first,
    and one message for each broken folder. A folder deleted while the scan runs is simply
    not listed. The records are shared between scans: treat them as read-only (load_run
    gives a run of its own)."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs, problems = [], [problem for problem in [runs_dir_problem(runs_dir)] if problem]
    for path in _run_folders(runs_dir):
        try:
            stat = (path / RECORD).stat()
        except NotADirectoryError:
            continue  # a file beside the runs
        except FileNotFoundError:
            if path.is_dir():
                problems.append(f"Run '{path.name}' has no {RECORD}.")
            continue
        except OSError as error:
            problems.append(f"Run '{path.name}': {RECORD} cannot be read ({error.strerror or error}).")
            continue
        version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        found = _scanned.get(path, version)
        if found is None:
            try:
                found = read_record(path)
            except FileNotFoundError:
                continue  # deleted since its stat
            except CheckpointError as error:
                found = error
            except OSError as error:
                found = CheckpointError(f"Run '{path.name}': {RECORD} cannot be read ({error.strerror or error}).")
            _scanned.put(path, version, found)
            remove_stale_temporaries(path)
        if isinstance(found, CheckpointError):
            problems.append(str(found))
        else:
            runs.append(Run(path, found))
    runs.sort(key=lambda r: r.record.created, reverse=True)
    return runs, problems


def list_runs(runs_dir: Path | None = None) -> list[Run]:
    runs, problems = scan_runs(runs_dir)
    for problem in problems:
        log.warning("skipping a broken run: %s", problem)
    return runs


def complete_first(runs: list[Run]) -> list[Run]:
    """The runs in the same order, but the complete ones before those stopped, failed or partial."""
    return sorted(runs, key=lambda run: not run.is_complete)


def best_run(runs: list[Run], dataset: str | None = None) -> Run | None:
    """The model a page should open on: the most accurate complete run of `dataset` (a shipped
    flagship until the user trains a better one), else the most accurate complete run of any
    dataset, else the first run given (None for none). Ties go to the first listed."""
    complete = [run for run in runs if run.is_complete]
    preferred = [run for run in complete if run.record.dataset.name == dataset] or complete
    best = max(preferred, key=lambda run: run.test_accuracy, default=None)
    return best if best is not None else next(iter(runs), None)


def rename_run(run: Run, name: str, actor: Actor = Actor.local()) -> None:
    """Give the run a display name; NotAllowed unless `actor` may (their own run, or the teacher)."""
    if run.shipped:
        raise CheckpointError(f"Run '{run.id}' is a shipped model, part of the install: it cannot be renamed.")
    check(actor, run.owner, "rename", f"the run {run.id}")
    if not (run.path / RECORD).is_file():
        raise CheckpointError(f"Run '{run.id}' no longer exists on disk.")
    renamed = dataclasses.replace(run.record, name=name.strip())  # a scan's record is shared: not changed in place
    write_record(run.path / RECORD, renamed)
    run.record, run.saved_name = renamed, renamed.name
    live.note_run(run.id, "renamed", actor.label, renamed.name)


def delete_run(run: Run, actor: Actor = Actor.local()) -> None:
    """Remove the run's folder; NotAllowed unless `actor` may (their own run, or the teacher)."""
    if run.shipped:
        raise CheckpointError(f"Run '{run.id}' is a shipped model and cannot be deleted.")
    check(actor, run.owner, "delete", f"the run {run.id}")
    if run.status == "running":
        raise CheckpointError(f"Run '{run.id}' is still training: stop it first.")
    if run.path.exists():  # already gone from disk: nothing left to delete
        shutil.rmtree(run.path)
    live.note_run(run.id, "deleted", actor.label, run.display_name)


def untidy(found: list[Run]) -> list[Run]:
    """What a tidy-up would remove: the stopped, failed or interrupted runs students started
    (those with an owner: not the teacher's, nothing shipped)."""
    return [run for run in found if run.owner and not run.shipped and run.status in ("stopped", "failed", "interrupted")]


def tidy_up(actor: Actor, runs_dir: Path | None = None) -> list[str]:
    """The teacher's clean sweep: delete every run `untidy` lists; returns their names.
    NotAllowed for anyone but the teacher."""
    require_teacher(actor, "tidy up the students' runs")
    deleted = []
    for run in untidy(list_runs(runs_dir)):
        try:
            delete_run(run, actor)
        except (CheckpointError, OSError) as error:
            log.warning("tidy up: %s", error)
        else:
            deleted.append(run.display_name)
    return deleted
