import dataclasses
import threading

import pytest
import torch

from kmnist_core import runs, training
from kmnist_core.config import TrainConfig


def test_learns_a_synthetic_ten_class_set(tiny_config, runs_dir):
    events = []
    run = training.train(dataclasses.replace(tiny_config, arch="lenet", epochs=4, lr=1e-2),
                         on_event=events.append, runs_dir=runs_dir)
    assert run.status == "finished"
    assert run.test_accuracy >= 0.90
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["Phase", "RunStarted", "Phase"] and kinds[-1] == "Phase"
    steps = [e for e in events if isinstance(e, training.Step)]
    epochs = [e for e in events if isinstance(e, training.Epoch)]
    assert len(epochs) == 4 and steps[-1].step == steps[-1].total_steps == len(steps)
    assert all(s.images_per_second > 0 and s.lr > 0 for s in steps)
    assert run.record.best_val_accuracy == max(e.record.val_accuracy for e in epochs)
    assert [e.record for e in epochs] == run.record.history  # the events carry the rows the record keeps


def test_deterministic_on_cpu_given_a_seed(tiny_config, runs_dir):
    config = dataclasses.replace(tiny_config, arch="cnn_small", augment=0.5, epochs=1)
    a = training.train(config, runs_dir=runs_dir).record.history
    b = training.train(config, runs_dir=runs_dir).record.history
    c = training.train(dataclasses.replace(config, seed=1), runs_dir=runs_dir).record.history
    assert a[0].train_loss == b[0].train_loss and a[0].val_accuracy == b[0].val_accuracy
    assert a[0].train_loss != c[0].train_loss


@pytest.mark.parametrize("optimizer,schedule,lr", [("sgd", "cosine", 0.1), ("adam", "plateau", 1e-2),
                                                  ("adamw", "none", 1e-2)])
def test_optimizers_and_schedules(tiny_config, runs_dir, optimizer, schedule, lr):
    config = dataclasses.replace(tiny_config, optimizer=optimizer, schedule=schedule, lr=lr,
                                 label_smoothing=0.1, dropout=0.1, epochs=2)
    run = training.train(config, runs_dir=runs_dir)
    assert run.status == "finished" and run.test_accuracy > 0.5


def test_stop_ends_the_run_before_its_next_step_and_keeps_a_checkpoint(tiny_config, runs_dir):
    config = dataclasses.replace(tiny_config, arch="resnet", epochs=50, batch_size=32)
    stop = threading.Event()
    epochs_done = threading.Event()
    steps_after_stop = []

    def on_event(event):
        if isinstance(event, training.Epoch):
            epochs_done.set()
        if isinstance(event, training.Step):
            if stop.is_set():
                steps_after_stop.append(event.step)
            elif epochs_done.is_set():
                stop.set()

    run = training.train(config, on_event=on_event, stop=stop, runs_dir=runs_dir)
    assert steps_after_stop == []  # not one step more: the stop is checked before every step
    assert run.status == "stopped" and "stopped at epoch 2" in run.reason
    assert len(run.record.history) == 1
    reloaded = runs.load_run(run.id, runs_dir)
    assert reloaded.status == "stopped" and reloaded.has_weights
    runs.load_model(reloaded)  # the best weights so far load cleanly


def test_stop_from_another_thread_mid_epoch(tiny_config, runs_dir):
    config = dataclasses.replace(tiny_config, arch="resnet", epochs=50, batch_size=16)
    stop = threading.Event()
    started = threading.Event()
    steps, result = [], {}

    def on_event(event):
        if isinstance(event, training.Step):
            steps.append(event.step)
            started.set()

    thread = threading.Thread(target=lambda: result.update(
        run=training.train(config, on_event=on_event, stop=stop, runs_dir=runs_dir)))
    thread.start()
    assert started.wait(120)
    steps_when_asked = len(steps)
    stop.set()
    thread.join(120)
    assert not thread.is_alive()
    assert len(steps) - steps_when_asked <= 1  # at most the step already under way when it was asked
    assert result["run"].status == "stopped" and result["run"].has_weights  # stopped inside epoch 1: kept anyway


def test_divergence_stops_with_a_clear_reason(tiny_config, runs_dir):
    run = training.train(dataclasses.replace(tiny_config, arch="mlp", lr=100.0, optimizer="sgd", schedule="none",
                                             epochs=3), runs_dir=runs_dir)
    assert run.status == "failed"
    assert run.reason.startswith("diverged at step ")
    assert "Learning rate 100 is too high" in run.reason
    assert runs.load_run(run.id, runs_dir).status == "failed"


def test_bad_config_and_missing_data_fail_before_a_run_exists(tiny_config, runs_dir, tmp_path):
    with pytest.raises(ValueError, match="epochs must be between 1 and 1000"):
        training.train(dataclasses.replace(tiny_config, epochs=0), runs_dir=runs_dir)
    with pytest.raises(ValueError, match="Unknown architecture"):
        training.train(dataclasses.replace(tiny_config, arch="nope"), runs_dir=runs_dir)
    from kmnist_core.data import DatasetUnavailable
    with pytest.raises(DatasetUnavailable):
        training.train(dataclasses.replace(tiny_config, dataset=str(tmp_path / "nothing")), runs_dir=runs_dir)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_augmentation_keeps_shape_range_and_background():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1
    out = training.augment_batch(images, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert out[:, :, :3, :].abs().max() == 0 and out[:, :, :, -3:].abs().max() == 0  # background stays 0
    assert not torch.allclose(out[0], out[1])  # each image gets its own transform
    assert torch.allclose(training.augment_batch(images, 0.0, torch.Generator()), images, atol=1e-5)


def test_augmentation_grid_is_affine_grids():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, 28, 20], align_corners=False)
    assert torch.allclose(training.affine_grid(theta, 28, 20), expected, atol=1e-5)


def test_flips_mirror_about_half_the_images():
    images = torch.zeros(200, 1, 28, 28)
    images[:, :, 4:24, 2:8] = 1                                  # a bar on the left
    out = training.augment_batch(images, 0.0, torch.Generator().manual_seed(0), flip=True)
    mirrored = (out[:, 0, :, 20:].sum((1, 2)) > out[:, 0, :, :8].sum((1, 2))).float().mean().item()
    assert 0.35 < mirrored < 0.65
    assert torch.allclose(out.sum((1, 2, 3)), images.sum((1, 2, 3)), rtol=1e-3)  # nothing lost


def test_device_choice():
    assert training.pick_device("cpu").type == "cpu"
    assert training.pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            training.pick_device("cuda")


def test_config_round_trip_ignores_unknown_keys():
    config = TrainConfig(arch="lenet", lr=0.5)
    assert TrainConfig.from_dict({**config.to_dict(), "from_the_future": 1}) == config
