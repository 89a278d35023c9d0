"""A run made on a dataset this install no longer has (the retired KMNIST10K stand-in, or a
user's folder since moved): it still lists, loads and predicts with the class names stored in
its run.json, is marked "dataset no longer available", and nothing crashes on it."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import open_page
from kmnist_core import data, drawing, runs
from kmnist_core.cli import main


@pytest.fixture
def old_run(trained_run):
    """A run whose run.json names the retired 'kmnist10k', with its KMNIST class names."""
    record = json.loads((trained_run.path / runs.RECORD).read_text())
    record["dataset"].update(name="kmnist10k", display_name="KMNIST10K (not the KMNIST benchmark)",
                             class_names=list(data.KMNIST_CLASSES))
    record["config"]["dataset"] = "kmnist10k"
    (trained_run.path / runs.RECORD).write_text(json.dumps(record))
    return runs.load_run(trained_run.path)


def test_the_registry_no_longer_knows_it(old_run):
    assert "kmnist10k" not in data.DATASETS and not data.is_available("kmnist10k")
    with pytest.raises(data.DatasetUnavailable, match="Unknown dataset 'kmnist10k'"):
        data.load_dataset("kmnist10k")


def test_it_lists_loads_and_predicts_with_its_stored_class_names(old_run, runs_dir):
    found, problems = runs.scan_runs(runs_dir)
    assert [r.id for r in found] == [old_run.id] and not problems
    model = runs.load_model(old_run)
    image = np.zeros((100, 100), dtype=np.uint8)
    image[20:80, 45:55] = 255
    probabilities = drawing.predict_drawing(model, old_run.normalization, drawing.prepare_drawing(image))
    assert len(probabilities) == len(old_run.class_names) == 10 and old_run.class_names[0] == "お o"


def test_the_command_line_marks_it_and_says_why_it_cannot_evaluate(old_run, runs_dir, tmp_path, capsys):
    assert main(["list", "--runs-dir", str(runs_dir)]) == 0
    assert "KMNIST10K (not the KMNIST benchmark) (dataset no longer available) / mlp_small" in capsys.readouterr().out

    assert main(["evaluate", old_run.id, "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'kmnist10k', a dataset no longer available here" in err
    assert f"recorded test accuracy: {old_run.test_accuracy:.2%}" in err

    image = np.zeros((100, 100), dtype=np.uint8)
    image[20:80, 45:55] = 255
    Image.fromarray(image).save(tmp_path / "stroke.png")
    assert main(["predict", old_run.id, str(tmp_path / "stroke.png"), "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("%") == 3 and any(name in out for name in data.KMNIST_CLASSES)


@pytest.mark.parametrize("page", ["pages/evaluate.py", "pages/draw.py", "pages/features.py", "pages/compare.py",
                                  "pages/train.py"])
def test_no_page_crashes_on_it(app_env, old_run, page):
    at = open_page(page)
    assert not at.exception
    if page in ("pages/evaluate.py", "pages/draw.py", "pages/features.py"):
        picker = at.selectbox[0]
        assert "(dataset no longer available)" in picker.format_func(picker.value)


def test_evaluate_shows_what_was_recorded_and_why_no_more(app_env, old_run):
    at = open_page("pages/evaluate.py")
    assert not at.exception and not at.warning
    assert any("is no longer available here" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy (recorded at the end of training)"] == f"{old_run.test_accuracy:.2%}"
    assert metrics["Validation accuracy"] == f"{old_run.record.best_val_accuracy:.2%}"


def test_draw_shows_its_kana_classes(app_env, old_run):
    at = open_page("pages/draw.py")
    assert not at.exception
    assert any("classes of KMNIST10K" in c.value and "お o" in c.value for c in at.caption)


def test_home_shows_only_the_datasets_of_this_install(app_env):
    at = open_page()
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["Kuzushiji-MNIST", "MNIST", "Fashion-MNIST"]
