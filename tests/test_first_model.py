"""The one-click first KMNIST model: download through torchvision (from a local mirror
here) and train the default recipe as a job, with the progress and failures shown."""

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
    assert "Test accuracy" in [m.label for m in at.metric]        # and evaluated
    assert not [b for b in at.button if b.label.startswith("Download")]


def test_offline_failure_is_explained_once_to_the_session_that_asked(app_env, offline_kmnist):

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


def test_the_page_switches_to_the_model_its_offer_made(app_env, trained_run):
    """Issue 12, item 5: after the one-click model finished, the page stayed on the old MNIST model."""
    from pages.helpers.background_jobs import job_manager
    at = open_page("pages/evaluate.py")   # KMNIST is on disk here (synthetic): the offer trains at once
    assert at.selectbox(key="evaluate_run").value == trained_run.id
    (offer,) = [b for b in at.button if b.label.startswith("Train a Kuzushiji-MNIST model (")]
    offer.click().run()
    (job,) = job_manager().jobs()
    assert job_manager().wait(job, timeout=900) and job.status == "finished"   # a generous limit on a busy machine
    at.run()
    assert not at.exception
    assert at.selectbox(key="evaluate_run").value == job.run_id
    at.selectbox(key="evaluate_run").set_value(trained_run.id).run()   # and the user can go back
    at.run()
    assert at.selectbox(key="evaluate_run").value == trained_run.id


def test_the_estimate_uses_the_running_jobs_speed_and_never_probes_beside_it(app_env, monkeypatch):
    """Issue 12, item 13: the offer timed training steps on the cores a job was training on."""
    import threading

    from kmnist_core import estimates, training
    from kmnist_core.config import TrainConfig
    from pages.helpers.background_jobs import job_manager

    monkeypatch.setattr(estimates, "_speeds", {})

    def probe(*args, **kwargs):
        raise AssertionError("a probe was timed while a job trained on the same cores")

    monkeypatch.setattr(estimates, "probe", probe)

    class Stopped:
        status, reason, test = "stopped", "stopped by the test", None

    def executor(config, on_event, stop, runs_dir):   # trains the quick recipe at 1,000 images/s
        on_event(training.RunStarted("run", "", config.epochs, 421, 1, "cpu"))
        for step in range(1, 31):
            on_event(training.Step(1, step, 842, 1.0, 0.001, 1000.0, step * 0.128))
        stop.wait(30)
        return Stopped()

    manager = job_manager()
    manager.executor = executor
    job = manager.submit(TrainConfig(dataset="mnist"))
    while job.snapshot().step < 30:
        threading.Event().wait(0.01)
    at = open_page("pages/evaluate.py")
    assert not at.exception
    (offer,) = [b for b in at.button if b.label.startswith("Train a Kuzushiji-MNIST model (")]
    minutes = round(estimates.training_images(TrainConfig(dataset="kmnist"), 60000) / 1000 * 1.1 / 60)
    assert offer.label.endswith(f"(about {minutes} min of training on this machine)")
