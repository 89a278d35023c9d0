import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmnist_core import data, runs, training
from kmnist_core.cli import main
from kmnist_core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_train_list_evaluate_predict(data_root, runs_dir, tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--arch", "mlp_small", "--epochs", "1", "--batch-size", "64",
                 "--data-root", str(data_root), "--runs-dir", str(runs_dir), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and ": finished | MNIST / mlp_small | 1 epochs" in out and "test " in out
    run_id = out.split(":")[0].strip()

    assert main(["list", "--runs-dir", str(runs_dir)]) == 0
    assert run_id in capsys.readouterr().out

    assert main(["evaluate", run_id, "--runs-dir", str(runs_dir), "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "precision" in out

    image = np.zeros((100, 100), dtype=np.uint8)
    image[20:80, 45:55] = 255
    Image.fromarray(image).save(tmp_path / "one.png")
    Image.new("L", (100, 100)).save(tmp_path / "blank.png")
    assert main(["predict", run_id, str(tmp_path / "one.png"), str(tmp_path / "blank.png"),
                 "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].count("%") == 3 and "blank" in out[1] and "no character" in out[1]


def test_bad_input_is_one_line_not_a_traceback(data_root, runs_dir, tmp_path, capsys):
    assert main(["train", "--epochs", "0", "--data-root", str(data_root)]) == 2
    assert capsys.readouterr().err.strip() == "error: epochs must be between 1 and 1000, got 0"
    assert main(["train", "--dataset", str(tmp_path / "nothing"), "--runs-dir", str(runs_dir)]) == 2
    assert capsys.readouterr().err.strip() == f"error: The folder '{tmp_path / 'nothing'}' does not exist."
    assert main(["evaluate", "missing-run", "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Run 'missing-run' not found") and err.count("\n") == 1
    (tmp_path / "junk.png").write_bytes(b"junk")
    main(["train", "--dataset", "mnist", "--arch", "mlp_small", "--epochs", "1", "--data-root", str(data_root),
          "--runs-dir", str(runs_dir)])
    run_id = capsys.readouterr().out.split(":")[0]
    assert main(["predict", run_id, str(tmp_path / "junk.png"), "--runs-dir", str(runs_dir)]) == 2
    assert "not an image" in capsys.readouterr().err


def test_sweep_prints_the_table(data_root, runs_dir, capsys):
    code = main(["sweep", "--dataset", "mnist", "--arch", "mlp_small", "--epochs", "1", "--param", "lr",
                 "--values", "0.01,0.001", "--repeats", "2", "--data-root", str(data_root),
                 "--runs-dir", str(runs_dir)])
    out = capsys.readouterr().out
    assert code == 0 and "[4/4] lr=0.001 seed=1" in out
    assert "0.01 |" in out and "(2)" in out


def test_help_lists_every_training_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in out
    assert "--no-flip" in out and "scale 15%" in out


def test_a_pickle_in_processed_is_one_line(tmp_path, runs_dir, capsys):
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):  # torchvision's legacy layout; torch refuses this pickle
        (processed / name).write_bytes(pickle.dumps(os.system))
    assert main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST is not in") and err.count("\n") == 1 and "never loaded" in err


# Moments to press Ctrl+C: while Python imports torch, numpy and scikit-learn (the first
# seconds), and later, while the data loads or the run trains (when exactly depends on this
# machine's speed). Not before 0.6 s: in the interpreter's own start-up, before any of this
# package's code runs, Python itself prints the traceback.
@pytest.mark.parametrize("delay", [0.6, 1.0, 1.5, 2.5, 6.0])
def test_ctrl_c_at_any_moment_says_interrupted(data_root, runs_dir, delay):
    command = [sys.executable, "-m", "kmnist_core", "train", "--dataset", "mnist", "--arch", "mlp_small",
               "--epochs", "500", "--data-root", str(data_root), "--runs-dir", str(runs_dir), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert process.returncode == 130 and err.rstrip().endswith("interrupted")


def test_ctrl_c_stops_a_whole_sweep(data_root, runs_dir, monkeypatch, capsys):
    real_train = training.train

    def pressed_during_training(config, on_event=None, **kwargs):
        def event(e):
            if isinstance(e, training.Step) and e.step == 3:
                raise KeyboardInterrupt  # what Ctrl+C raises in the training loop
        return real_train(config, on_event=event, **kwargs)

    monkeypatch.setattr(training, "train", pressed_during_training)
    code = main(["sweep", "--dataset", "mnist", "--arch", "mlp_small", "--epochs", "1", "--param", "lr",
                 "--values", "0.01,0.001,0.0001", "--data-root", str(data_root), "--runs-dir", str(runs_dir)])
    out, err = capsys.readouterr()
    assert code == 130 and err.rstrip().endswith("interrupted")
    assert "[1/3]" in out and "[2/3]" not in out and len(list(runs_dir.iterdir())) == 1
@pytest.mark.parametrize("failure", [pickle.UnpicklingError("invalid load key, 'x'."), AssertionError(),
                                     RecursionError("maximum recursion depth exceeded"), KeyError("targets")])
def test_any_failure_to_load_a_dataset_or_run_is_one_line(trained_run, runs_dir, monkeypatch, capsys, failure):
    """Issue 13, item 24: whatever loading raises, the CLI prints one line and exits 2."""
    def fails(*args, **kwargs):
        raise failure

    monkeypatch.setattr(data, "load_dataset", fails)
    assert main(["evaluate", trained_run.id, "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {type(failure).__name__}") and err.count("\n") == 1 and "Traceback" not in err
    monkeypatch.setattr(runs, "load_model", fails)
    assert main(["predict", trained_run.id, "any.png", "--runs-dir", str(runs_dir)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
