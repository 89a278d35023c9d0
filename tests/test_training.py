import dataclasses
import threading

import pytest
import torch

from kmnist_core import augment, runs, training
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
    out = augment.affine(images, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert out[:, :, :3, :].abs().max() == 0 and out[:, :, :, -3:].abs().max() == 0  # background stays 0
    assert not torch.allclose(out[0], out[1])  # each image gets its own transform
    assert torch.allclose(augment.affine(images, 0.0, torch.Generator()), images, atol=1e-5)


def test_augmentation_grid_is_affine_grids():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, 28, 20], align_corners=False)
    assert torch.allclose(augment.affine_grid(theta, 28, 20), expected, atol=1e-5)


def test_flips_mirror_about_half_the_images():
    images = torch.zeros(200, 1, 28, 28)
    images[:, :, 4:24, 2:8] = 1                                  # a bar on the left
    out = augment.affine(images, 0.0, torch.Generator().manual_seed(0), flip=True)
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


def test_weight_average_follows_the_live_weights():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = training.WeightAverage(model, decay=0.9)
    before = average.model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    average.update()
    # First update: the warm-up decay (1 + 1) / (10 + 1) keeps 2/11 of the old weights.
    assert torch.allclose(average.model[0].weight, before * 2 / 11 + model[0].weight * 9 / 11)
    assert average.model[1].num_batches_tracked == model[1].num_batches_tracked
    assert average.model is not model and not average.model.training


def test_loss_is_read_every_n_steps_where_reading_waits_for_a_gpu(tiny_config, runs_dir, monkeypatch):
    # On a GPU the trainer reads the loss every sync_interval steps; the CPU path of that logic.
    monkeypatch.setattr(training, "sync_interval", lambda device: 4)
    events = []
    run = training.train(dataclasses.replace(tiny_config, epochs=1), on_event=events.append, runs_dir=runs_dir)
    steps = [e.step for e in events if isinstance(e, training.Step)]
    total = next(e for e in events if isinstance(e, training.RunStarted)).steps_per_epoch
    assert run.status == "finished" and total > 4
    assert steps == [*range(4, total + 1, 4)] + ([total] if total % 4 else [])
    failed = training.train(dataclasses.replace(tiny_config, arch="mlp", lr=100.0, optimizer="sgd", schedule="none"),
                            runs_dir=runs_dir)
    assert failed.status == "failed" and failed.reason.startswith("diverged at step ")


def test_a_loss_that_explodes_or_stays_at_chance_is_divergence():
    config = TrainConfig(lr=10.0)
    with pytest.raises(training.Diverged, match="rose to 9,876, against 2.30 for a blind guess.*try 1"):
        training._check_loss(9876.0, 12, 2.302, config)
    with pytest.raises(training.Diverged, match="became nan"):
        training._check_loss(float("nan"), 12, 2.302, config)
    training._check_loss(4.0, 12, 2.302, config)  # a bad start is not divergence
    with pytest.raises(training.Diverged, match="learned nothing: after 2 epochs it still guesses"):
        training._check_learning(2, 2.31, 0.10, 10, config)
    training._check_learning(1, 2.31, 0.10, 10, config)  # one epoch is too early to tell
    training._check_learning(2, 1.20, 0.60, 10, config)


def test_a_stop_before_training_leaves_no_run(tiny_config, runs_dir):
    stop = threading.Event()
    stop.set()
    with pytest.raises(training.Stopped, match="before training began"):
        training.train(tiny_config, stop=stop, runs_dir=runs_dir)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_blank_training_images_are_refused_before_a_run_exists(tmp_path, runs_dir):
    import numpy as np
    from conftest import IDX_NAMES, write_idx
    raw = tmp_path / "blank"
    raw.mkdir()
    labels = (np.arange(200) % 10).astype(np.uint8)
    for name, array in zip(IDX_NAMES, (np.zeros((200, 28, 28)), labels, np.zeros((50, 28, 28)), labels[:50])):
        write_idx(raw / name, array)
    with pytest.raises(ValueError, match="same shade .*nothing to learn"):
        training.train(TrainConfig(dataset=str(raw), arch="mlp_small", epochs=1, device="cpu"), runs_dir=runs_dir)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_a_dataset_too_small_for_the_novelty_check_still_trains(tmp_path, runs_dir):
    from conftest import IDX_NAMES, synthetic_images, write_idx
    from kmnist_core import novelty
    raw = tmp_path / "twenty"
    raw.mkdir()
    train_images, train_labels = synthetic_images(20, seed=0, num_classes=2)
    test_images, test_labels = synthetic_images(10, seed=1, num_classes=2)
    for name, array in zip(IDX_NAMES, (train_images, train_labels, test_images, test_labels)):
        write_idx(raw / name, array)
    run = training.train(TrainConfig(dataset=str(raw), arch="mlp_small", epochs=1, batch_size=8, device="cpu"),
                         runs_dir=runs_dir)
    assert run.status == "finished" and run.test_accuracy is not None
    assert not (run.path / novelty.FILE).exists()        # too few images to calibrate it: left out, not fatal


def test_a_full_disk_fails_the_run_and_the_record_matches_the_weights(tiny_config, runs_dir, monkeypatch):
    import errno
    saves = []
    real_save = runs.Run.save_model

    def save_model(run, model):
        saves.append(1)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(run, model)

    monkeypatch.setattr(runs.Run, "save_model", save_model)
    monkeypatch.setattr(training, "_check_learning", lambda *args: None)
    config = dataclasses.replace(tiny_config, epochs=3, schedule="none", lr=1e-3)
    run = training.train(config, runs_dir=runs_dir)
    assert run.status == "failed" and "no space left on the disk" in run.reason
    on_disk = runs.load_run(run.id, runs_dir)
    assert on_disk.status == "failed" and on_disk.record.best_epoch == 1 and on_disk.has_weights


def test_stroke_augmentation_trains_and_is_recorded(tiny_config, runs_dir):
    run = training.train(dataclasses.replace(tiny_config, arch="lenet", epochs=2, lr=1e-2, strokes=0.5),
                         runs_dir=runs_dir)
    assert run.status == "finished" and run.config.strokes == 0.5
    assert run.record.test.accuracy > 0.5


def test_a_run_records_how_its_dataset_fills_the_frame(tiny_config, runs_dir, data_root):
    from kmnist_core import framing
    named = training.train(dataclasses.replace(tiny_config, epochs=1), runs_dir=runs_dir)
    assert runs.load_run(named.id, runs_dir).record.framing == framing.MNIST_FRAMING.to_dict()
    folder = training.train(dataclasses.replace(tiny_config, dataset=str(data_root / "MNIST"), epochs=1),
                            runs_dir=runs_dir)
    learnt = framing.Framing.from_dict(runs.load_run(folder.id, runs_dir).record.framing)
    # The synthetic characters are 20 px patterns shifted by up to 2 px: a box about 20 px wide.
    assert 17 <= learnt.extent <= 21
