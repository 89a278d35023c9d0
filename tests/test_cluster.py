"""The job manager's behaviour with its jobs on a Ray cluster (kmnist_core/cluster.py), on a
local Ray instance of two CPUs that this module starts. Every wait is on a job's state, with
deadlines generous enough for a busy 2-core machine (each worker imports torch on start)."""

import dataclasses
import os
import signal
import socket
import threading

import pytest

ray = pytest.importorskip("ray")

from kmnist_core import cluster, novelty, runs, training  # noqa: E402 - after the skip
from kmnist_core.jobs import JobManager  # noqa: E402

DEADLINE = 300  # seconds for a tiny job, queueing and worker start-up included


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    # Ray starts its workers at nice 15, so that they yield to a lab machine's own users: on a CI
    # machine busy with other CPU-bound work they then got almost no processor time at all.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, include_dashboard=False)
        yield
        ray.shutdown()


@pytest.fixture
def config(tiny_config):
    return dataclasses.replace(tiny_config, epochs=1)


def cluster_manager(runs_dir, seen: list | None = None) -> JobManager:
    """A job manager training on the local cluster; `seen` collects every event, in order."""
    executor = cluster.RayExecutor(cpus_per_job=1)

    def run(config, on_event, stop, runs_dir):
        def both(event):
            seen.append(event)
            on_event(event)
        return executor(config, both if seen is not None else on_event, stop, runs_dir)

    return JobManager(runs_dir, executor=run, queue_of=executor.queue_of)


def wait_until(condition, what: str) -> None:
    for _ in range(DEADLINE * 20):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_job_trains_on_a_worker_and_its_run_lands_in_the_app_runs_folder(config, runs_dir):
    seen = []
    manager = cluster_manager(runs_dir, seen)
    job = manager.submit(dataclasses.replace(config, epochs=2))
    assert job.device == "cluster CPUs"
    assert manager.wait(job, timeout=DEADLINE)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.test.accuracy > 0.3, snap.message
    assert snap.step == snap.steps_total > 0 and [h.epoch for h in snap.history] == [1, 2]

    kinds = [type(event).__name__ for event in seen]
    assert kinds[:4] == ["Placed", "Phase", "RunStarted", "Phase"] and kinds[-1] == "Phase"
    assert [e.name for e in seen if isinstance(e, training.Phase)][:2] == ["loading data", "training"]
    steps = [e.step for e in seen if isinstance(e, training.Step)]
    assert steps == list(range(1, snap.steps_total + 1))  # every step, once, in order
    epochs = [i for i, e in enumerate(seen) if isinstance(e, training.Epoch)]
    assert len(epochs) == 2 and seen[epochs[0] - 1].step == snap.steps_total // 2  # each epoch after its steps
    started = next(e for e in seen if isinstance(e, training.RunStarted))
    assert started.path == str(runs_dir / snap.run_id)

    run = runs.load_run(snap.run_id, runs_dir)
    assert run.is_complete and run.test == snap.test and run.record.history == snap.history
    assert (run.path / novelty.FILE).is_file() and novelty.load_for_run(run.path, runs.load_model(run))
    assert run.record.host == socket.gethostname()  # live while this process follows it
    assert run.record.device.startswith("CPU (1 threads) on cluster node")  # torch's threads as asked
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_stop_a_running_job_and_cancel_one_waiting_in_the_cluster_queue(config, runs_dir):
    manager = cluster_manager(runs_dir)
    long = dataclasses.replace(config, arch="lenet", epochs=200, batch_size=16)
    running = manager.submit_many([long, long])  # the two CPUs of the cluster
    waiting = manager.submit(long)
    wait_until(lambda: all(job.snapshot().step > 0 for job in running), "both first jobs to train")
    assert waiting.status == "queued" and manager.queue_position(waiting) == 1
    manager.stop(waiting.id)
    for job in running:
        manager.stop(job.id)
    assert all(manager.wait(job, timeout=DEADLINE) for job in running + [waiting])
    assert waiting.status == "cancelled" and waiting.run_id is None
    for job in running:
        assert job.status == "stopped" and job.message.startswith("stopped at epoch "), job.message
        run = runs.load_run(job.run_id, runs_dir)
        assert run.status == "stopped" and run.has_weights  # the weights of its last step
    assert len(list(runs_dir.iterdir())) == 2


def test_failures_come_back_as_plain_messages(config, runs_dir, tmp_path):
    manager = cluster_manager(runs_dir)
    missing, diverged = manager.submit_many([
        dataclasses.replace(config, dataset=str(tmp_path / "absent")),
        dataclasses.replace(config, arch="mlp", lr=100.0, optimizer="sgd", schedule="none")])
    assert manager.wait(missing, timeout=DEADLINE) and manager.wait(diverged, timeout=DEADLINE)
    assert missing.status == "failed" and "does not exist" in missing.message and missing.run_id is None
    assert diverged.status == "failed" and diverged.message.startswith("diverged at step")
    run = runs.load_run(diverged.run_id, runs_dir)
    assert run.status == "failed" and run.reason == diverged.message


def test_a_worker_killed_mid_run_fails_its_job_and_marks_its_run(config, runs_dir):
    seen = []
    manager = cluster_manager(runs_dir, seen)
    job = manager.submit(dataclasses.replace(config, arch="lenet", epochs=200, batch_size=16))
    wait_until(lambda: job.snapshot().epoch >= 1 and len(job.snapshot().history) >= 1, "an epoch to end")
    placed = next(e for e in seen if isinstance(e, cluster.Placed))
    assert placed.pid != os.getpid()
    os.kill(placed.pid, signal.SIGKILL)
    assert manager.wait(job, timeout=DEADLINE)
    assert job.status == "failed" and "worker" in job.message and "died" in job.message, job.message
    run = runs.load_run(job.run_id, runs_dir)
    assert run.status == "failed" and run.reason == job.message
    assert run.has_weights and run.record.best_epoch >= 1 and runs.load_model(run)  # its last saved epoch, whole


def test_a_sweep_goes_to_the_cluster_at_once(config, runs_dir):
    manager = cluster_manager(runs_dir)
    sweep = [dataclasses.replace(config, arch="lenet", seed=seed, group="sweep") for seed in range(4)]
    jobs = manager.submit_many(sweep)
    positions = [manager.queue_position(job) for job in jobs]
    assert all(job.device == "cluster CPUs" for job in jobs)
    assert all(manager.wait(job, timeout=DEADLINE) for job in jobs)
    assert [job.status for job in jobs] == ["finished"] * 4, [job.message for job in jobs]
    # Queued in one queue at once (none had started a moment after submission). That two train at a
    # time is shown by the Stop test's two long jobs: tiny ones like these can finish, on a busy
    # machine, before the second worker has started.
    assert positions == [1, 2, 3, 4]
    assert len({job.run_id for job in jobs}) == 4
    assert sorted(run.config.seed for run in runs.list_runs(runs_dir)) == [0, 1, 2, 3]


def test_a_job_no_node_can_run_is_refused_at_submission(config, runs_dir):
    manager = cluster_manager(runs_dir)
    with pytest.raises(ValueError, match="GPU"):
        manager.submit(dataclasses.replace(config, device="cuda"))
    assert manager.jobs() == []
