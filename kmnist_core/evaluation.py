"""Evaluation: loss and accuracy, confusion matrix, per-class metrics (scikit-learn),
most-confused pairs and most-confident mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .data import Normalization
from .models import eval_mode


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, normalization: Normalization,
                   batch_size: int = 1024) -> torch.Tensor:
    """Logits for uint8 (N, 28, 28) or float [0, 1] images, computed in batches on the model's device."""
    device = next(model.parameters()).device
    with eval_mode(model):
        # An empty input still runs one (empty) batch, so the output has the model's own width.
        out = [model(normalization.apply(images[i:i + batch_size].to(device))).float()
               for i in range(0, max(len(images), 1), batch_size)]
    return torch.cat(out)


def predict_proba(model: torch.nn.Module, images: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """Class probabilities (N, C) on the CPU."""
    return predict_logits(model, images, normalization).softmax(dim=1).cpu()


def loss_and_accuracy(model, images, labels, normalization) -> tuple[float, float]:
    logits = predict_logits(model, images, normalization)
    labels = labels.to(logits.device)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


@dataclass
class ConfusedPair:
    a: int
    b: int
    a_as_b: int     # images of class a predicted as b
    b_as_a: int

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a

    def describe(self, class_names: list[str]) -> str:
        """'3 mistakes: 1 read as 7: once; 7 read as 1: twice' - each count set apart from the
        class names, which may be digits themselves."""
        a, b = class_names[self.a], class_names[self.b]
        ways = [f"{true} read as {predicted}: {_times(count)}"
                for true, predicted, count in ((a, b, self.a_as_b), (b, a, self.b_as_a)) if count]
        return f"{self.total} mistake{'s' * (self.total != 1)}: " + "; ".join(ways)


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count:,} times")


@dataclass
class Mistake:
    index: int      # index into the evaluated images
    true: int
    predicted: int
    confidence: float
    probabilities: list[float]


@dataclass
class Report:
    class_names: list[str]
    loss: float
    accuracy: float
    labels: np.ndarray          # (N,)
    predictions: np.ndarray     # (N,)
    probabilities: np.ndarray   # (N, C)
    confusion: np.ndarray       # (C, C): row = true class, column = predicted
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    def confused_pairs(self, top: int = 10) -> list[ConfusedPair]:
        """Unordered class pairs ranked by how often they are mistaken for each other, both ways."""
        c = self.confusion
        pairs = [ConfusedPair(a, b, int(c[a, b]), int(c[b, a]))
                 for a in range(len(c)) for b in range(a + 1, len(c)) if c[a, b] + c[b, a] > 0]
        pairs.sort(key=lambda p: (-p.total, p.a, p.b))
        return pairs[:top]

    def confident_mistakes(self, top: int = 16) -> list[Mistake]:
        """The wrong predictions the model was surest of."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][:top]
        return [Mistake(int(i), int(self.labels[i]), int(self.predictions[i]),
                        float(self.probabilities[i, self.predictions[i]]), self.probabilities[i].tolist())
                for i in order]

    def examples_of(self, true: int, predicted: int, top: int = 5) -> list[int]:
        """Indices of images of class `true` predicted as `predicted`, most confident first."""
        match = np.flatnonzero((self.labels == true) & (self.predictions == predicted))
        return match[np.argsort(-self.probabilities[match, predicted], kind="stable")][:top].tolist()


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
             normalization: Normalization, class_names: list[str]) -> Report:
    logits = predict_logits(model, images, normalization).cpu()
    labels_t = labels.cpu().long()
    loss = F.cross_entropy(logits, labels_t).item()
    probabilities = logits.softmax(1).numpy()
    predictions = probabilities.argmax(1)
    y = labels_t.numpy()
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(y, predictions, labels=classes, zero_division=0)
    return Report(list(class_names), loss, float((predictions == y).mean()), y, predictions, probabilities,
                  confusion_matrix(y, predictions, labels=classes), precision, recall, f1, support)
