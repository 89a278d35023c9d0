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


def test_offline_failure_is_explained_once_to_the_session_that_asked(app_env, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{closed}/"])
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(tmp_path / "offline-root"))

    def failure_shown(at):
        assert not at.exception
        errors = [e.value for e in at.error if "last attempt failed" in e.value]
        retry = [b for b in at.button if b.label.startswith("Try again: download Kuzushiji-MNIST and train a model")]
        assert len(errors) == len(retry)
        return errors

    at = click_offer(open_page("pages/evaluate.py"))
    shown = failure_shown(at)   # refused at once: the failure may already show in the click's own run
    (job,) = wait_for_jobs()
    assert job.status == "failed"
    shown += failure_shown(at.run())
    (error,) = shown
    assert "Kuzushiji-MNIST is not in" in error and "offline-root" in error and "download failed" in error
    assert not failure_shown(at.run())                       # once
    assert not failure_shown(open_page("pages/evaluate.py"))  # never to another visitor
    click_offer(at)                                          # the offer stays
    assert len(wait_for_jobs()) == 2
