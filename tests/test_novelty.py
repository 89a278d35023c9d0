""""I'm not sure this is one of my classes": the detectors, their file, and how well they tell junk."""

import os

import pytest
import torch

from conftest import REAL_DATASETS, needs_shared
from kmnist_core import data, junk, models, novelty, runs


@pytest.mark.parametrize("arch", models.list_models())
def test_every_architecture_has_early_middle_and_last_taps_logits_and_ink(arch):
    model = models.build(arch)
    where = novelty.taps(model)
    assert 0 <= where["early"] <= where["middle"] <= where["last"] == len(model.features) - 1
    found = novelty.activations(model, torch.zeros(3, 28, 28, dtype=torch.uint8), data.Normalization(0.1, 0.3))
    assert {name: tuple(x.shape[:1]) for name, x in found.items()} == {"early": (3,), "middle": (3,), "last": (3,),
                                                                       "logits": (3,), "ink": (3,)}
    assert found["last"].shape[1] == model.head.in_features and found["logits"].shape[1] == 10
    assert found["ink"].flatten().tolist() == [0, 0, 0]
    if models.is_convolutional(model):                   # the last feature map, just before the flatten
        assert type(model.features[where["middle"] + 1]).__name__ == "Flatten"


@pytest.fixture
def fitted(trained_run, data_root):
    model = runs.load_model(trained_run)
    config = trained_run.config
    splits = data.make_splits(data.load_dataset("mnist", data_root), config.val_fraction, config.seed)
    return model, trained_run.normalization, splits, novelty.fit_for_splits(model, splits)


def test_held_out_images_are_rarely_flagged_and_junk_mostly(fitted, data_root):
    model, normalization, splits, stats = fitted
    test_flags = stats.flags(model, splits.test_images, normalization)
    assert test_flags.float().mean() <= 0.1           # calibrated on only 100 held-out images
    squares = junk.junk_images("filled shape", 60, seed=1)[0]
    scribbles = junk.junk_images("scribble", 60, seed=2)[0]
    assert stats.flags(model, squares[:, None], normalization).float().mean() >= 0.8
    assert stats.flags(model, scribbles[:, None], normalization).float().mean() >= 0.6


def test_the_statistics_survive_their_file_and_bad_files_are_refused(fitted, tmp_path):
    model, normalization, splits, stats = fitted
    path = tmp_path / novelty.FILE
    stats.save(path)
    again = novelty.NoveltyStats.load(path)
    assert again.threshold == pytest.approx(stats.threshold)
    images = torch.cat([splits.test_images[:50].float() / 255, junk.junk_images("scribble", 20)[0]])[:, None]
    assert torch.equal(again.flags(model, images, normalization), stats.flags(model, images, normalization))
    assert not list(tmp_path.glob("*.tmp"))
    assert path.stat().st_mode & 0o044 == 0o044 or os.umask(os.umask(0)) & 0o044   # readable by others, as umask allows
    assert novelty.load_for_run(tmp_path, model) is not None
    assert novelty.load_for_run(tmp_path / "elsewhere", model) is None
    with pytest.raises(novelty.NoveltyError, match="another model"):
        novelty.load_for_run(tmp_path, models.build("lenet"))

    import pickle
    (tmp_path / "bad").mkdir()
    payload = pickle.dumps({"means": "os.system('echo pwned')"})   # never unpickled, only refused
    for content in (payload, b"", path.read_bytes()[:100]):
        (tmp_path / "bad" / novelty.FILE).write_bytes(content)
        with pytest.raises(novelty.NoveltyError):
            novelty.load_for_run(tmp_path / "bad", model)
    from safetensors.torch import save_file
    save_file({"0.means": torch.zeros(2, 2)}, str(tmp_path / "bad" / novelty.FILE), metadata={"version": "0"})
    with pytest.raises(novelty.NoveltyError, match="another version"):
        novelty.load_for_run(tmp_path / "bad", model)


def test_statistics_of_other_weights_are_not_used(fitted, trained_run):
    model, normalization, splits, stats = fitted
    novelty.save_for_run(stats, trained_run.path)
    assert novelty.load_for_run(trained_run.path, model) is not None
    with torch.no_grad():
        model.head.bias += 1                              # the run trains on: new weights
    trained_run.save_model(model)
    assert novelty.load_for_run(trained_run.path, model) is None


def test_the_trainer_fits_the_statistics_and_the_command_line_refits_them(trained_run, data_root, capsys):
    model = runs.load_model(trained_run)
    assert novelty.load_for_run(trained_run.path, model) is not None      # fitted by the trainer
    (trained_run.path / novelty.FILE).unlink()                            # a run from before it did
    assert novelty.main([str(trained_run.path), "--data-root", str(data_root)]) == 0
    assert (trained_run.path / novelty.FILE).is_file() and "saved" in capsys.readouterr().out
    assert novelty.main([str(trained_run.path), "--data-root", str(data_root / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
    assert novelty.main(["no-such-run", "--runs-dir", str(data_root)]) == 2


@needs_shared
def test_the_shipped_mnist_model_flags_junk_and_spares_real_digits():
    from kmnist_core import framing
    run = runs.load_run("shipped-mnist-resnet", runs_dir="checkpoints")
    model = runs.load_model(run)
    stats = novelty.load_for_run(run.path, model)
    assert stats is not None, "the shipped models come with their novelty statistics"
    dataset = data.load_dataset("mnist", REAL_DATASETS, download=False)
    assert stats.flags(model, dataset.test_images[:2000], run.normalization).float().mean() <= 0.02
    flagged = []
    for kind in junk.KINDS:
        images, refused = junk.junk_images(kind, 100, seed=7, framing=framing.MNIST_FRAMING)
        flagged.append((stats.flags(model, images[:, None], run.normalization).sum().item() + refused) / 100)
    assert sum(flagged) / len(flagged) >= 0.85, flagged


def test_the_recognition_benchmark_measures_every_figure(trained_run, data_root):
    from benchmarks.draw_recognition import measure, report
    figures = measure(trained_run, data.load_dataset("mnist", data_root), images=8, junk_per_kind=6, pen_widths=(8, 40))
    assert set(figures.redrawn_accuracy) == {8, 40} and 0 <= figures.test_accuracy <= 1
    assert set(figures.flagged) == {"test images", "re-drawn test images", *junk.KINDS}
    assert all(0 <= share <= 1 for share in [*figures.flagged.values(), *figures.no_guess.values()])
    text = report(figures)
    assert trained_run.id in text and "pen width 8:" in text and "target >= 90%" in text
