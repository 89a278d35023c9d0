import dataclasses
import json
import logging
import os
import re

import pytest
import torch
from safetensors.torch import load_file

from kmnist_core import runs
from kmnist_core.data import load_dataset
from kmnist_core.evaluation import predict_proba


def test_run_folder_round_trip(trained_run, data_root, runs_dir):
    files = sorted(p.name for p in trained_run.path.iterdir())
    assert files == ["model.safetensors", "novelty.safetensors", "run.json"]   # weights, the Draw page's check, record
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
    model = runs.load_model(trained_run)

    def dies_midway(fd):
        raise KeyboardInterrupt  # as if the process were stopped with the new bytes written, not yet renamed

    monkeypatch.setattr(os, "fsync", dies_midway)
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


# Malformed records (issue 13, items 1-4): each is skipped with a reason naming what is wrong,
# refused by name with a CheckpointError, and every other run still lists.

def write_record(runs_dir, name, record) -> None:
    folder = runs_dir / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(record if isinstance(record, str) else json.dumps(record))


def good_record(trained_run) -> dict:
    return json.loads((trained_run.path / "run.json").read_text())


def changed(record: dict, path: str, value) -> dict:
    """A deep copy of the record with the key at the dotted path set to `value`, or removed for DELETE."""
    record = json.loads(json.dumps(record))
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return record


DELETE = object()
MALFORMED = {
    "config is a list": ("config", [1, 2], "config must be a JSON object"),
    "config is text": ("config", "lenet", "config must be a JSON object"),
    "no history": ("history", DELETE, "history is missing"),
    "no model": ("model", DELETE, "model is missing"),
    "no display name": ("dataset.display_name", DELETE, "dataset.display_name is missing"),
    "created is a number": ("created", 5, "created must be text"),
    "created is not a date": ("created", "yesterday", "created must be a date"),
    "name is a number": ("name", 7, "name must be text"),
    "accuracy is a word": ("test.accuracy", "high", "test.accuracy must be a number"),
    "pid is text": ("pid", "abc", "pid must be a whole number"),
    "class names are null": ("dataset.class_names", None, "dataset.class_names must be a list"),
    "dropout is text": ("config.dropout", "0.2", "dropout must be a number"),
    "width is text": ("config.width", "wide", "width must be a number"),
    "normalization is text": ("normalization", "standard", "normalization must be a JSON object"),
    "std is zero": ("normalization.std", 0, "normalization.std must be positive"),
    "std is NaN": ("normalization.std", float("nan"), "normalization.std must be a finite number"),
    "status is unknown": ("status", "exploded", "status must be one of"),
    "width is absurd": ("config.width", 50.0, "width must be between"),
    "more epochs than planned": ("config.epochs", 1, "history has 2 epochs but the run planned 1"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_record_is_skipped_with_its_reason_and_refused_by_name(trained_run, runs_dir, case):
    path, value, reason = MALFORMED[case]
    write_record(runs_dir, "bad", changed(good_record(trained_run), path, value))
    found, problems = runs.scan_runs(runs_dir)
    assert [r.id for r in found] == [trained_run.id]
    (problem,) = problems
    assert problem.startswith("Run 'bad': run.json is malformed: ") and reason in problem, problem
    with pytest.raises(runs.CheckpointError, match=re.escape(reason)):
        runs.load_run("bad", runs_dir)


def test_json_nested_a_hundred_thousand_levels_deep_is_skipped(trained_run, runs_dir):
    write_record(runs_dir, "deep", "[" * 100_000 + "]" * 100_000)
    write_record(runs_dir, "deep-config", '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    found, problems = runs.scan_runs(runs_dir)
    assert [r.id for r in found] == [trained_run.id]
    assert len(problems) == 2 and all("run.json is corrupt" in p or "malformed" in p for p in problems)


def test_the_cli_lists_the_good_runs_and_one_line_per_broken_one(trained_run, runs_dir, capsys):
    from kmnist_core.cli import main
    record = good_record(trained_run)
    write_record(runs_dir, "list-config", changed(record, "config", [1]))
    write_record(runs_dir, "bad-created", changed(record, "created", 5))
    assert main(["list", "--runs-dir", str(runs_dir)]) == 0
    out, err = capsys.readouterr()
    assert trained_run.id in out and "Traceback" not in err
    assert sorted(line.split("'")[1] for line in err.splitlines()) == ["bad-created", "list-config"]


def test_every_shipped_record_reads_and_writes_back_unchanged():
    from pathlib import Path

    from kmnist_core.config import TrainConfig
    for path in sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("shipped-*/run.json")):
        written = json.loads(path.read_text())
        back = runs.RunRecord.from_json(written).to_json()
        added = {key: value for key, value in back["config"].items() if key not in written["config"]}
        assert added == {key: getattr(TrainConfig(), key) for key in added}  # options added since: their defaults
        assert back == {**written, "config": {**written["config"], **added}}, path


def test_unknown_top_level_keys_round_trip_and_nested_ones_are_ignored(trained_run, runs_dir):
    record = changed(good_record(trained_run), "from_a_newer_version", {"kept": [1, 2]})
    record = changed(record, "framing", {"mean_height": 19.5})
    record = changed(record, "model.future_detail", 3)
    (trained_run.path / "run.json").write_text(json.dumps(record))
    run = runs.load_run(trained_run.id, runs_dir)
    assert run.record.framing == {"mean_height": 19.5} and run.record.extras == {"from_a_newer_version": {"kept": [1, 2]}}
    runs.rename_run(run, "renamed")
    back = good_record(trained_run)
    assert back["from_a_newer_version"] == {"kept": [1, 2]} and back["framing"] == {"mean_height": 19.5}
    assert "future_detail" not in back["model"] and back["name"] == "renamed"


def test_weights_holding_nan_are_refused_with_a_reason(trained_run):
    from safetensors.torch import save_file
    state = {k: v.clone() for k, v in load_file(trained_run.path / "model.safetensors").items()}
    first = next(iter(state))
    state[first][0] = float("nan")
    save_file(state, trained_run.path / "model.safetensors")
    with pytest.raises(runs.CheckpointError, match="NaN or infinite values"):
        runs.load_model(trained_run)


def test_a_history_longer_than_any_run_is_refused_and_charts_thin_long_ones(trained_run, runs_dir):
    from kmnist_core import charts
    record = good_record(trained_run)
    rows = [dict(record["history"][0], epoch=i) for i in range(1, 1001)]
    write_record(runs_dir, "long", changed(changed(record, "config.epochs", 1000), "history", rows))
    write_record(runs_dir, "huge", changed(changed(record, "config.epochs", 1000), "history",
                                           [dict(row, epoch=i) for i in range(1, 40_001) for row in rows[:1]]))
    found, problems = runs.scan_runs(runs_dir)
    assert {r.id for r in found} == {trained_run.id, "long"}
    assert len(problems) == 1 and "history has 40000 epochs but the run planned 1000" in problems[0]
    long = next(r for r in found if r.id == "long")
    figure = charts.training_curves(long.record.history)
    assert all(len(trace.x) <= charts.MAX_CURVE_POINTS + 1 for trace in figure.data)
    assert figure.data[0].x[-1] == 1000  # thinned, but to the end


def test_a_folder_deleted_while_it_is_read_is_not_listed(trained_run, runs_dir, monkeypatch):
    import shutil
    write_record(runs_dir, "vanishing", good_record(trained_run))
    original = runs._read_regular

    def deleted_first(path, limit):
        if path.parent.name == "vanishing":
            shutil.rmtree(path.parent)  # another process deletes the run between the check and the read
        return original(path, limit)

    monkeypatch.setattr(runs, "_read_regular", deleted_first)
    found, problems = runs.scan_runs(runs_dir)
    assert [r.id for r in found] == [trained_run.id] and problems == []


def test_scanning_again_reads_only_the_records_that_changed(trained_run, runs_dir, monkeypatch):
    reads = []
    original = runs.RunRecord.from_json
    monkeypatch.setattr(runs.RunRecord, "from_json", classmethod(lambda cls, value: reads.append(1) or original(value)))
    write_record(runs_dir, "other", good_record(trained_run))
    runs.scan_runs(runs_dir)
    first = len(reads)
    found, _ = runs.scan_runs(runs_dir)
    assert first == 2 and len(reads) == first  # nothing changed: nothing parsed
    runs.rename_run(next(r for r in found if r.id == "other"), "changed")
    found, _ = runs.scan_runs(runs_dir)
    assert len(reads) == first + 1 and {r.name for r in found} == {"changed", trained_run.name}


def test_the_scan_cache_is_bounded(trained_run, runs_dir, monkeypatch):
    monkeypatch.setattr(runs, "_scanned", runs._RecordCache(3))
    for i in range(6):
        write_record(runs_dir, f"copy-{i}", good_record(trained_run))
    found, _ = runs.scan_runs(runs_dir)
    assert len(found) == 7 and len(runs._scanned.entries) == 3


# Saving (issue 13, item 7)

def test_run_files_follow_the_umask_so_others_can_read_shared_runs(trained_run):
    previous = os.umask(0o022)
    try:
        trained_run.save()
        trained_run.save_model(runs.load_model(trained_run))
    finally:
        os.umask(previous)
    for name in ("run.json", "model.safetensors"):
        assert (trained_run.path / name).stat().st_mode & 0o777 == 0o644


def test_weights_and_folder_are_fsynced_before_and_after_the_rename(trained_run, monkeypatch):
    synced = []
    original = os.fsync

    def record_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return original(fd)

    monkeypatch.setattr(os, "fsync", record_fsync)
    trained_run.save_model(runs.load_model(trained_run))
    assert len(synced) == 2
    assert os.path.basename(synced[0]).startswith(".model.safetensors.") and synced[1] == str(trained_run.path)


def test_a_scan_removes_the_temporaries_of_killed_saves_only(trained_run, runs_dir):
    import socket
    import time
    host = socket.gethostname()
    dead = trained_run.path / f".model.safetensors.{host}.{2**22 + 4321}.abcd1234.tmp"
    live = trained_run.path / f".run.json.{host}.{os.getpid()}.abcd1234.tmp"
    old = trained_run.path / ".run.json.x8k2p_q.tmp"  # named as earlier versions did, an hour old
    recent = trained_run.path / ".run.json.y9l3r_w.tmp"
    for path in (dead, live, old, recent):
        path.write_bytes(b"half a file")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    runs.scan_runs(runs_dir)
    assert not dead.exists() and not old.exists() and live.exists() and recent.exists()
    assert runs.load_run(trained_run.id, runs_dir).status == "finished"


def test_kill_9_during_cli_runs_leaves_every_run_loadable_or_skipped(data_root, runs_dir):
    """The fault injection: the real CLI killed at random moments, several times."""
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    generator = random.Random(0)
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "kmnist_core", "train", "--dataset", "mnist", "--arch", "mlp_small", "--epochs",
             "200", "--batch-size", "64", "--data-root", str(data_root), "--runs-dir", str(runs_dir), "--device", "cpu"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for the run to exist, then kill at a random moment of its epochs (each saves both files).
        deadline = time.monotonic() + 120
        while not (runs_dir.is_dir() and any(runs_dir.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(generator.uniform(0, 2))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        time.sleep(generator.uniform(0, 0.1))
    found, problems = runs.scan_runs(runs_dir)
    assert problems == [] or all("has no run.json" in p for p in problems)  # killed between mkdir and save
    for run in found:
        assert run.status == "interrupted"
        if run.has_weights:
            runs.load_model(run)
    assert not list(runs_dir.glob("*/.*.tmp"))  # the scan removed what the kills left


INSTALL_CHECKPOINTS = runs.INSTALL_CHECKPOINTS
SHIPPED_IDS = sorted(p.name for p in INSTALL_CHECKPOINTS.glob("shipped-*"))


def test_shipped_models_are_listed_wherever_the_runs_folder_is(trained_run, runs_dir, tmp_path, monkeypatch,
                                                                  capsys):
    """Issue 12, item 1: with the runs folder moved, the shipped models were listed nowhere."""
    from kmnist_core.cli import main
    monkeypatch.setenv("KMNIST_SHIPPED_DIR", str(INSTALL_CHECKPOINTS))  # the install's own (conftest hides them)
    listed = runs.list_runs(runs_dir)
    assert [r.id for r in listed if not r.shipped] == [trained_run.id]
    assert sorted(r.id for r in listed if r.shipped) == SHIPPED_IDS and SHIPPED_IDS
    elsewhere = tmp_path / "nothing-here-yet"
    assert sorted(r.id for r in runs.list_runs(elsewhere)) == SHIPPED_IDS
    assert main(["list", "--runs-dir", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert "no runs in" not in out and all(f"[shipped] {run_id}: finished" in out for run_id in SHIPPED_IDS)
    # reached by id from any runs folder, and still protected
    shipped = runs.load_run(SHIPPED_IDS[0], elsewhere)
    assert shipped.path == INSTALL_CHECKPOINTS / SHIPPED_IDS[0]
    with pytest.raises(runs.CheckpointError, match="shipped"):
        runs.delete_run(shipped)
    with pytest.raises(runs.CheckpointError, match="shipped"):
        runs.rename_run(shipped, "mine now")
    assert runs.load_run(SHIPPED_IDS[0], elsewhere).name == shipped.name
    # listed once: when the runs folder is the install's own, and beside a user's copy of one
    assert sorted(r.id for r in runs.list_runs(INSTALL_CHECKPOINTS)) == SHIPPED_IDS
    import shutil
    shutil.copytree(INSTALL_CHECKPOINTS / SHIPPED_IDS[0], runs_dir / SHIPPED_IDS[0])
    ids = [r.id for r in runs.list_runs(runs_dir)]
    assert sorted(ids) == sorted([trained_run.id, *SHIPPED_IDS])
    assert next(r for r in runs.list_runs(runs_dir) if r.id == SHIPPED_IDS[0]).path.parent == INSTALL_CHECKPOINTS


def record_of(trained_run, dataset: str, status: str = "finished", test: float | None = 0.9,
              best_epoch: int | None = 2, reason: str = ""):
    return dataclasses.replace(
        trained_run.record, dataset=dataclasses.replace(trained_run.record.dataset, name=dataset),
        status=status, reason=reason, best_epoch=best_epoch,
        test=runs.TestResult(0.3, test) if test is not None else None)


def test_pages_open_on_the_best_complete_model_of_their_dataset(trained_run, runs_dir):
    """Issue 12, item 4: the newest run, even one stopped after a few steps, was every page's model."""
    def run(name, *args, **kwargs):
        path = runs_dir / name
        if not path.exists():
            import shutil
            shutil.copytree(trained_run.path, path)
        return runs.Run(path, record_of(trained_run, *args, **kwargs))

    mnist_best = run("mnist-best", "mnist", test=0.99)
    mnist_sweep = run("mnist-1-epoch", "mnist", test=0.80)
    stopped = run("kmnist-stopped", "kmnist", status="stopped", test=None, best_epoch=None,
                  reason="stopped at epoch 1, step 21")
    partial = run("kmnist-partial", "kmnist", status="stopped", test=None, best_epoch=1, reason="stopped at epoch 2")
    newest_first = [stopped, partial, mnist_sweep, mnist_best]
    # no finished KMNIST model yet: the best finished model of another dataset, never a broken-off one
    assert runs.best_run(newest_first, "kmnist") is mnist_best
    flagship = run("kmnist-flagship", "kmnist", test=0.99)
    quick = run("kmnist-quick", "kmnist", test=0.96)
    assert runs.best_run([quick, *newest_first, flagship], "kmnist") is flagship
    better = run("kmnist-better", "kmnist", test=0.995)
    assert runs.best_run([quick, better, flagship], "kmnist") is better
    assert runs.best_run([stopped], "kmnist") is stopped and runs.best_run([], "kmnist") is None
    # listed after the complete ones, in their order, and marked with what their weights are
    ordered = runs.complete_first([stopped, quick, partial, flagship])
    assert ordered == [quick, flagship, stopped, partial]
    assert [r.caveat for r in ordered] == [
        "", "", "stopped at epoch 1, step 21: weights never validated",
        "stopped after 2 of 2 epochs: the weights of epoch 1, never tested"]
    (runs_dir / "kmnist-partial" / runs.WEIGHTS).unlink()
    assert partial.caveat == "stopped at epoch 2: no weights kept"
