"""The class gallery's engine (kmnist_core/gallery.py): sharing, reading back, its bounds, the
teacher-only removal, the per-class accuracy and the export the Train page trains on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import synthetic_images
from kmnist_core import data, gallery, runs, training
from kmnist_core.config import TrainConfig

CLASSES = tuple(str(d) for d in range(10))


def share_some(runs_dir, count: int, seed: int = 0, owner: str = "Aiko", wrong_every: int = 0):
    """`count` synthetic drawings shared for CLASSES, labelled with their true class; the model's
    answer is wrong for every `wrong_every`-th one."""
    images, labels = synthetic_images(count, seed)
    shared = []
    for i, (image, label) in enumerate(zip(images, labels)):
        answer = (int(label) + 1) % 10 if wrong_every and i % wrong_every == 0 else int(label)
        shared.append(gallery.share(image, owner=owner, label=int(label), answer=answer, class_names=CLASSES,
                                    dataset="MNIST", run_id="run-1", runs_dir=runs_dir))
    return shared


def test_a_shared_drawing_reads_back_as_it_was_shared(runs_dir):
    image = torch.zeros(28, 28)
    image[5:20, 10:14] = 1.0                                     # a prepared drawing: float in [0, 1]
    shared = gallery.share(image, owner="  Aiko  ", label=1, answer=7, class_names=CLASSES, dataset="MNIST",
                           run_id="20261204-run", runs_dir=runs_dir)
    (back,) = gallery.list_shared(runs_dir)
    assert back.id == shared.id and back.owner == "Aiko"
    assert (back.label, back.answer, back.label_name, back.answer_name) == (1, 7, "1", "7")
    assert not back.correct and back.class_names == CLASSES and back.run_id == "20261204-run"
    assert back.image.dtype == np.uint8 and back.image[10, 12] == 255 and back.image[0, 0] == 0
    folder = runs_dir / runs.GALLERY_FOLDER
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".png"]   # no temporaries left
    entry = json.loads((folder / f"{shared.id}.json").read_text(encoding="utf-8"))
    assert entry["owner"] == "Aiko" and entry["dataset"] == "MNIST"


def test_newest_first_and_the_gallery_is_not_listed_as_a_run(runs_dir, trained_run):
    first, second = share_some(runs_dir, 2)
    assert [d.id for d in gallery.list_shared(runs_dir)] == [second.id, first.id]
    found, problems = runs.scan_runs(runs_dir)
    assert [r.id for r in found] == [trained_run.id] and problems == []


def test_hostile_text_is_kept_as_text_and_bad_input_refused(runs_dir):
    name = "![x](http://evil/p.png) **URGENT**\n<b>x</b>" + "y" * 200
    shared = gallery.share(np.zeros((28, 28), np.uint8), owner=name, label=0, answer=0, class_names=CLASSES,
                           dataset="MNIST", run_id="r", runs_dir=runs_dir)
    assert shared.owner.startswith("![x](http://evil/p.png) **URGENT** <b>x</b>")   # literal, one line, cut
    assert len(shared.owner) == gallery.MAX_NAME
    bad = [dict(label=10), dict(answer=-1), dict(label=True), dict(class_names=("only one",)),
           dict(image=np.zeros((28, 27)))]
    for change in bad:
        arguments = dict(image=np.zeros((28, 28)), owner="A", label=0, answer=0, class_names=CLASSES,
                         dataset="MNIST", run_id="r", runs_dir=runs_dir) | change
        with pytest.raises(gallery.GalleryError):
            gallery.share(arguments.pop("image"), **arguments)
    assert len(gallery.list_shared(runs_dir)) == 1


def test_a_damaged_entry_is_skipped_not_fatal(runs_dir):
    good, broken = share_some(runs_dir, 2)
    (runs_dir / runs.GALLERY_FOLDER / f"{broken.id}.png").write_bytes(b"not a png")
    assert [d.id for d in gallery.list_shared(runs_dir)] == [good.id]


def test_a_failed_write_leaves_no_half_drawing(runs_dir, monkeypatch):
    share_some(runs_dir, 1)
    real = runs.atomic_write

    def full_disk(path, data):
        if path.suffix == ".json":
            raise OSError(28, "No space left on device")
        real(path, data)
    monkeypatch.setattr(runs, "atomic_write", full_disk)
    with pytest.raises(OSError):
        share_some(runs_dir, 1, seed=5)
    assert len(gallery.list_shared(runs_dir)) == 1
    assert sorted(p.suffix for p in (runs_dir / runs.GALLERY_FOLDER).iterdir()) == [".json", ".png"]  # nothing half


def test_the_gallery_is_bounded_and_says_so(runs_dir, monkeypatch):
    monkeypatch.setattr(gallery, "MAX_DRAWINGS", 3)
    share_some(runs_dir, 3)
    with pytest.raises(gallery.GalleryFull, match="full"):
        share_some(runs_dir, 1)
    monkeypatch.setattr(gallery, "MAX_DRAWINGS", 100)
    monkeypatch.setattr(gallery, "MAX_BYTES", sum(p.stat().st_size for p in gallery.gallery_dir(runs_dir).iterdir()))
    with pytest.raises(gallery.GalleryFull):
        share_some(runs_dir, 1)
    assert len(gallery.list_shared(runs_dir)) == 3


def test_only_the_teacher_removes(runs_dir):
    first, second, third = share_some(runs_dir, 3)
    with pytest.raises(PermissionError, match="Only the teacher"):
        gallery.remove(first.id, is_teacher=False, runs_dir=runs_dir)
    with pytest.raises(gallery.TeacherOnly):
        gallery.clear(is_teacher=False, runs_dir=runs_dir)
    assert len(gallery.list_shared(runs_dir)) == 3
    with pytest.raises(gallery.GalleryError):
        gallery.remove("../../run.json", is_teacher=True, runs_dir=runs_dir)
    gallery.remove(first.id, is_teacher=True, runs_dir=runs_dir)
    assert [d.id for d in gallery.list_shared(runs_dir)] == [third.id, second.id]
    assert gallery.clear(is_teacher=True, runs_dir=runs_dir) == 2
    assert gallery.list_shared(runs_dir) == [] and list(gallery.gallery_dir(runs_dir).iterdir()) == []


def test_the_split_is_stratified_and_deterministic():
    labels = [0] * 8 + [1] * 4 + [2] * 1
    train, test = gallery.split(labels, test_fraction=0.25, seed=3)
    assert sorted(train + test) == list(range(len(labels)))
    assert sorted(labels[i] for i in test) == [0, 0, 1]      # a quarter of each class; a lone drawing trains
    assert gallery.split(labels, 0.25, seed=3) == (train, test)


def test_accuracy_by_class_scores_what_each_student_meant(runs_dir, trained_run):
    shared = share_some(runs_dir, 40, seed=7)
    gallery.share(np.zeros((28, 28)), owner="B", label=0, answer=0, class_names=("cat", "dog"), dataset="Pets",
                  run_id="other", runs_dir=runs_dir)                    # another model's classes: left out
    model = runs.load_model(trained_run)
    scores = gallery.accuracy_by_class(model, trained_run.normalization, gallery.list_shared(runs_dir), CLASSES)
    assert [s.name for s in scores] == list(CLASSES) and sum(s.total for s in scores) == 40
    images = torch.from_numpy(np.stack([d.image for d in shared]))
    predicted = model.eval()(trained_run.normalization.apply(images)).argmax(1)
    labels = torch.tensor([d.label for d in shared])
    for c, score in enumerate(scores):
        assert score.total == int((labels == c).sum())
        assert score.correct == int(((predicted == labels) & (labels == c)).sum())
    assert 0.5 < sum(s.correct for s in scores) / 40        # the tiny model knows these patterns


def test_the_export_reads_back_and_trains(runs_dir, tmp_path):
    # 45 drawings to train on: too few for a stratified 10% validation split of 10 classes (data.make_splits)
    shared = share_some(runs_dir, 60, seed=3)
    folder = gallery.export_dataset(CLASSES, runs_dir=runs_dir)
    assert folder.parent == gallery.gallery_dir(runs_dir) / gallery.EXPORTS
    assert gallery.export_dataset(CLASSES, runs_dir=runs_dir) == folder          # same drawings: same folder
    dataset = data.load_dataset(str(folder), download=False)   # the Train page's own-folder loader
    assert dataset.info.class_names == CLASSES
    assert len(dataset.train_labels) + len(dataset.test_labels) == 60
    listed = gallery.list_shared(runs_dir)                      # the order the export takes them in
    assert dataset.test_labels.tolist() == [listed[i].label for i in gallery.split([d.label for d in listed])[1]]
    by_image = {d.image.tobytes(): d.label for d in shared}
    for images, labels in ((dataset.train_images, dataset.train_labels), (dataset.test_images, dataset.test_labels)):
        assert [by_image[image.numpy().tobytes()] for image in images] == labels.tolist()
    run = training.train(TrainConfig(dataset=str(folder), arch="mlp_small", epochs=1, batch_size=16, device="cpu"),
                         runs_dir=tmp_path / "runs")
    assert run.record.status == "finished" and run.record.dataset.class_names == list(CLASSES)
    assert run.record.test is not None and 0 <= run.record.test.accuracy <= 1


def test_an_export_needs_enough_drawings(runs_dir):
    share_some(runs_dir, 2)
    with pytest.raises(gallery.GalleryError, match="Too few drawings"):
        gallery.export_dataset(CLASSES, runs_dir=runs_dir)
    assert not (gallery.gallery_dir(runs_dir) / gallery.EXPORTS).exists() or \
        not list((gallery.gallery_dir(runs_dir) / gallery.EXPORTS).iterdir())
