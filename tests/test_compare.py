import io

import numpy as np
import pandas as pd
import pytest

from kmnist_core import charts, compare, data, features, models, runs, sweeps


def test_runs_table_has_a_row_per_run_with_the_records_values(trained_run):
    table = compare.runs_table([trained_run])
    assert list(table.columns) == list(compare.COLUMNS)
    row = table.iloc[0]
    record = trained_run.record
    assert row["id"] == trained_run.id and row["status"] == "finished" and row["dataset"] == "MNIST"
    assert row["arch"] == "mlp_small" and row["epochs"] == 2 and row["batch_size"] == 64
    assert row["parameters"] == record.model.parameters
    assert row["test_accuracy"] == record.test.accuracy and row["test_loss"] == record.test.loss
    assert row["best_val_accuracy"] == record.best_val_accuracy
    assert row["train_seconds"] == record.timings.train_seconds > 0
    assert row["images_per_second"] == record.timings.images_per_second


def test_runs_csv_round_trips_through_pandas(trained_run, runs_dir):
    stopped = runs.load_run(trained_run.path)
    stopped.record.status, stopped.record.test = "stopped", None  # a run without a test metric leaves the cell empty
    text = compare.runs_csv([trained_run, stopped])
    back = pd.read_csv(io.StringIO(text))
    assert list(back.columns) == list(compare.COLUMNS) and len(back) == 2
    assert back["test_accuracy"][0] == pytest.approx(trained_run.test_accuracy)
    assert np.isnan(back["test_accuracy"][1]) and back["status"].tolist() == ["finished", "stopped"]


def test_curves_per_epoch_and_against_time_with_unique_labels(trained_run):
    twin = runs.Run(trained_run.path.with_name("twin"), trained_run.record)
    trained_run.record.name = "same name"
    found = compare.curves([trained_run, twin], "val_accuracy", x="elapsed")
    assert list(found) == [f"same name ({trained_run.id})", "same name (twin)"]
    xs, ys = next(iter(found.values()))
    history = trained_run.record.history
    assert xs == [h.elapsed for h in history] and ys == [h.val_accuracy for h in history]
    assert compare.curve(history, "val_loss")[0] == [1, 2]
    no_validation = runs.EpochRecord(1, 0.5, 0.9, None, None, 1.0, 1.0)
    assert compare.curve([no_validation], "val_loss") == ([], [])
    with pytest.raises(ValueError):
        compare.curve(history, "test_accuracy")


@pytest.fixture
def dataset(data_root):
    return data.load_dataset("mnist", data_root)


def test_sample_features_and_projections(trained_run, dataset):
    model = runs.load_model(trained_run)
    sample = features.sample_features(model, dataset, trained_run.normalization, size=200)
    assert sample.features.shape == (200, 64) and len(sample.indices) == 200
    assert np.bincount(sample.labels).tolist() == [20] * 10  # stratified: the test set has 30 of each class
    assert (sample.labels == dataset.test_labels[sample.indices].numpy()).all()
    logits = model(trained_run.normalization.apply(dataset.test_images[sample.indices])).argmax(1)
    assert (sample.predictions == logits.numpy()).all()
    assert len(features.sample_indices(dataset.test_labels, 10_000)) == len(dataset.test_labels)

    for method in features.METHODS:
        points = features.project(sample.features, method, seed=3)
        assert points.shape == (200, 2) and np.isfinite(points).all()
        assert np.array_equal(points, features.project(sample.features, method, seed=3))
    with pytest.raises(ValueError):
        features.project(sample.features, "umap")


def test_tsne_on_300_points_with_many_dimensions():
    features_300 = np.random.default_rng(0).normal(size=(300, 128)).astype(np.float32)
    points = features.project(features_300, "tsne", seed=0)
    assert points.shape == (300, 2) and np.array_equal(points, features.project(features_300, "tsne", seed=0))


@pytest.mark.parametrize("arch, count, side", [("mlp", 250, 28), ("lenet", 6, 5), ("resnet", 32, 5), ("mixer", 16, 4)])
def test_first_layer_images_per_model_family(arch, count, side):
    images = features.first_layer_images(models.build(arch))
    assert len(images) == count and all(image.shape == (side, side) for image in images)
    stacked = np.stack(images)
    assert stacked.min() >= 0 and stacked.max() <= 1 and np.isclose(stacked.max(axis=(1, 2)).max(), 1)


def test_chart_builders_draw_one_trace_per_series():
    assert len(charts.compare_curves({"a": ([1, 2], [0.5, 0.6]), "b": ([1], [0.4])}, "val_accuracy").data) == 2
    assert len(charts.per_class_bars({"a": [0.9] * 10, "b": [0.8] * 10, "c": [0.7] * 10}, list("0123456789")).data) == 3
    assert len(charts.class_balance({"train": [5, 5], "test": [1, 1]}, ["x", "y"]).data) == 2

    rows = [sweeps.Row(0.001, 0.8, 0.01, 3), sweeps.Row(0.01, 0.85, 0.02, 3), sweeps.Row(0.1, None, None, 0)]
    figure = charts.sweep_errorbars(rows, "lr", "test_accuracy")
    assert len(figure.data) == 1 and list(figure.data[0].x) == [0.001, 0.01] and figure.layout.xaxis.type == "log"
    assert list(figure.data[0].error_y.array) == [0.01, 0.02]
    assert charts.sweep_errorbars([sweeps.Row("adam", 0.8, 0.0, 1)], "optimizer", "test_loss").layout.xaxis.type == "category"


def test_compare_charts_show_every_point_and_tell_close_accuracies_apart():
    """Issue 18: the first epoch's point was cut off; per-class bars on a 0-100% axis all looked alike."""
    curves = charts.compare_curves({"a": ([1, 2, 3], [0.5, 0.6, 0.7])}, "val_accuracy")
    assert list(curves.layout.xaxis.range) == [0.5, 3.5]
    bars = charts.per_class_bars({"a": [0.97, 0.99], "b": [0.98, 0.995]}, ["x", "y"])
    low, high = bars.layout.yaxis.range
    assert 0.9 < low < 0.97 and high == 1.0


def test_a_sweeps_accuracy_axis_stays_within_0_and_100_percent_and_names_the_setting():
    """Issue 18: error bars stretched the accuracy axis to 150%; the axis read the field's raw name."""
    rows = [sweeps.Row(0.001, 0.99, 0.02, 3), sweeps.Row(0.01, 0.995, 0.03, 3)]
    figure = charts.sweep_errorbars(rows, "lr", "test_accuracy")
    low, high = figure.layout.yaxis.range
    assert 0.9 < low < 0.97 and high == 1.0
    assert figure.layout.xaxis.title.text == "Learning rate" and figure.layout.yaxis.title.text == "test accuracy"

    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.arange(30) % 3
    figure = charts.embedding_scatter(points, labels, np.zeros(30, dtype=int), ["a", "b", "c"], indices=np.arange(30) + 100)
    assert len(figure.data) == 3 + 1  # a trace per class, one for the mistakes
    assert list(figure.data[1].customdata[0]) == [101, 1, 0] and figure.data[1].text[0] == "#101 true b · predicted a"
    assert figure.data[3].name == "mistakes (20)" and len(figure.data[3].x) == 20
    assert len(charts.pixel_histogram({"train": np.ones(256) / 256, "test": np.ones(256) / 256}).data) == 2

