import dataclasses
import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file

from kmnist_core import runs
from kmnist_core.data import load_dataset
from kmnist_core.evaluation import predict_proba


def test_run_folder_round_trip(trained_run, data_root, runs_dir):
    files = sorted(p.name for p in trained_run.path.iterdir())
    assert files == ["model.safetensors", "run.json"]
    record = json.loads((trained_run.path / "run.json").read_text())
    for key in ("config", "dataset", "normalization", "history", "test", "timings", "device", "versions", "status"):
        assert key in record
    assert record["dataset"]["class_names"] == [str(i) for i in range(10)]
    assert record["status"] == "finished" and len(record["history"]) == 2

    loaded = runs.load_run(trained_run.id, runs_dir)
    model = runs.load_model(loaded)
    images = load_dataset("mnist", data_root).test_images[:50]
    probabilities = predict_proba(model, images, loaded.normalization)
    assert probabilities.shape == (50, 10) and torch.allclose(probabilities.sum(1), torch.ones(50))
    # weights are plain safetensors with their architecture beside them
    from safetensors import safe_open
    with safe_open(trained_run.path / "model.safetensors", "pt") as f:
        assert f.metadata()["arch"] == "mlp_small" and f.metadata()["num_classes"] == "10"
    assert set(load_file(trained_run.path / "model.safetensors")) == set(model.state_dict())


def test_corrupt_truncated_and_mismatched_files_name_the_run(trained_run, runs_dir):
    weights = trained_run.path / "model.safetensors"
    good = weights.read_bytes()

    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(runs.CheckpointError, match=f"Run '{trained_run.id}'.*corrupt or truncated"):
        runs.load_model(runs.load_run(trained_run.id, runs_dir))
    weights.write_bytes(good)

    record = trained_run.record
    mismatched = runs.Run(trained_run.path, dataclasses.replace(record, config=dataclasses.replace(record.config,
                                                                                                   arch="lenet")))
    with pytest.raises(runs.CheckpointError, match="do not fit architecture 'lenet'"):
        runs.load_model(mismatched)
    wrong_classes = runs.Run(trained_run.path, dataclasses.replace(
        record, dataset=dataclasses.replace(record.dataset, class_names=["a", "b"])))
    with pytest.raises(runs.CheckpointError, match="with 2 classes"):
        runs.load_model(wrong_classes)

    (trained_run.path / "run.json").write_text("{ not json")
    with pytest.raises(runs.CheckpointError, match=f"Run '{trained_run.id}'.*corrupt"):
        runs.load_run(trained_run.id, runs_dir)
    with pytest.raises(runs.CheckpointError, match="not found"):
        runs.load_run("no-such-run", runs_dir)


def test_listing_skips_broken_runs_with_a_warning(trained_run, runs_dir, caplog):
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "run.json").write_text("[]")
    (runs_dir / "empty").mkdir()
    with caplog.at_level(logging.WARNING):
        listed = runs.list_runs(runs_dir)
    assert [r.id for r in listed] == [trained_run.id]
    assert "broken" in caplog.text and "empty" in caplog.text
    assert runs.list_runs(runs_dir / "missing") == []


def test_a_failed_save_leaves_the_previous_file(trained_run, monkeypatch):
    weights = trained_run.path / "model.safetensors"
    before = weights.read_bytes()

    def dies_midway(state, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt  # as if the process were killed mid-write

    monkeypatch.setattr(runs, "save_file", dies_midway)
    model = runs.load_model(trained_run)
    with pytest.raises(KeyboardInterrupt):
        trained_run.save_model(model)
    assert weights.read_bytes() == before
    assert [p.name for p in trained_run.path.iterdir() if p.name.startswith(".")] == []


def test_running_run_of_a_dead_process_is_interrupted(trained_run):
    trained_run.record.status, trained_run.record.pid = "running", 2**22 + 12345
    assert trained_run.status == "interrupted"
    trained_run.record.pid = os.getpid()
    assert trained_run.status == "running"


def test_rename_and_delete(trained_run, runs_dir):
    runs.rename_run(trained_run, "  my first model ")
    assert runs.load_run(trained_run.id, runs_dir).name == "my first model"
    trained_run.record.shipped = True
    with pytest.raises(runs.CheckpointError, match="shipped"):
        runs.delete_run(trained_run)
    trained_run.record.shipped = False
    runs.delete_run(trained_run)
    assert not trained_run.path.exists()


def test_no_pickle_is_ever_loaded(trained_run, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must not be used on checkpoints")
    monkeypatch.setattr(torch, "load", refuse)
    runs.load_model(runs.load_run(trained_run.path))
