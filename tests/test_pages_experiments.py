"""The Compare, Sweep, Data and Features pages, run headless through the real app
(st.navigation and all) on synthetic data with small runs of a few seconds."""

import dataclasses
import time

import pytest
from conftest import open_page

from kmnist_core import training
from pages.helpers.background_jobs import job_manager  # the app's own: st.cache_resource is process-wide


@pytest.fixture
def two_runs(app_env, trained_run, tiny_config, runs_dir):
    """The conftest's MLP run and a LeNet one, in the app's runs folder."""
    return [trained_run, training.train(dataclasses.replace(tiny_config, arch="lenet", epochs=1), runs_dir=runs_dir)]


def test_compare_lists_runs_and_overlays_the_chosen(two_runs):
    at = open_page("pages/compare.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["arch"]) == {"mlp_small", "lenet"}
    assert at.get("download_button")
    assert len(at.multiselect) == 3  # datasets, architectures, runs
    assert len(at.get("plotly_chart")) == 3  # accuracy and loss curves, per-class bars

    at.multiselect(key="compare_archs").set_value(["lenet"]).run()  # filter the table by architecture
    assert not at.exception and list(at.dataframe[0].value["arch"]) == ["lenet"]
    at.radio(key="compare_axis").set_value("elapsed").run()
    assert not at.exception


def test_sweep_runs_two_values_and_tabulates_them(app_env):
    at = open_page("pages/sweep.py")
    assert not at.exception and at.button(key="start_sweep")
    assert "No sweeps yet" in at.info[0].value

    at.selectbox(key="sweep_dataset").set_value("mnist")
    at.selectbox(key="sweep_arch").set_value("mlp_small")
    at.number_input(key="sweep_epochs").set_value(1)
    at.selectbox(key="sweep_param").set_value("lr").run()
    at.text_input(key="sweep_values_lr").set_value("1e-3, fast").run()
    assert "'fast' is not a valid float" in at.error[0].value

    at.text_input(key="sweep_values_lr").set_value("1e-3, 1e-2").run()
    at.button(key="start_sweep").click().run()
    assert not at.exception
    jobs = job_manager().jobs()
    assert len(jobs) == 2 and all(job_manager().wait(job, timeout=120) for job in jobs)
    assert [job.status for job in jobs] == ["finished", "finished"]

    at.run()
    assert not at.exception
    assert at.selectbox(key="sweep_group").value == jobs[0].config.group
    table = at.dataframe[0].value
    assert table["lr"].tolist() == ["0.001", "0.01"] and table["runs"].tolist() == [1, 1]
    assert [m.value for m in at.metric] == ["0", "0", "2", "0", "0"]  # queued, running, finished, failed, stopped
    assert len(at.get("plotly_chart")) == 1


def test_stopping_a_sweep_stops_the_running_job_and_cancels_the_queued(app_env):
    at = open_page("pages/sweep.py")
    at.selectbox(key="sweep_dataset").set_value("mnist")
    at.selectbox(key="sweep_arch").set_value("resnet")
    at.number_input(key="sweep_epochs").set_value(50)  # long enough to be stopped midway
    at.selectbox(key="sweep_param").set_value("batch_size").run()
    at.text_input(key="sweep_values_batch_size").set_value("16, 32").run()
    at.button(key="start_sweep").click().run()
    assert not at.exception and at.button(key="stop_sweep")
    jobs = job_manager().jobs()
    while jobs[-1].status == "queued":  # the first one submitted: let it start, to be stopped, not cancelled
        time.sleep(0.05)

    at.button(key="stop_sweep").click().run()
    assert all(job_manager().wait(job, timeout=60) for job in jobs)
    assert sorted(job.status for job in jobs) == ["cancelled", "stopped"]
    at.run()
    assert not at.exception and [b.key for b in at.button] == ["start_sweep"]  # nothing left to stop
    assert [m.value for m in at.metric] == ["0", "0", "0", "0", "2"]  # the cancelled one counts as stopped
    assert any("No run of this sweep has finished yet" in i.value for i in at.info)


def test_a_sweep_whose_runs_all_fail_counts_them_and_says_why_once(app_env, offline_kmnist):
    """Offline, every run of a Kuzushiji-MNIST sweep fails to download it, for the same reason."""
    at = open_page("pages/sweep.py")
    at.selectbox(key="sweep_dataset").set_value("kmnist")
    at.selectbox(key="sweep_arch").set_value("mlp_small")
    at.selectbox(key="sweep_param").set_value("lr").run()
    at.text_input(key="sweep_values_lr").set_value("1e-3, 3e-3, 1e-2").run()
    at.button(key="start_sweep").click().run()
    jobs = job_manager().jobs()
    assert len(jobs) == 3 and all(job_manager().wait(job, timeout=60) for job in jobs)
    at.run()
    assert not at.exception
    assert {m.label.split()[-1]: m.value for m in at.metric} == {
        "queued": "0", "running": "0", "finished": "0", "failed": "3", "stopped": "0"}
    (error,) = at.error
    assert error.value.startswith("All 3 runs failed: Kuzushiji-MNIST is not in") and "download failed" in error.value


@pytest.mark.parametrize("contents", ["nothing", "other files"])
def test_a_wrong_idx_folder_is_one_message_before_the_sweep_starts(app_env, tmp_path, contents):
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    if contents == "other files":
        (folder / "hosts").write_text("127.0.0.1 localhost\n")
        (folder / "lib").mkdir()
    at = open_page("pages/sweep.py")
    at.text_input[0].set_value(str(folder)).run()
    assert not at.exception
    (error,) = at.error
    assert "holds none of the idx files" in error.value and "t10k-labels-idx1-ubyte (each may be .gz)" in error.value
    assert "start_sweep" not in [b.key for b in at.button]
    assert at.selectbox(key="sweep_param")  # the rest of the page is still there


def test_data_page_shows_examples_means_balance_and_pixels(app_env):
    at = open_page("pages/dataset.py")
    assert not at.exception
    assert any("<span style='font-size:2.2em'>お</span> o" in m.value for m in at.markdown)  # KMNIST first

    at.selectbox(key="data_dataset").set_value("mnist").run()
    assert not at.exception
    assert len(at.image) == 10 + 10 + 1  # a strip per class, the class means, the browsed image
    assert len(at.get("plotly_chart")) == 2  # class balance, pixel histogram
    pixels = at.dataframe[0].value
    assert pixels["split"].tolist() == ["train", "validation", "test"] and pixels["images"].tolist() == [900, 100, 300]
    at.number_input(key="data_browse_train").set_value(5).run()
    assert not at.exception


def test_features_page_projects_the_test_set(app_env, trained_run):
    at = open_page("pages/features.py")
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # PCA and t-SNE
    spec = charts[0].proto.spec
    assert "scattergl" in spec and spec.count('"customdata"') in (10, 11)  # a trace a class (and the mistakes)
    assert any("first layer's units, 64 of 64 shown" in c.value for c in at.caption)
    assert len(at.image) == 64 // 16  # the MLP's first-layer weights, 16 a row

    at.session_state["features_picked"] = (trained_run.id, 5)  # what clicking test image 5 stores
    at.run()
    assert not at.exception and any("Test image **#5**" in m.value for m in at.markdown)


def test_the_sweep_page_rereads_only_the_runs_that_changed(two_runs, monkeypatch):
    """Issue 13, item 25: the page refreshes every second while a sweep runs; each refresh
    rescans the runs folder, but parses only the records that changed since."""
    from kmnist_core import runs
    at = open_page("pages/sweep.py")
    parsed = []
    original = runs.RunRecord.from_json
    monkeypatch.setattr(runs.RunRecord, "from_json", classmethod(lambda cls, value: parsed.append(1) or original(value)))
    at.run()
    assert not at.exception and parsed == []
    runs.rename_run(two_runs[0], "renamed")
    at.run()
    assert len(parsed) == 1


def test_data_page_without_any_dataset_does_not_say_choose_another(app_env, tmp_path, monkeypatch):
    """Issue 12, item 18: "Choose another dataset" when there was none to choose."""
    at = open_page("pages/dataset.py")
    at.selectbox(key="data_dataset").set_value("fashion").run()   # absent, but the others are here
    assert any("Choose another dataset" in c.value for c in at.caption)
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(tmp_path / "no-data-at-all"))
    at = open_page("pages/dataset.py")
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert not any("Choose another dataset" in c for c in captions)
    assert any("None of the datasets is on this machine yet" in c for c in captions)
