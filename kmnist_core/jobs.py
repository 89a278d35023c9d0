"""Background training jobs: a queue per device, one job running at a time on each.

The app keeps one JobManager per process, so a job outlives page switches,
reloads and browser tabs. Training threads never touch the UI: they write
events into their Job under its lock, and views read `job.snapshot()`.

The interface to the work itself is one function, `executor(config, on_event,
stop, runs_dir) -> Run` (by default `training.train`), so another executor could
run the same jobs elsewhere without the manager changing.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import training
from .config import TrainConfig
from .data import DatasetUnavailable, DownloadStopped

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
MAX_STEP_POINTS = 5000  # per-step losses kept for the live chart (older ones thinned)


@dataclass(eq=False)  # jobs are compared by identity
class Job:
    id: str
    config: TrainConfig
    device: str
    status: str = "queued"            # queued, running, finished, stopped, failed, cancelled
    phase: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    run_id: str | None = None
    epochs_total: int = 0
    steps_total: int = 0
    step: int = 0
    epoch: int = 0
    images_per_second: float = 0.0
    elapsed: float = 0.0
    lr: float = 0.0
    steps: list[tuple[int, float]] = field(default_factory=list)   # (step, loss)
    history: list[dict] = field(default_factory=list)             # one dict per epoch
    message: str = ""                 # why it failed or stopped, in plain words
    test_accuracy: float | None = None
    test_loss: float | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        return self.step / self.steps_total if self.steps_total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.step or not self.steps_total:
            return None
        return self.elapsed / self.step * (self.steps_total - self.step)

    def snapshot(self) -> "Job":
        """A consistent copy for a view to read while training goes on."""
        with self.lock:
            copied = copy.copy(self)
            copied.steps, copied.history = list(self.steps), [dict(h) for h in self.history]
        return copied

    def on_event(self, event) -> None:
        with self.lock:
            if isinstance(event, training.Phase):
                self.phase = event.name
            elif isinstance(event, training.RunStarted):
                self.run_id, self.epochs_total = event.run_id, event.epochs
                self.steps_total = event.epochs * event.steps_per_epoch
            elif isinstance(event, training.Step):
                self.step, self.epoch, self.lr = event.step, event.epoch, event.lr
                self.images_per_second, self.elapsed = event.images_per_second, event.elapsed
                self.steps.append((event.step, event.loss))
                if len(self.steps) > MAX_STEP_POINTS:
                    self.steps = self.steps[::2]
            elif isinstance(event, training.Epoch):
                self.history.append({"epoch": event.epoch, "train_loss": event.train_loss,
                                     "train_accuracy": event.train_accuracy, "val_loss": event.val_loss,
                                     "val_accuracy": event.val_accuracy, "seconds": event.seconds,
                                     "elapsed": event.elapsed})


Executor = Callable[..., object]


class JobManager:
    def __init__(self, runs_dir=None, executor: Executor = training.train):
        self.runs_dir = runs_dir
        self.executor = executor
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._workers: dict[str, threading.Thread] = {}

    def submit(self, config: TrainConfig) -> Job:
        """Queue a run; raises ValueError at once for a configuration no run can use."""
        config.validate()
        device = str(training.pick_device(config.device))
        with self._changed:
            job = Job(f"job-{next(self._ids)}", config, device)
            self._jobs[job.id] = job
            if device not in self._workers or not self._workers[device].is_alive():
                self._workers[device] = threading.Thread(target=self._work, args=(device,),
                                                         name=f"kmnist-jobs-{device}", daemon=True)
                self._workers[device].start()
            self._changed.notify_all()
        return job

    def submit_many(self, configs: list[TrainConfig]) -> list[Job]:
        for config in configs:
            config.validate()  # all or nothing
        return [self.submit(config) for config in configs]

    def jobs(self) -> list[Job]:
        """Every job of this process, newest first."""
        with self._changed:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.active]

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start on its device, None unless queued."""
        with self._changed:
            queued = sorted((j for j in self._jobs.values() if j.status == "queued" and j.device == job.device),
                            key=lambda j: j.created)
        return queued.index(job) + 1 if job in queued else None

    def stop(self, job_id: str) -> None:
        """Stop a running job (it keeps its best checkpoint) or cancel a queued one."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.stop_requested.set()
            if job.status == "queued":
                job.status, job.ended, job.message = "cancelled", time.time(), "cancelled before it started"
            self._changed.notify_all()

    def stop_group(self, group: str) -> None:
        """Stop every unfinished job of a sweep; its finished runs stay."""
        for job in self.jobs():
            if job.config.group == group and job.active:
                self.stop(job.id)

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until the job has ended (for scripts and tests); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while job.active:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _next(self, device: str) -> Job:
        with self._changed:
            while True:
                queued = [j for j in self._jobs.values() if j.status == "queued" and j.device == device]
                if queued:
                    job = min(queued, key=lambda j: j.created)
                    job.status, job.started = "running", time.time()
                    return job
                self._changed.wait()

    def _work(self, device: str) -> None:
        while True:
            job = self._next(device)
            self._run(job)
            with self._changed:
                self._changed.notify_all()

    def _run(self, job: Job) -> None:
        try:
            run = self.executor(job.config, on_event=job.on_event, stop=job.stop_requested, runs_dir=self.runs_dir)
            status, message = run.status, run.record.get("reason", "")
            test = run.record.get("test") or {}
            job.test_accuracy, job.test_loss = test.get("accuracy"), test.get("loss")
        except DownloadStopped as error:  # Stop pressed while the dataset was downloading
            status, message = "stopped", str(error)
        except training.Stopped as reason:  # before training began: there is no run
            status, message = "stopped", str(reason)
        except (DatasetUnavailable, ValueError) as error:
            status, message = "failed", str(error)
        except Exception as error:  # the UI shows the message; the traceback goes to the log
            log.exception("job %s failed", job.id)
            status, message = "failed", f"{type(error).__name__}: {error}"
        with job.lock:
            job.status, job.message, job.ended = status, message, time.time()
