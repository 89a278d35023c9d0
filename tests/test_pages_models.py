"""Which model the pages open on and what they say about it (issue 12, items 1, 4, 5 and 9;
issue 10, part 1): the best finished model of the preferred dataset, Kuzushiji-MNIST; shipped
models listed wherever the runs folder is; broken-off runs after finished ones, marked; the
dataset's credit and both validation and test accuracy wherever a KMNIST model is shown."""

from __future__ import annotations

import dataclasses
import re
import shutil
from datetime import datetime, timedelta, timezone

from conftest import open_page
from kmnist_core import data, runs

CREDIT = '"KMNIST Dataset" (created by CODH), adapted from "Kuzushiji Dataset" (created by NIJL and others), ' \
         'doi:10.20676/00000341'


def clone(run: runs.Run, runs_dir, name: str, *, dataset: str = "mnist", minutes_ago: int = 0,
          **changes) -> runs.Run:
    """A copy of a trained run under another id, its record changed (the weights are the same)."""
    path = runs_dir / name
    shutil.copytree(run.path, path)
    info = data.DATASETS[dataset]
    record = dataclasses.replace(
        run.record, id=name, name=name, attribution=info.attribution,
        dataset=dataclasses.replace(run.record.dataset, name=dataset, display_name=info.display_name,
                                    class_names=list(info.class_names)),
        created=(datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds"),
        **changes)
    runs.write_record(path / runs.RECORD, record)
    return runs.load_run(name, runs_dir)


def stopped_early(run, runs_dir, name, dataset="kmnist"):
    return clone(run, runs_dir, name, dataset=dataset, status="stopped", reason="stopped at epoch 1, step 71",
                 test=None, best_epoch=None, best_val_accuracy=None, history=[])


def labels(picker) -> dict[str, str]:
    """Each option's label by its run's name (these runs are named by their ids)."""
    return {label.split(" · ")[0]: label for label in picker.options}


def test_draw_and_evaluate_open_on_the_best_finished_kmnist_model(app_env, trained_run, runs_dir):
    """Item 4: a fresh session opened on the newest run, one stopped after 71 steps."""
    best = clone(trained_run, runs_dir, "kmnist-best", dataset="kmnist", minutes_ago=60,
                 test=runs.TestResult(0.2, 0.96))
    clone(trained_run, runs_dir, "kmnist-1-epoch-sweep", dataset="kmnist", minutes_ago=30,
          test=runs.TestResult(0.9, 0.80))
    stopped_early(trained_run, runs_dir, "kmnist-stopped")  # the newest
    for page, key in (("pages/draw.py", "draw_run"), ("pages/evaluate.py", "evaluate_run")):
        at = open_page(page)
        assert not at.exception, page
        picker = at.selectbox(key=key)
        assert picker.value == best.id, page
        assert list(labels(picker))[-1] == "kmnist-stopped", page  # after every finished run
        assert labels(picker)["kmnist-stopped"].endswith("⚠️ stopped at epoch 1, step 71: weights never validated")
        assert labels(picker)[best.id].endswith("test 96.00%")


def test_without_a_finished_kmnist_model_the_best_of_another_dataset(app_env, trained_run, runs_dir):
    stopped_early(trained_run, runs_dir, "kmnist-stopped")
    clone(trained_run, runs_dir, "fashion-run", dataset="fashion", test=runs.TestResult(0.5, 0.5))
    at = open_page("pages/draw.py")
    assert not at.exception and at.selectbox(key="draw_run").value == trained_run.id


def test_a_choice_sticks_and_follows_to_the_other_pages(app_env, trained_run, runs_dir):
    """The picker's value is its own state: a choice is never undone by the next run of the page."""
    best = clone(trained_run, runs_dir, "kmnist-best", dataset="kmnist", test=runs.TestResult(0.2, 0.96))
    at = open_page("pages/draw.py")
    assert at.selectbox(key="draw_run").value == best.id
    for chosen in (trained_run.id, best.id, trained_run.id):
        at.selectbox(key="draw_run").set_value(chosen).run()
        assert at.selectbox(key="draw_run").value == chosen
        at.run()
        assert not at.exception and at.selectbox(key="draw_run").value == chosen
    at.switch_page("pages/evaluate.py").run()
    assert at.selectbox(key="evaluate_run").value == trained_run.id


def test_shipped_models_are_offered_whatever_the_runs_folder(app_env, monkeypatch):
    """Item 1: with KMNIST_RUNS_DIR elsewhere, "There is no trained model yet"."""
    monkeypatch.setenv("KMNIST_SHIPPED_DIR", str(runs.INSTALL_CHECKPOINTS))
    shipped = sorted(p.name for p in runs.INSTALL_CHECKPOINTS.glob("shipped-*"))
    at = open_page("pages/draw.py")   # app_env's runs folder is empty
    assert not at.exception
    assert not any("no trained model" in i.value for i in at.info)
    assert sorted(option.split(" · ")[0] for option in at.selectbox(key="draw_run").options) == \
        sorted("📦 " + runs.load_run(name, runs.INSTALL_CHECKPOINTS).name for name in shipped)
    at = open_page("pages/train.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == len(shipped) and all(name.startswith("📦 ") for name in table["run"])


def test_evaluate_shows_validation_and_test_accuracy_and_credits_kmnist(app_env, trained_run, runs_dir):
    """Issue 10, parts 1 and 4: the dataset's credit, and both accuracies with why they differ."""
    kmnist = clone(trained_run, runs_dir, "kmnist-run", dataset="kmnist", test=runs.TestResult(0.2, 0.96))
    at = open_page("pages/evaluate.py")
    assert not at.exception and at.selectbox(key="evaluate_run").value == kmnist.id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation accuracy"] == f"{kmnist.record.best_val_accuracy:.2%}"
    assert metrics["Test accuracy"].endswith("%")
    captions = [c.value for c in at.caption]
    assert any("official test set comes from other writers and books" in c and "never on test" in c for c in captions)
    assert any(CREDIT in c and "CC BY-SA 4.0" in c for c in captions)

    at.selectbox(key="evaluate_run").set_value(trained_run.id).run()   # MNIST: no such sentence, no credit
    captions = [c.value for c in at.caption]
    assert not any("official test set comes from" in c or CREDIT in c for c in captions)


def test_kmnist_models_carry_the_credit_on_draw_and_in_the_runs_table(app_env, trained_run, runs_dir):
    clone(trained_run, runs_dir, "kmnist-run", dataset="kmnist", test=runs.TestResult(0.2, 0.96))
    at = open_page("pages/draw.py")
    assert not at.exception and any(CREDIT in c.value for c in at.caption)
    at = open_page("pages/train.py")
    assert not at.exception
    assert any(c.value.startswith("Kuzushiji-MNIST runs: ") and CREDIT in c.value for c in at.caption)


PAIR = re.compile(r"^\*\*\d+\. .+ ↔ .+\*\* — \d+ mistakes?: .+ read as .+: (once|twice|[\d,]+ times)"
                  r"(; .+ read as .+: (once|twice|[\d,]+ times))?$")


def test_most_confused_pairs_keep_counts_apart_from_class_names(app_env, trained_run):
    """Item 16: "1 1 read as 7"."""
    at = open_page("pages/evaluate.py")
    lines = [m.value for m in at.markdown if "↔" in m.value]
    assert lines and all(PAIR.match(line) for line in lines), lines
    assert not any(re.search(r"\d+ \d+ read as", line) for line in lines)
