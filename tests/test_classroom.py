"""The classroom rules in the engine, called directly: who may stop, rename and delete what,
the class limits, and the pages' live version. No page is involved: a page that forgets to
hide a button is refused all the same."""

import dataclasses
import json
import threading

import pytest

from conftest import make_run
from kmnist_core import access, classroom, live, runs
from kmnist_core.access import Actor, NotAllowed
from kmnist_core.classroom import ClassLimits, LimitExceeded
from kmnist_core.config import TrainConfig
from kmnist_core.jobs import JobManager
from kmnist_core.runs import TestResult

TEACHER = Actor.teacher("Ms Sato")
AIKO, BEN = Actor.student("Aiko"), Actor.student("Ben")


class Finished:
    status, reason, test = "finished", "", TestResult(loss=1.0, accuracy=0.5)


def until_stopped(config, on_event, stop, runs_dir):
    stop.wait(30)
    return Finished()


@pytest.fixture
def manager(runs_dir):
    manager = JobManager(runs_dir, executor=until_stopped)
    yield manager
    for job in manager.jobs():
        manager.stop(job.id)
        manager.wait(job, timeout=10)


def saved_run(runs_dir, owner: str, status: str = "finished", name: str = "") -> runs.Run:
    made = make_run(TrainConfig(owner=owner), test_accuracy=0.9 if status == "finished" else None)
    made.record.owner, made.record.status, made.record.name = owner, status, name
    created = runs.create_run(made.record, runs_dir)
    created.record.status = status  # create_run marks it running
    created.save()
    return runs.load_run(created.id, runs_dir)


def test_a_student_cannot_stop_another_students_job_but_the_teacher_can(manager):
    aikos = manager.submit(TrainConfig(arch="mlp_small"), AIKO)
    assert aikos.owner == "Aiko" and aikos.config.owner == "Aiko"
    with pytest.raises(NotAllowed) as refused:
        manager.stop(aikos.id, BEN)
    assert "Only Aiko or the teacher may stop job-" in str(refused.value) and "\n" not in str(refused.value)
    assert aikos.is_active()
    manager.stop(aikos.id, TEACHER)
    assert manager.wait(aikos, timeout=10) and aikos.status in ("stopped", "finished", "cancelled")


def test_a_student_stops_their_own_job_and_a_whole_sweep_is_refused_if_one_run_is_not_theirs(manager, runs_dir):
    classroom.save_limits(ClassLimits(max_active_jobs=3), TEACHER, runs_dir)
    own = manager.submit(TrainConfig(arch="mlp_small"), BEN)
    manager.stop(own.id, BEN)
    assert manager.wait(own, timeout=10)
    mixed = [manager.submit(TrainConfig(arch="mlp_small", group="g"), who) for who in (AIKO, BEN)]
    with pytest.raises(NotAllowed):
        manager.stop_group("g", BEN)
    assert all(job.is_active() for job in mixed)  # all or nothing
    manager.stop_group("g", TEACHER)
    assert all(manager.wait(job, timeout=10) for job in mixed)


def test_no_class_key_means_one_user_in_charge_of_everything(manager):
    job = manager.submit(TrainConfig(arch="mlp_small"))  # no actor: the lone user, as before
    assert job.owner == "" and Actor.local().is_teacher
    manager.stop(job.id)
    assert manager.wait(job, timeout=10)


def test_runs_are_renamed_and_deleted_only_by_their_owner_or_the_teacher(runs_dir):
    aikos = saved_run(runs_dir, "Aiko")
    assert aikos.owner == "Aiko" and aikos.display_name.startswith("Aiko's resnet_small on MNIST, ")
    for action in (lambda: runs.rename_run(aikos, "mine now", BEN), lambda: runs.delete_run(aikos, BEN)):
        with pytest.raises(NotAllowed, match="Only Aiko or the teacher may"):
            action()
    assert runs.load_run(aikos.id, runs_dir).name == aikos.id  # untouched
    runs.rename_run(aikos, "Aiko's best", AIKO)
    assert runs.load_run(aikos.id, runs_dir).display_name == "Aiko's best"
    assert live.run_event(aikos.id) == live.RunEvent("renamed", "Aiko", "Aiko's best")
    runs.delete_run(aikos, TEACHER)
    assert not aikos.path.exists()
    assert live.run_event(aikos.id) == live.RunEvent("deleted", "the teacher", "Aiko's best")


def test_a_run_without_an_owner_is_the_teachers(runs_dir):
    old = saved_run(runs_dir, "")
    with pytest.raises(NotAllowed, match="Only the teacher may delete"):
        runs.delete_run(old, AIKO)
    runs.delete_run(old)  # the lone user of an app without a class key
    assert not old.path.exists()


def test_an_old_run_json_without_an_owner_still_loads(trained_run):
    record = json.loads((trained_run.path / runs.RECORD).read_text())
    record.pop("owner", None)
    record["config"].pop("owner", None)
    (trained_run.path / runs.RECORD).write_text(json.dumps(record))
    loaded = runs.load_run(trained_run.id, trained_run.path.parent)
    assert loaded.owner == "" and loaded.display_name == loaded.name == trained_run.id


def test_tidy_up_removes_every_stopped_or_failed_student_run_and_nothing_else(runs_dir):
    stopped = saved_run(runs_dir, "Aiko", "stopped")
    failed = saved_run(runs_dir, "Ben", "failed")
    finished = saved_run(runs_dir, "Ben", "finished")
    teachers = saved_run(runs_dir, "", "stopped")
    lone = saved_run(runs_dir, "", "failed")
    with pytest.raises(NotAllowed, match="Only the teacher may tidy up"):
        runs.tidy_up(AIKO, runs_dir)
    assert len(runs.tidy_up(TEACHER, runs_dir)) == 2
    assert not stopped.path.exists() and not failed.path.exists()
    assert finished.path.exists() and teachers.path.exists() and lone.path.exists()


def test_only_the_teacher_changes_the_limits_and_they_are_stored_for_every_session(runs_dir):
    with pytest.raises(NotAllowed, match="Only the teacher may change the class limits"):
        classroom.save_limits(ClassLimits(max_epochs=999), AIKO, runs_dir)
    assert classroom.load_limits(runs_dir) == ClassLimits()
    classroom.save_limits(ClassLimits(max_epochs=3, max_sweep_runs=4), TEACHER, runs_dir)
    assert classroom.load_limits(runs_dir) == ClassLimits(max_epochs=3, max_sweep_runs=4)
    assert not runs.scan_runs(runs_dir)[1]  # the limits file is not taken for a broken run
    with pytest.raises(ValueError, match="max_epochs must be a whole number from 1 to 1000"):
        classroom.save_limits(ClassLimits(max_epochs=0), TEACHER, runs_dir)
    (runs_dir / classroom.LIMITS_FILE).write_text("{not json")
    assert classroom.load_limits(runs_dir) == ClassLimits()  # a damaged file: the defaults


@pytest.mark.parametrize("change, submit, message", [
    (dict(students_may_train=False), dict(), "the teacher has paused training for students"),
    (dict(max_epochs=5), dict(config=dict(epochs=6)), "at most 5 epochs per run; you asked for 6"),
    (dict(max_memory_mb=64), dict(config=dict(arch="resnet", batch_size=4096)),
     "training memory is at most 64 MB; resnet at width 1 and batch 4096 needs about"),
    (dict(max_sweep_runs=2), dict(runs=3), "a sweep has at most 2 runs; this one has 3"),
])
def test_each_class_limit_refuses_a_student_with_its_message(manager, runs_dir, change, submit, message):
    classroom.save_limits(dataclasses.replace(ClassLimits(), **change), TEACHER, runs_dir)
    configs = [TrainConfig(**{"arch": "mlp_small", **submit.get("config", {})})] * submit.get("runs", 1)
    with pytest.raises(LimitExceeded, match="^Class limit: ") as refused:
        manager.submit_many(configs, AIKO)
    assert message in str(refused.value)
    assert not manager.jobs()  # all or nothing
    manager.submit_many(configs, TEACHER)  # the teacher keeps only the machine's bounds
    assert len(manager.jobs()) == len(configs)


def test_a_student_has_one_job_or_sweep_waiting_or_training_at_a_time(manager):
    first = manager.submit(TrainConfig(arch="mlp_small"), AIKO)
    with pytest.raises(LimitExceeded, match="1 job\\(s\\) or sweep\\(s\\) waiting or training per student"):
        manager.submit(TrainConfig(arch="mlp_small"), AIKO)
    manager.submit(TrainConfig(arch="mlp_small"), BEN)  # another student's queue is their own
    manager.stop(first.id, AIKO)
    assert manager.wait(first, timeout=10)
    manager.submit_many([TrainConfig(arch="mlp_small", group="s", seed=i) for i in range(3)], AIKO)


def test_without_a_class_the_machines_bounds_still_hold(manager, monkeypatch):
    with pytest.raises(LimitExceeded, match="at most 200 runs at once"):
        manager.submit_many([TrainConfig(arch="mlp_small", seed=i) for i in range(201)])
    assert not manager.jobs()
    monkeypatch.setattr(classroom, "free_memory_bytes", lambda: 256 * 2**20)
    with pytest.raises(LimitExceeded, match="needs about .* MB to train, more than the 256 MB this machine has free"):
        manager.submit(TrainConfig(arch="resnet", width=8.0, batch_size=8192))
    manager.submit(TrainConfig(arch="mlp_small"))


def test_the_memory_estimate_grows_with_the_batch_and_the_width():
    small = classroom.training_memory_bytes(TrainConfig(arch="resnet_small", batch_size=128))
    assert 10 * 2**20 < small < 200 * 2**20
    assert classroom.training_memory_bytes(TrainConfig(arch="resnet_small", batch_size=1024)) > 6 * small
    assert classroom.training_memory_bytes(TrainConfig(arch="resnet", width=8.0, batch_size=8192)) > 8 * 2**30
    assert classroom.free_memory_bytes() > 0


def test_the_version_moves_with_every_job_and_run_change(manager, runs_dir):
    before = live.version(runs_dir)
    job = manager.submit(TrainConfig(arch="mlp_small"))
    submitted = live.version(runs_dir)
    assert submitted != before
    manager.stop(job.id)
    assert manager.wait(job, timeout=10) and live.version(runs_dir) != submitted
    run = saved_run(runs_dir, "Aiko")
    created = live.version(runs_dir)
    runs.rename_run(run, "x", TEACHER)
    assert live.version(runs_dir) != created


def test_open_pages_count_the_recent_heartbeats():
    for session in ("a", "b", "c"):
        live.heartbeat(f"test-{session}")
    assert live.open_pages() >= 3
    assert live.open_pages(within=-1) == 0


def test_the_class_key_is_compared_whole_and_never_stored_in_the_browser(monkeypatch):
    monkeypatch.delenv(access.CLASS_KEY_ENV, raising=False)
    assert access.class_key() == "" and access.class_key("from-secrets") == "from-secrets"
    monkeypatch.setenv(access.CLASS_KEY_ENV, "owl")
    assert access.class_key("from-secrets") == "owl"
    assert access.key_matches("owl", "owl") and not access.key_matches("ow", "owl")
    assert not access.key_matches("", "")  # no key: no one becomes the teacher by guessing
    token = access.teacher_token("owl", "Ms Sato")
    assert "owl" not in token and access.token_matches(token, "owl", "Ms Sato")
    assert not access.token_matches(token, "new key", "Ms Sato") and not access.token_matches(token, "owl", "Aiko")


def test_names_are_cleaned_and_an_empty_one_refused():
    assert Actor.student("  Aiko \n Tanaka ").name == "Aiko Tanaka"
    assert len(Actor.student("x" * 100).name) == access.MAX_NAME_LENGTH
    with pytest.raises(ValueError, match="Type a name"):
        Actor.student("  \t")


def test_submitting_from_many_students_at_once_keeps_each_ones_limit(runs_dir):
    manager = JobManager(runs_dir, executor=until_stopped)
    refused = []

    def student(n):
        for _ in range(3):
            try:
                manager.submit(TrainConfig(arch="mlp_small"), Actor.student(f"s{n}"))
            except LimitExceeded:
                refused.append(n)

    threads = [threading.Thread(target=student, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        owners = [job.owner for job in manager.jobs()]
        assert sorted(owners) == [f"s{n}" for n in range(6)] and len(refused) == 12
    finally:
        for job in manager.jobs():
            manager.stop(job.id)
            manager.wait(job, timeout=10)


def test_a_csv_export_keeps_formulas_as_text(runs_dir):
    from kmnist_core import compare
    hostile = saved_run(runs_dir, "Aiko", name='=HYPERLINK("http://127.0.0.1:9","x")')
    plain = saved_run(runs_dir, "Ben", name="-1+2")
    text = compare.runs_csv([hostile, plain])
    assert "'=HYPERLINK(" in text and "'-1+2" in text
    assert compare.spreadsheet_safe(0.5) == 0.5 and compare.spreadsheet_safe("resnet") == "resnet"


def test_a_student_under_the_teachers_name_owns_nothing_of_the_teachers(manager, runs_dir):
    job = manager.submit(TrainConfig(arch="mlp_small"), TEACHER)
    assert job.owner == "" and TEACHER.owner == ""
    impostor = Actor.student(TEACHER.name)
    with pytest.raises(NotAllowed, match="Only the teacher may stop"):
        manager.stop(job.id, impostor)

