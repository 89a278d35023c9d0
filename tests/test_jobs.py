import dataclasses
import threading

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
    assert missing.status == "failed" and "Unknown dataset" in missing.message
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
