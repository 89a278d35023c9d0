"""Background training jobs: a queue per device, one job running at a time on each.

One at a time matters most on the CPU: two trainings there share the cores, and two
processes' worth of threads on two cores run each other ten to twenty times slower.
A device has one name however it was asked for (cpu and cpu:0, cuda and cuda:0), and
its lock is held while a job trains on it, so a timing probe (estimates.py) can check
that the device is idle and keep jobs off it while it measures.

The app keeps one JobManager per process, so a job outlives page switches,
reloads and browser tabs. Training threads never touch the UI: they write
events into their Job under its lock, and views read `job.snapshot()`.

The interface to the work itself is one function, `executor(config, on_event,
stop, runs_dir) -> Outcome` (by default `training.train`, whose Run is one), so
another executor could run the same jobs elsewhere without the manager changing.
An executor that queues jobs outside this process (cluster.py's, on a Ray cluster)
comes with `queue_of`: then every job goes to it at once, on a thread of its own, and
stays queued until the executor reports its first event.

Locks: the manager's `_lock` guards its registry of jobs and workers; each job's
`lock` guards that job's changing state. Code that needs both takes the manager's
first, never the other way round.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from . import classroom, live, training
from .access import Actor, check
from .config import TrainConfig
from .data import DatasetUnavailable, DownloadStopped
from .runs import EpochRecord, TestResult

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
MAX_STEP_POINTS = 5000  # per-step losses kept for the live chart (older ones thinned)
MAX_ENDED_JOBS = 100    # ended jobs remembered, newest first: a server running all term stays bounded


class Outcome(Protocol):
    """What a job needs from its executor's result (a runs.Run is one)."""
    status: str                # finished, stopped or failed
    reason: str                # why it stopped or failed
    test: TestResult | None


@dataclass(eq=False)  # jobs are compared by identity
class Job:
    # Set at submission, never changed:
    id: str
    config: TrainConfig
    device: str
    number: int = 0                   # submission order
    owner: str = ""                   # the student who submitted it ("" for the teacher, or the lone user)
    created: float = field(default_factory=time.time)
    # Guarded by `lock` (read them from other threads through snapshot()):
    status: str = "queued"            # queued, running, finished, stopped, failed, cancelled
    phase: str = ""
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
    history: list[EpochRecord] = field(default_factory=list)
    message: str = ""                 # why it failed or stopped, in plain words
    test: TestResult | None = None
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
            copied.steps, copied.history = list(self.steps), list(self.history)  # the rows are frozen
        return copied

    def is_active(self) -> bool:
        """Whether it is queued or running, read under its lock (for the live job; a snapshot
        can use `active`)."""
        with self.lock:
            return self.status in ACTIVE

    def on_event(self, event) -> None:
        with self.lock:
            if self.status == "queued":  # an executor with a queue of its own has started it (cluster.py)
                self.status, self.started = "running", time.time()
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
                self.history.append(event.record)

    def _update(self, **changes) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)


Executor = Callable[..., Outcome]


def device_key(name: str) -> str:
    """The one name of the device a config's `device` setting trains on: "cpu" for cpu or
    cpu:0, "cuda:0" for cuda or cuda:0, "mps"."""
    import torch
    device = training.pick_device(name)
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type  # a process has one CPU device and one MPS device, whatever the index


class JobManager:
    def __init__(self, runs_dir=None, executor: Executor = training.train,
                 queue_of: Callable[[TrainConfig], str] | None = None):
        """`queue_of`, for an executor that queues jobs itself: the name of the queue a config
        waits in there (it stands for the device in Job.device); raises ValueError for a config
        it can never run."""
        self.runs_dir = runs_dir
        self.executor = executor
        self.queue_of = queue_of
        self._lock = threading.Condition()  # guards _jobs and _workers; notified whenever a job ends
        self._jobs: dict[str, Job] = {}
        self._numbers = itertools.count(1)
        self._workers: dict[str, threading.Thread] = {}
        self._busy: dict[str, threading.Lock] = {}  # per device: held while a job (or a probe) uses it
        self._admitting = threading.Lock()  # a limit's check and the queueing it allows are one step

    def submit(self, config: TrainConfig, actor: Actor = Actor.local()) -> Job:
        """Queue a run for `actor`; raises ValueError at once for a configuration no run can
        use, and classroom.LimitExceeded (a ValueError) for one beyond a limit."""
        config.validate()
        with self._admitting:
            self._check_limits([config], actor)
            return self._queue(config, actor)

    def _queue(self, config: TrainConfig, actor: Actor) -> Job:
        config = dataclasses.replace(config, owner=actor.owner)  # the run records it: no one can claim another's
        device = self.queue_of(config) if self.queue_of else device_key(config.device)
        with self._lock:
            number = next(self._numbers)
            job = Job(f"job-{number}", config, device, number, owner=actor.owner)
            self._jobs[job.id] = job
            if self.queue_of:
                threading.Thread(target=self._follow, args=(job,), name=f"kmnist-{job.id}", daemon=True).start()
            elif device not in self._workers or not self._workers[device].is_alive():
                self._workers[device] = threading.Thread(target=self._work, args=(device,),
                                                         name=f"kmnist-jobs-{device}", daemon=True)
                self._workers[device].start()
            self._forget_old_jobs()
            self._lock.notify_all()
        live.bump()
        return job

    def submit_many(self, configs: list[TrainConfig], actor: Actor = Actor.local()) -> list[Job]:
        """Queue a sweep's runs, all or none."""
        for config in configs:
            config.validate()
        with self._admitting:
            self._check_limits(configs, actor)
            return [self._queue(config, actor) for config in configs]

    def _check_limits(self, configs: list[TrainConfig], actor: Actor) -> None:
        """The machine's bounds for everyone, and the class limits for a student."""
        limits = None if actor.is_teacher else classroom.load_limits(self.runs_dir)
        mine = {job.config.group or job.id for job in self.active() if job.owner == actor.owner}
        classroom.check_submission(configs, actor, len(mine), limits)

    def jobs(self) -> list[Job]:
        """Every job of this process still remembered, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.number, reverse=True)

    def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown id or an ended job forgotten since (see MAX_ENDED_JOBS)."""
        with self._lock:
            return self._jobs.get(job_id)

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.is_active()]

    def running_on(self, device: str) -> Job | None:
        """The job training on the device now (see device_key), if any."""
        return next((j for j in self.jobs() if j.device == device and j.snapshot().status == "running"), None)

    @contextlib.contextmanager
    def device_if_idle(self, device: str):
        """Yields True, with no job able to start on the device until the block ends, when no job
        is training on it; else yields False at once. For measuring the device undisturbed."""
        lock = self._device_lock(device)
        idle = lock.acquire(blocking=False)
        try:
            yield idle
        finally:
            if idle:
                lock.release()

    def _device_lock(self, device: str) -> threading.Lock:
        with self._lock:
            return self._busy.setdefault(device, threading.Lock())

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start on its device, None unless queued (a snapshot will do)."""
        with self._lock:
            queued = [j.id for j in self._queued(job.device)]
        return queued.index(job.id) + 1 if job.id in queued else None

    def stop(self, job_id: str, actor: Actor = Actor.local()) -> None:
        """Stop a running job (it keeps its best checkpoint) or cancel a queued one; NotAllowed
        unless `actor` may (access.check: their own job, or the teacher)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            check(actor, job.owner, "stop", job.id)
            job.stop_requested.set()
            with job.lock:
                if job.status == "queued":  # the worker picks jobs under the manager's lock: it cannot start now
                    job.status, job.ended, job.message = "cancelled", time.time(), "cancelled before it started"
            self._forget_old_jobs()
            self._lock.notify_all()
        live.bump()

    def stop_group(self, group: str, actor: Actor = Actor.local()) -> None:
        """Stop every unfinished job of a sweep, or none if `actor` may not stop one of them;
        its finished runs stay."""
        unfinished = [job for job in self.jobs() if job.config.group == group and job.is_active()]
        for job in unfinished:
            check(actor, job.owner, "stop", f"the sweep {group}")
        for job in unfinished:
            self.stop(job.id, actor)

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until the job has ended (for scripts and tests); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while job.is_active():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def _queued(self, device: str) -> list[Job]:
        """The device's queue in order; the caller holds the manager's lock."""
        queued = []
        for job in self._jobs.values():
            with job.lock:
                if job.status == "queued" and job.device == device:
                    queued.append(job)
        return sorted(queued, key=lambda j: j.number)

    def _forget_old_jobs(self) -> None:
        """Keep the newest MAX_ENDED_JOBS ended jobs; the caller holds the manager's lock."""
        ended = sorted((j for j in self._jobs.values() if not j.is_active()), key=lambda j: j.number)
        for job in ended[:max(0, len(ended) - MAX_ENDED_JOBS)]:
            del self._jobs[job.id]

    def _next(self, device: str) -> Job:
        with self._lock:
            while True:
                queued = self._queued(device)
                if queued:
                    queued[0]._update(status="running", started=time.time())
                    live.bump()
                    return queued[0]
                self._lock.wait()

    def _work(self, device: str) -> None:
        busy = self._device_lock(device)
        while True:
            job = self._next(device)
            with busy:
                self._run(job)
            with self._lock:
                self._forget_old_jobs()
                self._lock.notify_all()
            live.bump()

    def _follow(self, job: Job) -> None:
        """A job of an executor with its own queue, from submission to its end."""
        if not job.stop_requested.is_set():  # else cancelled already, before it was sent
            self._run(job)
        with self._lock:
            self._forget_old_jobs()
            self._lock.notify_all()
        live.bump()

    def _run(self, job: Job) -> None:
        test = None
        try:
            outcome = self.executor(job.config, on_event=job.on_event, stop=job.stop_requested,
                                    runs_dir=self.runs_dir)
            status, message, test = outcome.status, outcome.reason, outcome.test
        except DownloadStopped as error:  # Stop pressed while the dataset was downloading
            status, message = "stopped", str(error)
        except training.Stopped as reason:  # before training began: there is no run
            status, message = "stopped", str(reason)
        except (DatasetUnavailable, ValueError) as error:
            status, message = "failed", str(error)
        except BaseException as error:  # SystemExit too: the job fails, the worker goes on serving the queue
            log.exception("job %s failed", job.id)  # the UI shows the message; the traceback goes to the log
            status, message = "failed", f"{type(error).__name__}: {error}".rstrip(": ")
        job._update(status=status, message=message, test=test, ended=time.time())
