"""AppTest coverage of the Home and Train pages on synthetic data."""

import re

import pytest

from conftest import open_page
from pages.helpers.background_jobs import job_manager


def wait_for_jobs():
    from pages.helpers.background_jobs import job_manager
    for job in job_manager().jobs():
        assert job_manager().wait(job, timeout=120)


def test_home_shows_device_datasets_and_missing_data_message(app_env):
    at = open_page()
    assert not at.exception
    assert at.title[0].value == ":material/draw: KMNIST Lab"
    assert at.metric[0].value.startswith(("CPU", "CUDA", "Apple"))
    # synthetic MNIST is present, Fashion-MNIST is not: its tab explains where to put the files
    assert any("Fashion-MNIST is not in" in w.value and "KMNIST_DATA_ROOT" in w.value for w in at.warning)


def test_train_a_tiny_run_and_see_its_metrics(app_env):
    at = open_page("pages/train.py")
    assert not at.exception
    at.selectbox(key="train_dataset").set_value("mnist")
    at.selectbox(key="train_arch").set_value("mlp_small")
    at.number_input(key="train_epochs").set_value(2)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    wait_for_jobs()
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"].endswith("%") and float(metrics["Test accuracy"][:-1]) > 30
    assert "Saved runs" in [h.value for h in at.subheader]
    assert len(at.dataframe) == 1 and at.dataframe[0].value.shape[0] == 1


def test_diverging_run_shows_the_reason(app_env):
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("mlp")
    at.number_input(key="train_lr").set_value(100.0)
    at.selectbox(key="train_optimizer").set_value("sgd")
    at.button(key="train_start").click().run()
    wait_for_jobs()
    at.run()
    assert not at.exception
    assert any("diverged at step" in e.value and "too high" in e.value for e in at.error)


def test_missing_dataset_offers_the_download(app_env):
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").set_value("fashion")
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any("Fashion-MNIST is not in" in w.value for w in at.warning)
    assert any(b.label == "Download Fashion-MNIST and train" for b in at.button)


def test_broken_and_vanished_runs_do_not_break_the_page(app_env, trained_run, runs_dir):
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "run.json").write_text("{")
    at = open_page("pages/train.py")
    assert not at.exception
    assert any("Run 'broken': run.json is corrupt" in c.value for c in at.caption)
    import shutil
    shutil.rmtree(trained_run.path)   # deleted from disk while listed
    at.run()
    assert not at.exception


@pytest.mark.parametrize("contents", ["nothing", "other files"])
def test_a_wrong_idx_folder_is_one_message_and_the_page_stays(app_env, tmp_path, contents):
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    if contents == "other files":  # like a system folder
        (folder / "passwd").write_text("root:x:0:0\n")
        (folder / "ssl").mkdir()
    at = open_page("pages/train.py")
    at.selectbox[0].set_value("own").run()
    at.text_input[0].set_value(str(folder)).run()
    at.button[0].click().run()
    assert not at.exception
    (error,) = at.error
    assert "holds none of the idx files" in error.value and "train-images-idx3-ubyte" in error.value
    assert at.button[0].label == "Start training" and not job_manager().jobs()
def test_malformed_records_leave_every_page_working(app_env, trained_run, runs_dir):
    """Issue 13, items 1-3: one broken record used to break every run picker."""
    import json
    record = json.loads((trained_run.path / "run.json").read_text())
    for name, broken in {"list-config": {**record, "config": [1]}, "text-created": {**record, "created": 5},
                         "no-history": {k: v for k, v in record.items() if k != "history"},
                         "word-accuracy": {**record, "test": {"loss": 1.0, "accuracy": "high"}}}.items():
        (runs_dir / name).mkdir()
        (runs_dir / name / "run.json").write_text(json.dumps(broken))
    for page in (None, "pages/train.py", "pages/evaluate.py", "pages/draw.py", "pages/compare.py",
                 "pages/sweep.py", "pages/features.py", "pages/dataset.py"):
        at = open_page(page)
        assert not at.exception, (page, [e.value for e in at.exception])
        if page in ("pages/train.py", "pages/evaluate.py", "pages/compare.py", "pages/features.py"):
            assert len([c for c in at.caption if c.value.startswith("Run '")]) == 4, page


def test_a_run_stopped_in_its_first_epoch_says_what_was_kept_and_is_not_every_pages_model(app_env, trained_run):
    """Issue 12, item 9 (and 4): "Its best checkpoint so far is saved", the run then offered to
    Draw and Evaluate as their model, with "None" cells in the runs table."""
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").set_value("mnist")
    at.selectbox(key="train_arch").set_value("lenet")
    at.number_input(key="train_batch_size").set_value(1)   # 900 steps an epoch: stopped long before its end
    at.button(key="train_start").click().run()
    (job,) = job_manager().jobs()
    while job.snapshot().step < 3:
        job_manager().wait(job, timeout=0.05)
    job_manager().stop(job.id)
    assert job_manager().wait(job, timeout=300) and job.status == "stopped"
    at.run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "stopped" in w.value]
    assert re.search(r"Kept: the weights after \d+ training steps, never validated", warning)
    assert "best checkpoint" not in warning
    assert not [link for link in at.get("page_link") if "Evaluate this run" in str(link.proto)]
    table = at.dataframe[0]
    assert table.proto.placeholder == "—"   # not "None" in the empty cells
    status = dict(zip(table.value["run"], table.value["status"]))
    assert status[job.snapshot().run_id].endswith("weights never validated")
    assert at.button(key=f"evaluate-{job.id}").label == "Evaluate what was kept →"

    # Draw still opens on the finished model, and lists the stopped one after it, marked
    at.switch_page("pages/draw.py").run()
    picker = at.selectbox(key="draw_run")
    assert picker.value == trained_run.id
    assert [label.split(" · ")[0] for label in picker.options] == [trained_run.id, job.snapshot().run_id]
    assert picker.options[1].endswith("weights never validated")


def test_the_job_picker_keeps_each_choice(app_env, monkeypatch):
    """Issue 12, item 6: choosing job-4 then job-6 still showed job-4 (in the browser; see also
    tests/test_browser_classroom.py)."""
    class Stopped:
        status, reason, test = "stopped", "stopped by the test", None

    def executor(config, on_event, stop, runs_dir):
        stop.wait(30)
        return Stopped()

    job_manager().executor = executor
    at = open_page("pages/train.py")
    for arch in ("mlp", "lenet", "cnn_small"):
        at.selectbox(key="train_arch").set_value(arch)
        at.button(key="train_start").click().run()
        assert at.selectbox(key="train_job").value == job_manager().jobs()[0].id  # the new job is watched
    ids = [job.id for job in job_manager().jobs()]
    for chosen in (ids[1], ids[0], ids[2], ids[1]):
        at.selectbox(key="train_job").set_value(chosen).run()
        at.run()   # and again: a refresh must not undo the choice
        assert not at.exception and at.selectbox(key="train_job").value == chosen
        assert any(chosen in m.value for m in at.markdown)


def test_home_says_where_to_start(app_env, trained_run):
    """Issue 12, item 18: Home never said where to start (draw with a ready model, or train one)."""
    at = open_page()
    assert not at.exception
    assert "Start here" in [h.value for h in at.subheader]
    links = [str(link.proto) for link in at.get("page_link")]
    assert any("Draw a character: MNIST model ready" in link for link in links)
    assert any("Train your own model" in link for link in links)
    assert any(trained_run.name in c.value and "answers as you draw" in c.value for c in at.caption)
    warnings = [w.value for w in at.warning]
    assert len(warnings) == len(set(warnings))   # no message twice
