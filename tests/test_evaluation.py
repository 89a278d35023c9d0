import numpy as np
import torch

from kmnist_core import runs
from kmnist_core.data import Normalization, load_dataset
from kmnist_core.evaluation import Report, evaluate


class FixedModel(torch.nn.Module):
    """Returns preset logits, one row per image, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)
        self.head = torch.nn.Linear(1, self.logits.shape[1])
        self.calls = 0

    def forward(self, x):
        out = self.logits[self.calls:self.calls + len(x)]
        self.calls += len(x)
        return out


def make_report(labels, logits):
    images = torch.zeros(len(labels), 28, 28, dtype=torch.uint8)
    return evaluate(FixedModel(logits), images, torch.tensor(labels), Normalization(0.0, 1.0), ["a", "b", "c"])


def test_metrics_pairs_and_mistakes():
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    logits = [[5, 0, 0], [0, 9, 0], [0, 2, 0],   # class 0: right, wrong as b (sure), wrong as b
              [0, 5, 0], [4, 0, 0], [0, 5, 0],   # class 1: one wrong as a
              [0, 0, 5], [0, 0, 5]]
    report = make_report(labels, logits)
    assert report.accuracy == 5 / 8
    assert report.confusion.tolist() == [[1, 2, 0], [1, 2, 0], [0, 0, 2]]
    pair = report.confused_pairs()[0]
    assert (pair.a, pair.b, pair.a_as_b, pair.b_as_a, pair.total) == (0, 1, 2, 1, 3)
    assert len(report.confused_pairs()) == 1
    mistakes = report.confident_mistakes(2)
    assert [m.index for m in mistakes] == [1, 4]     # the surest wrong prediction first
    assert mistakes[0].true == 0 and mistakes[0].predicted == 1 and mistakes[0].confidence > 0.99
    assert report.examples_of(0, 1) == [1, 2]
    assert np.allclose(report.recall, [1 / 3, 2 / 3, 1])
    assert np.allclose(report.precision, [0.5, 0.5, 1])


def test_evaluate_a_trained_run(trained_run, data_root):
    model = runs.load_model(trained_run)
    dataset = load_dataset("mnist", data_root)
    report = evaluate(model, dataset.test_images, dataset.test_labels, trained_run.normalization,
                      trained_run.class_names)
    assert abs(report.accuracy - trained_run.test_accuracy) < 1e-6
    assert report.confusion.sum() == len(dataset.test_labels)
    assert isinstance(report, Report) and report.support.sum() == 300


def test_empty_batches_keep_the_output_width():
    from kmnist_core import models
    from kmnist_core.evaluation import predict_logits
    empty = torch.zeros(0, 28, 28, dtype=torch.uint8)
    for name in models.list_models():
        model = models.build(name, num_classes=7).eval()
        assert predict_logits(model, empty, Normalization(0.1, 0.3)).shape == (0, 7)
        assert predict_logits(model.features, empty, Normalization(0.1, 0.3)).shape == (0, model.head.in_features)
