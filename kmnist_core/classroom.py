"""How much one user may ask of the machine: the class limits the teacher sets, and the
bounds every submission keeps, class or not.

With a class key, a student's submission must fit the teacher's `ClassLimits`: whether
students may train at all, the epochs, the model's training memory (parameters and batch,
through `training_memory_bytes`), the jobs a student has waiting or training (a sweep
counts as one), and the runs in a sweep. Without a key, and for the teacher, only the
machine's bounds apply: no single job may need more memory than the machine has free, and
a sweep has at most MAX_SWEEP_RUNS runs. A refusal is a `LimitExceeded` (a ValueError, as
config validation's are) whose one line names the limit and what is allowed.

The limits are a small JSON file in the runs folder, written atomically like a run's
record; only the teacher may change them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import live, models
from .access import Actor, require_teacher
from .config import TrainConfig
from .runs import atomic_write, default_runs_dir

log = logging.getLogger(__name__)

LIMITS_FILE = ".class-limits.json"  # a dot-name: the run listings skip it
MAX_SWEEP_RUNS = 200                 # any sweep, class or not
# Measured on the CPU (one AdamW step of resnet_small at batch 512, of lenet at 2048), the
# process grew 1.6-3.3 times the activations' size: gradients, saved inputs, workspaces.
ACTIVATION_FACTOR = 3
PARAMETER_COPIES = 4                 # weights, their gradients, and the optimiser's two moments


class LimitExceeded(ValueError):
    """A submission beyond a limit; the message names it and what is allowed."""


@dataclass(frozen=True)
class ClassLimits:
    """What a student may ask for. The teacher's own jobs keep only the machine's bounds."""
    students_may_train: bool = True
    max_epochs: int = 20
    max_memory_mb: int = 1024        # a job's training memory, from training_memory_bytes
    max_active_jobs: int = 1         # jobs waiting or training per student; a sweep counts as one
    max_sweep_runs: int = 12

    def validate(self) -> "ClassLimits":
        for name, low, high in (("max_epochs", 1, 1000), ("max_memory_mb", 16, 1_000_000),
                                ("max_active_jobs", 1, 100), ("max_sweep_runs", 1, MAX_SWEEP_RUNS)):
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        if type(self.students_may_train) is not bool:
            raise ValueError("students_may_train must be true or false")
        return self


def limits_path(runs_dir: Path | None = None) -> Path:
    return Path(runs_dir if runs_dir is not None else default_runs_dir()) / LIMITS_FILE


def load_limits(runs_dir: Path | None = None) -> ClassLimits:
    """The teacher's limits, or the defaults when none were saved (or the file is unreadable:
    logged, and the defaults are the safe side)."""
    path = limits_path(runs_dir)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(ClassLimits)}
        return ClassLimits(**{k: v for k, v in values.items() if k in known}).validate()
    except FileNotFoundError:
        return ClassLimits()
    except (OSError, ValueError, TypeError, AttributeError) as error:
        log.warning("class limits in %s ignored (%s): using the defaults", path, error)
        return ClassLimits()


def save_limits(limits: ClassLimits, actor: Actor, runs_dir: Path | None = None) -> None:
    """Store the limits for every session; NotAllowed for anyone but the teacher."""
    require_teacher(actor, "change the class limits")
    limits.validate()
    path = limits_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(dataclasses.asdict(limits), indent=1).encode("utf-8"))
    live.bump()


@functools.lru_cache(maxsize=64)
def _footprint(arch: str, width: float, num_classes: int) -> tuple[int, int]:
    """(parameters, activation values per image) of a preset, traced on the meta device:
    nothing is allocated, so a huge width costs no memory to measure."""
    with torch.device("meta"):
        model = models.build(arch, num_classes, width=width)
    activations = sum(math.prod(row.output_shape) for row in models.summarize(model))
    return models.count_parameters(model), activations


def training_memory_bytes(config: TrainConfig, num_classes: int = 10) -> int:
    """About how much memory one training step of `config` needs (a little more than measured)."""
    parameters, activations = _footprint(config.arch, config.width, num_classes)
    batch = config.batch_size
    return 4 * (PARAMETER_COPIES * parameters + ACTIVATION_FACTOR * activations * batch + 2 * 28 * 28 * batch)


def free_memory_bytes() -> int | None:
    """The memory the machine can still give (MemAvailable), None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def check_machine(config: TrainConfig) -> None:
    """Every job's bound: it must fit the memory the machine has free now."""
    free = free_memory_bytes()
    needed = training_memory_bytes(config)
    if free is not None and needed > free:
        raise LimitExceeded(f"This model at batch {config.batch_size} needs about {_mb(needed)} to train, more than "
                            f"the {_mb(free)} this machine has free: lower the batch size or the width.")


def check_submission(configs: list[TrainConfig], actor: Actor, active_submissions: int,
                     limits: ClassLimits | None) -> None:
    """Raise LimitExceeded unless `actor` may queue `configs` (one job, or one sweep's runs)
    while already having `active_submissions` jobs or sweeps waiting or training. `limits` are
    the class's (None without a class key); they bind students only."""
    if len(configs) > MAX_SWEEP_RUNS:
        raise LimitExceeded(f"A sweep of {len(configs)} runs is too many: at most {MAX_SWEEP_RUNS} runs at once.")
    student = limits is not None and not actor.is_teacher
    if student:
        _check_class(configs, active_submissions, limits)
    for config in {(c.arch, c.width, c.batch_size): c for c in configs}.values():
        if student and training_memory_bytes(config) > limits.max_memory_mb * 2**20:
            raise LimitExceeded(f"Class limit: a model's training memory is at most {limits.max_memory_mb:,} MB; "
                                f"{config.arch} at width {config.width:g} and batch {config.batch_size} needs about "
                                f"{_mb(training_memory_bytes(config))}. Lower the batch size or the width.")
        check_machine(config)


def _check_class(configs: list[TrainConfig], active_submissions: int, limits: ClassLimits) -> None:
    if not limits.students_may_train:
        raise LimitExceeded("Class limit: the teacher has paused training for students.")
    if len(configs) > limits.max_sweep_runs:
        raise LimitExceeded(f"Class limit: a sweep has at most {limits.max_sweep_runs} runs; this one has "
                            f"{len(configs)}.")
    if active_submissions >= limits.max_active_jobs:
        raise LimitExceeded(f"Class limit: {limits.max_active_jobs} job(s) or sweep(s) waiting or training per "
                            f"student, and you have {active_submissions}: wait for yours to end, or stop it.")
    longest = max(config.epochs for config in configs)
    if longest > limits.max_epochs:
        raise LimitExceeded(f"Class limit: at most {limits.max_epochs} epochs per run; you asked for {longest}.")
