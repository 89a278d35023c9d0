"""Training jobs on a Ray cluster: the job manager's executor when KMNIST_RAY_ADDRESS is set.

Each job is one Ray actor, `Worker`, placed by Ray on a node with room for what it asks:
one GPU for a CUDA job, else CPUS_PER_JOB cores (torch's threads set to match, so jobs
sharing a node do not fight). Every job goes to the cluster as it is submitted (a sweep
fans out at once); it waits in Ray's queue, shown as queued with its place, until Ray
starts its worker.

The app follows each job from a thread of the job manager's (`RayExecutor.__call__`): it
asks the worker for what happened since the last time every POLL_SECONDS (events come
in batches, so 30 jobs do not flood the server) and passes a Stop on at once. The worker
trains into a scratch folder of its own and sends the run's files back whenever the
trainer saves them (at its start, after each epoch, at its end); the app writes them into
its runs folder with runs' atomic writes, weights first and run.json last, as the trainer
does. So a run on the cluster is, on the app's disk, what an in-process run would be: a
record marked running (by the app's process: an app that restarts finds it interrupted),
the best weights so far, and at the end the test result and the novelty statistics.

A worker that dies (its process killed, `ray stop` on its node, the node lost) ends its
job as failed, saying so; its run, if it had begun, keeps its last saved epoch and is
marked failed. Workers are tied to the app's process: if the app stops, its jobs end too.

Ray moves the events and files between the app and its own workers with its own
serialization (trusted processes of one cluster); nothing read from disk is unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayTaskError

from . import data, novelty, runs, training
from .config import TrainConfig
from .jobs import JobManager
from .runs import TestResult

ADDRESS_VARIABLE = "KMNIST_RAY_ADDRESS"          # auto, ray://host:10001, or local (a demo instance)
CPUS_VARIABLE = "KMNIST_RAY_CPUS_PER_JOB"        # cores (and torch threads) of a CPU job; 1 by default
POLL_SECONDS = 0.5                               # how often the app collects a job's events; Stop waits at most this
RUN_FILES = (runs.WEIGHTS, novelty.FILE, runs.RECORD)  # the files of a run, in the order they are written


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be reached."""


@dataclasses.dataclass
class Ended:
    """A job's outcome as the job manager reads it (see jobs.Outcome)."""
    status: str
    reason: str = ""
    test: TestResult | None = None


@dataclasses.dataclass
class Placed:
    """A job's first event: a worker on this node has taken it out of the cluster's queue."""
    host: str
    pid: int


@dataclasses.dataclass
class _Files:
    """A run's files that changed since the worker last sent them, by name."""
    run_id: str
    files: dict[str, bytes]


def connect(address: str, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` ("auto": the one `ray start` made on this machine;
    "ray://host:10001": over Ray Client; "local": a new instance of this machine's cores, for
    a demo). Nodes get kmnist_core from the app; they need requirements.txt installed."""
    if ray.is_initialized():
        return
    package = str(Path(__file__).resolve().parent)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env={"py_modules": [package]})
        else:
            ray.init(address=address, runtime_env={"py_modules": [package]})
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterUnavailable(f"Cannot reach the Ray cluster at {address!r} ({ADDRESS_VARIABLE}): "
                                 f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def job_manager(address: str, runs_dir=None) -> JobManager:
    """A job manager whose jobs train on the cluster at `address` (see connect)."""
    cpus = os.environ.get(CPUS_VARIABLE, "1")
    if not cpus.isdigit():
        raise ValueError(f"{CPUS_VARIABLE} must be a whole number of cores, not {cpus!r:.20}")
    executor = RayExecutor(cpus_per_job=int(cpus))
    connect(address)
    return JobManager(runs_dir, executor=executor, queue_of=executor.queue_of)


@ray.remote(max_concurrency=3, max_restarts=0)  # training, a poll and a stop at the same time
class Worker:
    """Trains one job in its own process on some node, keeping its events until the app asks."""

    def __init__(self, threads: int | None):
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.pending: list = [Placed(socket.gethostname(), os.getpid())]
        self.sent: dict[str, bytes] = {}  # file name -> the digest of what was last sent
        self.run_id: str | None = None
        self.scratch = Path(tempfile.mkdtemp(prefix="kmnist-worker-"))
        if threads:  # the trainer sets torch's threads from it (this process trains this one job)
            os.environ[training.THREADS_VARIABLE] = str(threads)

    def train(self, config: TrainConfig) -> Ended:
        try:
            run = training.train(config, on_event=self._on_event, stop=self.stop_event, runs_dir=self.scratch)
            return Ended(run.status, run.reason, run.test)
        finally:  # the run as it ended, failed ones too
            if self.run_id is not None:
                self._take_files(self.run_id)
            shutil.rmtree(self.scratch, ignore_errors=True)

    def poll(self) -> list:
        """The events and files since the last poll, in order."""
        with self.lock:
            taken, self.pending = self.pending, []
        return taken

    def stop(self) -> None:
        self.stop_event.set()

    def _on_event(self, event) -> None:
        if isinstance(event, (training.RunStarted, training.Epoch)):  # the trainer has just saved the run
            self._take_files(event.run_id if isinstance(event, training.RunStarted) else self.run_id)
        with self.lock:
            self.pending.append(event)

    def _take_files(self, run_id: str) -> None:
        self.run_id = run_id
        changed = {}
        for name in RUN_FILES:
            try:
                content = (self.scratch / run_id / name).read_bytes()
            except FileNotFoundError:
                continue
            digest = hashlib.sha256(content).digest()
            if self.sent.get(name) != digest:
                changed[name], self.sent[name] = content, digest
        if changed:
            with self.lock:
                self.pending.append(_Files(run_id, changed))


class RayExecutor:
    """The job manager's executor for jobs on the cluster (see jobs.py): runs one job on a
    Worker of its own and follows it to its end."""

    def __init__(self, cpus_per_job: int = 1, poll_seconds: float = POLL_SECONDS):
        if cpus_per_job < 1:
            raise ValueError(f"{CPUS_VARIABLE} must be at least 1, got {cpus_per_job}")
        self.cpus_per_job, self.poll_seconds = cpus_per_job, poll_seconds

    def queue_of(self, config: TrainConfig) -> str:
        """The queue the job waits in on the cluster; ValueError when no node could ever run it."""
        kind, amount = ("GPU", 1) if self._wants_gpu(config) else ("CPU", self.cpus_per_job)
        if not any(node["Alive"] and node["Resources"].get(kind, 0) >= amount for node in ray.nodes()):
            raise ValueError(f"No machine of the Ray cluster has {amount} {kind}{'s' if amount > 1 else ''} "
                             f"for a run: " + ("train on the CPU, or add a GPU node (ray start --address ...)."
                                               if kind == "GPU" else f"lower {CPUS_VARIABLE}."))
        return f"cluster {kind}s"

    def __call__(self, config: TrainConfig, on_event, stop: threading.Event, runs_dir=None) -> Ended:
        config, resources, threads = self._placement(config)
        worker = Worker.options(**resources).remote(threads)
        done = worker.train.remote(config)
        mirror = _Mirror(runs_dir)
        try:
            return self._follow(worker, done, on_event, stop, mirror)
        except RayActorError as error:
            reason = _death(error, mirror)
            mirror.fail(reason)
            return Ended("failed", reason)
        except RayTaskError as error:  # the trainer raised: the job manager tells its reasons apart
            mirror.fail(str(error.cause))
            raise error.cause from None
        except BaseException as error:
            mirror.fail(f"{type(error).__name__}: {error}")
            raise
        finally:
            ray.kill(worker)  # its process goes (a worker still queued leaves the queue)

    def _follow(self, worker, done, on_event, stop: threading.Event, mirror: "_Mirror") -> Ended:
        started = stopping = False
        while True:
            finished = bool(ray.wait([done], timeout=0)[0])  # before the poll: then it brings everything
            poll = worker.poll.remote()
            while not ray.wait([poll], timeout=self.poll_seconds)[0]:  # waiting in the cluster's queue
                if stop.is_set() and not started:
                    return Ended("cancelled", "cancelled before it started")
            for item in ray.get(poll):
                started = True
                if isinstance(item, Placed):
                    mirror.node = f"{item.host} (process {item.pid})"
                if isinstance(item, _Files):
                    mirror.write(item)
                    continue
                if isinstance(item, training.RunStarted):
                    item = dataclasses.replace(item, path=str(mirror.path))
                on_event(item)
            if finished:
                return ray.get(done)
            if stopping:
                time.sleep(self.poll_seconds)
            elif stop.wait(self.poll_seconds):
                if not started:
                    return Ended("cancelled", "cancelled before it started")
                worker.stop.remote()
                stopping = True

    def _wants_gpu(self, config: TrainConfig) -> bool:
        return config.device.startswith("cuda") or (
            config.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)

    def _placement(self, config: TrainConfig) -> tuple[TrainConfig, dict, int | None]:
        """The config as the worker runs it (its device as Ray gives it; the data where this
        machine has it, which nodes must reach by the same path or download), the worker's
        resources and its torch threads."""
        gpu = self._wants_gpu(config)
        device = "cuda" if gpu else ("cpu" if config.device == "auto" else config.device)
        dataset = config.dataset if config.dataset in data.DATASETS else str(Path(config.dataset).resolve())
        data_root = str(Path(config.data_root or data.default_data_root()).resolve())
        config = dataclasses.replace(config, device=device, dataset=dataset, data_root=data_root)
        if gpu:
            return config, {"num_gpus": 1, "num_cpus": 1}, None
        return config, {"num_cpus": self.cpus_per_job}, self.cpus_per_job


def _death(error: RayActorError, mirror: "_Mirror") -> str:
    """Why a job's worker is gone, in plain words."""
    if mirror.node is None:  # it never ran: say what Ray says went wrong (its last line is the cause)
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"the cluster could not start a worker for it: {lines[-1] if lines else type(error).__name__}"
    return (f"its cluster worker on {mirror.node} died (the process was killed, or its machine left the cluster)"
            + ("; the run keeps its last saved epoch" if mirror.path else ""))


class _Mirror:
    """The app's copy of a cluster run in its runs folder, written as the worker sends files."""

    def __init__(self, runs_dir):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else runs.default_runs_dir()
        self.path: Path | None = None
        self.node: str | None = None  # where the worker runs, once it has said

    def write(self, files: _Files) -> None:
        if self.path is None:
            if Path(files.run_id).name != files.run_id or files.run_id.startswith("."):
                raise ValueError(f"a worker sent a run id that is not a folder name: {files.run_id!r:.60}")
            self.path = self.runs_dir / files.run_id
            self.path.mkdir(parents=True)  # never into another run's folder
        for name in RUN_FILES:  # weights first: the record never names weights that are not on disk
            if name not in files.files:
                continue
            if name == runs.RECORD:
                self._write_record(runs.RunRecord.from_json(json.loads(files.files[name])))
            else:
                runs.atomic_write(self.path / name, files.files[name])

    def fail(self, reason: str) -> None:
        """Mark the run failed, if it began and is not marked ended already."""
        if self.path is None:
            return
        record = runs.read_record(self.path)
        if record.status == "running":
            record.status, record.reason, record.finished = "failed", reason, runs.now_iso()
            runs.write_record(self.path / runs.RECORD, record)

    def _write_record(self, record: runs.RunRecord) -> None:
        # Running for as long as this process follows it: an app restarted finds it interrupted.
        node = record.host
        record.host, record.pid = socket.gethostname(), os.getpid()
        record.device = f"{record.device} on cluster node {node}"
        runs.write_record(self.path / runs.RECORD, record)
