import dataclasses
import threading

import pytest

from kmnist_core.config import TrainConfig
from kmnist_core.jobs import JobManager
from kmnist_core.runs import TestResult


def test_jobs_queue_one_at_a_time_and_report_progress(tiny_config, runs_dir):
    manager = JobManager(runs_dir)
    first = manager.submit(dataclasses.replace(tiny_config, epochs=3))
    second = manager.submit(dataclasses.replace(tiny_config, arch="lenet", epochs=1))
    assert manager.queue_position(second) in (1, 2)  # behind the first, running or not yet
    assert manager.wait(second, timeout=120)
    assert first.status == "finished" and second.status == "finished"
    assert first.ended <= second.started  # never both at once on one device
    snap = first.snapshot()
    assert snap.step == snap.steps_total > 0 and len(snap.history) == 3 and snap.test.accuracy > 0.3
    assert snap.run_id and (runs_dir / snap.run_id / "run.json").is_file()
    assert [j.id for j in manager.jobs()] == [second.id, first.id]


def test_stop_running_cancel_queued_and_stop_a_sweep(tiny_config, runs_dir):
    manager = JobManager(runs_dir)
    long = dataclasses.replace(tiny_config, arch="resnet", epochs=100, batch_size=16, group="g")
    running = manager.submit(long)
    queued = manager.submit(long)
    other = manager.submit(dataclasses.replace(tiny_config, epochs=1))
    while running.step == 0:
        threading.Event().wait(0.05)
    assert running.status == "running" and manager.queue_position(queued) == 1
    manager.stop_group("g")
    assert manager.wait(running, timeout=10) and manager.wait(other, timeout=60)
    assert running.status == "stopped" and queued.status == "cancelled" and other.status == "finished"


def test_failures_become_plain_messages(tiny_config, runs_dir, tmp_path):
    manager = JobManager(runs_dir)
    missing = manager.submit(dataclasses.replace(tiny_config, dataset=str(tmp_path / "absent")))
    diverged = manager.submit(dataclasses.replace(tiny_config, arch="mlp", lr=100.0, optimizer="sgd", schedule="none"))
    assert manager.wait(diverged, timeout=60)
    assert missing.status == "failed" and "does not exist" in missing.message
    assert diverged.status == "failed" and diverged.message.startswith("diverged at step")


def test_any_executor_can_run_the_jobs(runs_dir):
    seen = []

    class Result:
        status, reason, test = "finished", "", TestResult(loss=1.0, accuracy=0.5)

    def executor(config, on_event, stop, runs_dir):
        seen.append(config.arch)
        return Result()

    manager = JobManager(runs_dir, executor=executor)
    jobs = manager.submit_many([TrainConfig(arch="lenet"), TrainConfig(arch="mlp")])
    assert manager.wait(jobs[-1], timeout=10)
    assert seen == ["lenet", "mlp"] and jobs[0].snapshot().test.accuracy == 0.5


class Finished:
    status, reason, test = "finished", "", None


def test_an_executor_that_raises_systemexit_fails_its_job_and_the_queue_goes_on(runs_dir):
    calls = []

    def executor(config, on_event, stop, runs_dir):
        calls.append(config.arch)
        if config.arch == "lenet":
            raise SystemExit(3)
        if config.arch == "mlp":
            raise KeyboardInterrupt
        return Finished()

    manager = JobManager(runs_dir, executor=executor)
    exits, interrupted, after = manager.submit_many([TrainConfig(arch="lenet"), TrainConfig(arch="mlp"),
                                                     TrainConfig(arch="resnet")])
    assert manager.wait(after, timeout=10)
    assert calls == ["lenet", "mlp", "resnet"]
    assert (exits.status, exits.message) == ("failed", "SystemExit: 3")
    assert (interrupted.status, interrupted.message) == ("failed", "KeyboardInterrupt")
    assert after.status == "finished"


def test_ended_jobs_are_forgotten_beyond_a_bounded_history(runs_dir, monkeypatch):
    import kmnist_core.jobs as jobs_module
    monkeypatch.setattr(jobs_module, "MAX_ENDED_JOBS", 3)
    manager = JobManager(runs_dir, executor=lambda config, **_: Finished())
    submitted = [manager.submit(TrainConfig(arch="mlp")) for _ in range(10)]
    assert manager.wait(submitted[-1], timeout=10)
    assert [j.id for j in manager.jobs()] == [j.id for j in submitted[:-4:-1]]
    assert manager.get(submitted[0].id) is None and manager.get(submitted[-1].id) is submitted[-1]


def test_submit_stop_and_snapshot_from_many_threads(runs_dir):
    """Every job ends once, a cancelled job never runs, a running one stops, and no snapshot
    sees a state that never was (an ended job without its end time)."""
    import random
    ran, ran_lock = [], threading.Lock()

    def executor(config, on_event, stop, runs_dir):
        with ran_lock:
            ran.append(config.name)
        for step in range(1, 30):
            if stop.wait(0.001):
                return type("Stopped", (), {"status": "stopped", "reason": "asked", "test": None})()
        return Finished()

    manager = JobManager(runs_dir, executor=executor)
    errors = []

    def submitter(n):
        try:
            for i in range(25):
                job = manager.submit(TrainConfig(name=f"{n}-{i}"))
                if random.random() < 0.5:
                    manager.stop(job.id)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    def watcher():
        try:
            for _ in range(400):
                for job in manager.jobs():
                    snap = job.snapshot()
                    assert snap.active or snap.ended is not None, snap
                    assert snap.status != "running" or snap.started is not None, snap
                    manager.queue_position(job)
                if random.random() < 0.2 and manager.jobs():
                    manager.stop(random.choice(manager.jobs()).id)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)] + \
              [threading.Thread(target=watcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    jobs = manager.jobs()
    assert len(jobs) == 100 and all(manager.wait(job, timeout=30) for job in jobs)
    cancelled = {j.config.name for j in jobs if j.status == "cancelled"}
    assert cancelled.isdisjoint(ran) and len(ran) == len(set(ran)) == 100 - len(cancelled)
    assert {j.status for j in jobs} <= {"finished", "stopped", "cancelled"}
    assert all(j.started is None or j.started <= j.ended for j in jobs)


class Blocking:
    """An executor that reports steps at a given speed and trains until stopped."""

    def __init__(self, images_per_second: float = 0.0, steps: int = 0):
        self.images_per_second, self.steps = images_per_second, steps
        self.running, self.overlapped = 0, False
        self.lock = threading.Lock()

    def __call__(self, config, on_event, stop, runs_dir):
        from kmnist_core import training
        with self.lock:
            self.running += 1
            self.overlapped |= self.running > 1
        try:
            on_event(training.RunStarted("run", "", config.epochs, 100, 1, "cpu"))
            for step in range(1, self.steps + 1):
                on_event(training.Step(1, step, 100, 1.0, 0.001, self.images_per_second, step / 10))
            stop.wait(10)
            return Finished()
        finally:
            with self.lock:
                self.running -= 1


def test_two_jobs_never_train_at_once_on_the_cpu_however_it_is_named(runs_dir):
    """Two trainings sharing two cores run each other many times slower: one device, one queue."""
    executor = Blocking()
    manager = JobManager(runs_dir, executor=executor)
    first = manager.submit(TrainConfig(device="cpu"))
    second = manager.submit(TrainConfig(device="cpu:0"))
    threading.Event().wait(0.5)
    assert first.device == second.device == "cpu"
    assert [first.status, second.status] == ["running", "queued"] and manager.queue_position(second) == 1
    manager.stop(first.id)
    while executor.running == 0 or first.is_active():  # the second starts once the first has ended
        threading.Event().wait(0.01)
    manager.stop(second.id)
    assert manager.wait(second, timeout=10) and not executor.overlapped


def test_time_estimates_are_measured_once_and_never_while_a_job_trains(runs_dir, monkeypatch):
    """Issue 12, item 13: estimates timed a probe on the cores a job was training on, and read
    differently at each visit."""
    from kmnist_core import estimates
    monkeypatch.setattr(estimates, "_speeds", {})
    probes = []

    def probe(config, *args, **kwargs):
        probes.append(config.arch)
        return 1000.0 * len(probes)  # a different figure at every probe

    monkeypatch.setattr(estimates, "probe", probe)
    executor = Blocking(images_per_second=500.0, steps=estimates.MIN_MEASURED_STEPS)
    manager = JobManager(runs_dir, executor=executor)
    quick = TrainConfig(dataset="kmnist", epochs=2, device="cpu")
    images = estimates.training_images(quick, 60000)
    assert images == 54000 // 128 * 128 * 2

    running = manager.submit(dataclasses.replace(quick, dataset="mnist"))  # the same recipe on another dataset
    while running.snapshot().step < estimates.MIN_MEASURED_STEPS:
        threading.Event().wait(0.01)
    # the running job's own speed, not a probe on the cores it trains on
    assert estimates.estimate_seconds(quick, 60000, manager) == pytest.approx(images / 500 * 1.1)
    # another recipe has no measured speed: no estimate while the job trains, and no probe
    lenet = dataclasses.replace(quick, arch="lenet")
    assert estimates.estimate_seconds(lenet, 60000, manager) is None and probes == []
    manager.stop(running.id)
    assert manager.wait(running, timeout=10)
    # the device is free: one probe, then the same figure at every visit
    first = estimates.estimate_seconds(lenet, 60000, manager)
    assert first == pytest.approx(images / 1000 * 1.1) and probes == ["lenet"]
    assert estimates.estimate_seconds(dataclasses.replace(lenet, epochs=4, seed=3), 60000, manager) == \
        pytest.approx(2 * first)
    assert estimates.estimate_seconds(lenet, 60000, manager) == first and probes == ["lenet"]
    assert estimates.estimate_seconds(quick, 60000, manager) == pytest.approx(images / 500 * 1.1)


def test_a_probe_keeps_jobs_off_the_device_while_it_measures(runs_dir):
    executor = Blocking()
    manager = JobManager(runs_dir, executor=executor)
    with manager.device_if_idle("cpu") as idle:
        assert idle
        job = manager.submit(TrainConfig(device="cpu"))
        threading.Event().wait(0.3)
        assert executor.running == 0  # waits for the probe to end
    while executor.running == 0:
        threading.Event().wait(0.01)
    with manager.device_if_idle("cpu") as idle:
        assert not idle
    manager.stop(job.id)
    assert manager.wait(job, timeout=10)
