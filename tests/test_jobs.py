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
