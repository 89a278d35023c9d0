"""The one-click first KMNIST model: download through torchvision (from a local mirror
here) and train the default recipe as a job, with the progress and failures shown."""

import socket

import torchvision

from conftest import open_page


def click_offer(at):
    (button,) = [b for b in at.button if b.label.startswith("Download Kuzushiji-MNIST and train a model (about ")]
    assert "min of training on this machine" in button.label
    return button.click().run()


def wait_for_jobs():
    from pages.helpers.background_jobs import job_manager
    for job in job_manager().jobs():
        assert job_manager().wait(job, timeout=120)
    return job_manager().jobs()


def test_download_and_train_from_a_mirror(app_env, kmnist_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(tmp_path / "empty-root"))
    at = open_page("pages/evaluate.py")
    assert not at.exception
    at = click_offer(at)
    assert not at.exception
    (job,) = wait_for_jobs()
    assert job.status == "finished" and job.config.dataset == "kmnist"
    at.run()
    assert not at.exception
    assert (tmp_path / "empty-root" / "KMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert at.selectbox(key="evaluate_run").value == job.run_id          # the new model is listed and chosen
    assert at.metric[0].label == "Test accuracy"        # and evaluated
    assert not [b for b in at.button if b.label.startswith("Download")]


def test_offline_failure_is_explained(app_env, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{closed}/"])
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(tmp_path / "offline-root"))
    at = click_offer(open_page("pages/evaluate.py"))
    (job,) = wait_for_jobs()
    assert job.status == "failed"
    at.run()
    assert not at.exception
    (error,) = [e.value for e in at.error if "last attempt failed" in e.value]
    assert "Kuzushiji-MNIST is not in" in error and "offline-root" in error and "download failed" in error
