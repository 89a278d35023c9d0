"""Runs on disk: checkpoints/<run-id>/ holds model.safetensors and run.json.

Nothing here unpickles: weights are safetensors, metadata is JSON. Every write
goes to a temporary file that is renamed over the old one, so a process killed
mid-save leaves the previous good file in place.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import models
from .config import TrainConfig
from .data import Normalization

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
RECORD = "run.json"
STATUSES = ("running", "finished", "stopped", "failed", "interrupted")


class CheckpointError(RuntimeError):
    """A run's files are missing, corrupt, or do not fit its architecture."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("KMNIST_RUNS_DIR", "checkpoints"))


def new_run_id(config: TrainConfig) -> str:
    dataset = Path(config.dataset).name.lower() if config.dataset else "data"
    return f"{datetime.now():%Y%m%d-%H%M%S}-{dataset}-{config.arch}-{secrets.token_hex(2)}"


def now_iso() -> str:
    # Milliseconds: runs of a quick sweep start within the same second and list in order.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, record: dict) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
    _atomic_write(path, write)


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


@dataclass
class Run:
    """A run folder and its record (the parsed run.json)."""
    path: Path
    record: dict

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return self.record.get("name") or self.id

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.record["config"])

    @property
    def status(self) -> str:
        status = self.record.get("status", "failed")
        # A run still marked "running" whose process is gone was killed mid-training.
        if status == "running" and not _process_alive(self.record.get("host"), self.record.get("pid")):
            return "interrupted"
        return status

    @property
    def shipped(self) -> bool:
        return bool(self.record.get("shipped"))

    @property
    def class_names(self) -> list[str]:
        return self.record["dataset"]["class_names"]

    @property
    def normalization(self) -> Normalization:
        return Normalization(**self.record["normalization"])

    @property
    def has_weights(self) -> bool:
        return (self.path / WEIGHTS).is_file()

    @property
    def test_accuracy(self) -> float | None:
        return (self.record.get("test") or {}).get("accuracy")

    def save(self) -> None:
        write_json(self.path / RECORD, self.record)

    def save_model(self, model: torch.nn.Module) -> None:
        save_weights(self.path / WEIGHTS, model, {
            "arch": self.record["config"]["arch"],
            "num_classes": str(len(self.class_names)),
            "run": self.id,
        })


def _process_alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_run(record: dict, runs_dir: Path | None = None) -> Run:
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    config = TrainConfig.from_dict(record["config"])
    path = runs_dir / new_run_id(config)
    path.mkdir(parents=True)
    run = Run(path, {"id": path.name, "status": "running", "created": now_iso(),
                     "host": socket.gethostname(), "pid": os.getpid(), **record})
    run.save()
    return run


def resolve(run: str | Path, runs_dir: Path | None = None) -> Path:
    """A run id (folder name under runs_dir) or a path to a run folder."""
    path = Path(run)
    if not path.is_dir():
        path = (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / str(run)
    return path


def load_run(run: str | Path, runs_dir: Path | None = None) -> Run:
    path = resolve(run, runs_dir)
    record_path = path / RECORD
    if not record_path.is_file():
        raise CheckpointError(f"Run '{Path(run).name}' not found: there is no {record_path}.")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        TrainConfig.from_dict(record["config"])
        record["dataset"]["class_names"]
        Normalization(**record["normalization"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"Run '{path.name}': {RECORD} is corrupt or incomplete ({error!r}).") from error
    return Run(path, record)


def load_model(run: Run, device: str | torch.device = "cpu") -> models.Classifier:
    """Build the run's architecture and load its weights, refusing anything that does not fit."""
    weights = run.path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"Run '{run.id}' has no saved weights ({run.status}: {run.record.get('reason', '')}).".rstrip(": ."))
    config = run.config
    try:
        model = models.build(config.arch, num_classes=len(run.class_names), dropout=config.dropout, width=config.width)
    except ValueError as error:
        raise CheckpointError(f"Run '{run.id}': {error}") from error
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"Run '{run.id}': {WEIGHTS} is corrupt or truncated ({error}).") from error
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"Run '{run.id}': the weights do not fit architecture '{config.arch}' with "
            f"{len(run.class_names)} classes ({first[0].strip()}).") from error
    return model.to(device).eval()


def scan_runs(runs_dir: Path | None = None) -> tuple[list[Run], list[str]]:
    """All readable runs, newest first, and one message for each broken folder."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs, problems = [], []
    if not runs_dir.is_dir():
        return runs, problems
    for path in sorted(runs_dir.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            runs.append(load_run(path))
        except CheckpointError as error:
            problems.append(str(error))
    runs.sort(key=lambda r: r.record.get("created", ""), reverse=True)
    return runs, problems


def list_runs(runs_dir: Path | None = None) -> list[Run]:
    runs, problems = scan_runs(runs_dir)
    for problem in problems:
        log.warning("skipping a broken run: %s", problem)
    return runs


def rename_run(run: Run, name: str) -> None:
    if not (run.path / RECORD).is_file():
        raise CheckpointError(f"Run '{run.id}' no longer exists on disk.")
    run.record["name"] = name.strip()
    run.save()


def delete_run(run: Run) -> None:
    if run.shipped:
        raise CheckpointError(f"Run '{run.id}' is a shipped model and cannot be deleted.")
    if run.status == "running":
        raise CheckpointError(f"Run '{run.id}' is still training: stop it first.")
    if run.path.exists():  # already gone from disk: nothing left to delete
        shutil.rmtree(run.path)
