"""AppTest coverage of a class: the sign-in a class key brings (and its absence without one),
what a student's and the teacher's Train and Class pages offer, and a limit's message."""

import dataclasses
import re

import pytest

from conftest import open_page
from kmnist_core import access, classroom
from kmnist_core.access import Actor
from kmnist_core.classroom import ClassLimits
from pages.helpers.background_jobs import job_manager
from pages.helpers.identity import ACTOR

KEY = "owl-42"
TEACHER, BEN = Actor.teacher("Ms Sato"), Actor.student("Ben")


@pytest.fixture
def class_env(app_env, monkeypatch):
    monkeypatch.setenv(access.CLASS_KEY_ENV, KEY)


def open_as(actor: Actor, page: str | None = None):
    from streamlit.testing.v1 import AppTest
    from conftest import APP
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[ACTOR] = actor
    if page:
        at.switch_page(page)
    return at.run()


def test_without_a_class_key_nothing_is_asked(app_env, monkeypatch):
    monkeypatch.delenv(access.CLASS_KEY_ENV, raising=False)
    at = open_page()
    assert not at.exception and not at.text_input
    assert at.title[0].value == ":material/draw: KMNIST Lab" and not any("Signed in" in c.value for c in at.sidebar.caption)


def test_with_a_class_key_a_browser_names_itself_and_the_teacher_gives_the_key(class_env):
    at = open_page()
    assert not at.exception and at.text_input(key="sign_in_name") is not None
    assert not at.metric  # nothing of the app before a name
    at.text_input(key="sign_in_name").input("Ms Sato")
    at.text_input(key="sign_in_key").input("wrong")
    at.button[0].click().run()
    assert any("That is not the class key" in e.value for e in at.error)
    at.text_input(key="sign_in_key").input(KEY)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[ACTOR] == Actor.teacher("Ms Sato")
    assert any("Signed in as **Ms Sato** (teacher)" in c.value for c in at.sidebar.caption)


def test_a_student_sees_no_stop_on_anothers_job_and_the_teacher_does(class_env, tiny_config):
    job = job_manager().submit(dataclasses.replace(tiny_config, epochs=1000), TEACHER)
    student = open_as(BEN, "pages/train.py")
    assert not student.exception
    assert not [b for b in student.button if b.label == "Stop"]
    assert any("job-1" in m.value for m in student.markdown)
    teacher = open_as(TEACHER, "pages/train.py")
    assert [b for b in teacher.button if b.label == "Stop"]
    job_manager().stop(job.id, TEACHER)


def test_a_class_limit_refuses_a_students_job_with_its_message(class_env):
    classroom.save_limits(ClassLimits(max_epochs=3), TEACHER)
    at = open_as(BEN, "pages/train.py")
    at.selectbox(key="train_dataset").set_value("mnist")
    at.selectbox(key="train_arch").set_value("mlp_small")
    at.number_input(key="train_epochs").set_value(4)
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any("Class limit: at most 3 epochs per run; you asked for 4" in e.value for e in at.error)
    assert not job_manager().jobs()


def test_only_the_teacher_changes_the_limits_on_the_class_page(class_env):
    student = open_as(BEN, "pages/class_settings.py")
    assert not student.exception and not student.button
    assert any("Only the teacher changes these" in m.value for m in student.markdown)
    teacher = open_as(TEACHER, "pages/class_settings.py")
    teacher.number_input(key="class_max_epochs").set_value(7)
    teacher.button[0].click().run()
    assert not teacher.exception
    assert classroom.load_limits().max_epochs == 7


def test_an_open_model_renamed_or_deleted_by_the_teacher_is_said_in_one_line(class_env, trained_run):
    from kmnist_core import runs
    at = open_as(BEN, "pages/draw.py")
    assert not at.exception and at.selectbox(key="draw_run").value == trained_run.id
    runs.rename_run(trained_run, "class model", TEACHER)
    at.run()
    assert any("This model was renamed by the teacher to class model." in c.value for c in at.caption)
    runs.delete_run(trained_run, TEACHER)
    at.run()
    assert not at.exception
    assert not any("renamed" in c.value for c in at.caption)
    assert not at.selectbox  # no model left: the page says so instead of a traceback
    assert any("no trained model yet" in i.value for i in at.info)


def test_the_train_page_says_when_open_pages_slow_the_training(class_env, tiny_config):
    from kmnist_core import live
    job = job_manager().submit(dataclasses.replace(tiny_config, epochs=1000), TEACHER)
    while job.snapshot().status != "running":
        job_manager().wait(job, timeout=0.1)
    for session in range(5):
        live.heartbeat(f"another-browser-{session}")
    at = open_as(BEN, "pages/train.py")
    assert not at.exception
    assert any(re.search(r"\d+ pages open: training runs slower", c.value) for c in at.caption)
