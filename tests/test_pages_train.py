"""AppTest coverage of the Home and Train pages on synthetic data."""

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
    assert at.title[0].value == "✍️ KMNIST Lab"
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
