""""I'm not sure this is one of my classes": telling a drawing that looks like none of a
model's classes from one that looks like a class.

A classifier answers with one of its classes whatever it is shown (a scribble read
"4 - 93% sure", a filled square "0 - 86% sure"), and its softmax confidence cannot tell.
How far the drawing's activations lie from those of the training images can. Six
detectors look at three depths of the model's `features`, at its logits and at the ink:

- early (after the first non-linearity): the Mahalanobis distance to the nearest class
  mean, with one shared covariance (Lee et al., 2018) - strokes, blobs and specks;
- middle (the last feature map) and last (the penultimate features): the distance to the
  k-th nearest of a sample of training images, cosine on normalised activations (Sun et
  al., 2022, "Out-of-distribution detection with deep nearest neighbors");
- last: the Mahalanobis distance again (what tells junk apart in an MLP, whose early and
  middle taps are one);
- logits: the energy, -logsumexp (Liu et al., 2020), low when some class fits well;
- ink: how much of the frame is inked, against held-out images re-drawn with the Draw
  page's pens (a model trained with --strokes is at home with thick strokes and reads a
  filled square as a class; the ink tells).

Each detector's score becomes a p-value against held-out training images, and the six
are combined by Fisher's method; the drawing is flagged when the combination exceeds
what all but FLAGGED_SHARE of other held-out training images reach. One detector alone
catches 20-75% of scribbles, filled shapes, letters of other scripts or near-blank
sketches; together they catch about 90% (benchmarks/draw_recognition.py prints the
figures of every shipped model). Measured on the Kuzushiji-MNIST flagship, adding the
energy and keeping 4,000 neighbours rather than 2,000 flagged fewer real test characters
for as much junk (8,000 did no better); on the MNIST resnet, the ink took filled shapes
caught from 73% to 93%.

Real test images are flagged more often than held-out training images: about 3 times as
often on Kuzushiji-MNIST, whose test set is harder than the training set it is carved
beside (the flagship: 98.2% test, 99.6% validation accuracy). Hence a threshold at 1% of
held-out images, well below the 2% of real characters a user would tolerate.

The statistics are saved beside a run's weights as novelty.safetensors (tensors and
string metadata only: nothing is unpickled), marked with the weights they fit. The trainer
fits them once a run is tested (1-3 s on the CPU); for runs without them (older ones, or
trained on before), the Draw page fits them the first time it shows the run when its
dataset is there, or `python -m kmnist_core.novelty RUN` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from sklearn.covariance import LedoitWolf
from torch import nn

from . import framing, strokes
from .data import Normalization, Splits
from .framing import MNIST_FRAMING, Framing

log = logging.getLogger(__name__)

FILE = "novelty.safetensors"
VERSION = "6-detector-fisher-1"
FLAGGED_SHARE = 0.01     # of held-out training images flagged
FIT_IMAGES = 10_000      # training images for the class means and covariances
BANK = 4000              # training images whose activations the nearest-neighbour detectors keep
NEIGHBOUR = 2            # the k of k-th nearest neighbour (2 flagged more junk than 5 or 10)
BATCH = 512
DETECTORS = (("mahalanobis", "early"), ("neighbours", "middle"), ("neighbours", "last"), ("mahalanobis", "last"),
             ("energy", "logits"), ("ink", "ink"))
FITTED = {"mahalanobis": ("means", "whitening"), "neighbours": ("bank",), "energy": (), "ink": ()}   # each kind's tensors
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)


class NoveltyError(ValueError):
    """A novelty file that is missing, corrupt, or does not fit the model it is asked for."""


def taps(model: nn.Module) -> dict[str, int]:
    """Which outputs of `model.features` (an nn.Sequential) the detectors read, by index:
    early = the first part holding a non-linearity, middle = the last part before the
    activations are flattened (the last feature map; absent in an MLP), last = the end."""
    parts = list(model.features)
    has_activation = [any(isinstance(m, ACTIVATIONS) for m in part.modules()) for part in parts]
    early = has_activation.index(True) if any(has_activation) else 0
    flatten = next((i for i, part in enumerate(parts) if type(part).__name__ in ("Flatten", "TokenMean")), None)
    last = len(parts) - 1
    middle = flatten - 1 if flatten is not None and early < flatten - 1 < last else early
    return {"early": early, "middle": middle, "last": last}


def _pooled(x: torch.Tensor) -> torch.Tensor:
    """Activations -> one vector per image: a feature map (N, C, H, W) or a token sequence
    (N, T, C) gives each channel's mean and maximum; vectors stay as they are."""
    if x.dim() == 4:
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
    if x.dim() == 3:
        return torch.cat([x.mean(1), x.amax(1)], 1)
    return x.flatten(1)


@torch.no_grad()
def activations(model: nn.Module, images: torch.Tensor, normalization: Normalization) -> dict[str, torch.Tensor]:
    """Pooled activations at each tap, the logits and the ink share, float64 on the CPU, of
    uint8 (N, 28, 28) or float [0, 1] (N, 1, 28, 28) images."""
    device = next(model.parameters()).device
    where = taps(model)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in (*where, "logits", "ink")}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), BATCH):
            batch = images[i:i + BATCH].to(device)
            out["ink"].append(ink_share(batch).cpu())
            x = normalization.apply(batch)
            for index, part in enumerate(model.features):
                x = part(x)
                for name, tap in where.items():
                    if tap == index:
                        out[name].append(_pooled(x).double().cpu())
            out["logits"].append(model.head(x).double().cpu())
    finally:
        model.train(was_training)
    return {name: torch.cat(parts) if parts else torch.zeros(0, 0, dtype=torch.float64) for name, parts in out.items()}


def ink_share(images: torch.Tensor) -> torch.Tensor:
    """(N, 1) float64: how much of the frame is ink, of uint8 (N, 28, 28) or float [0, 1] images."""
    unit = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return unit.flatten(1).mean(1, keepdim=True).double()


def _mahalanobis_fit(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    counts = torch.bincount(labels, minlength=num_classes)
    means = torch.zeros(num_classes, x.shape[1], dtype=torch.float64).index_add_(0, labels, x)
    means /= counts.clamp(min=1)[:, None]
    means[counts == 0] = float("inf")           # a class without images is near nothing
    # Ledoit-Wolf shrinkage (scikit-learn): a covariance that inverts even with few images per dimension.
    covariance = torch.from_numpy(LedoitWolf(assume_centered=True).fit((x - means[labels]).numpy()).covariance_)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    whitening = eigenvectors / eigenvalues.clamp(min=1e-9 * float(eigenvalues.max())).sqrt()
    return {"means": means, "whitening": whitening}


def _neighbours_fit(x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    pick = torch.randperm(len(x), generator=generator)[:BANK]
    return {"bank": F.normalize(x[pick], dim=1)}


def _score(kind: str, tensors: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Higher is further from the training images."""
    if kind == "energy":
        return -torch.logsumexp(x, 1)
    if kind == "ink":
        return x[:, 0]
    if kind == "mahalanobis":
        finite = torch.isfinite(tensors["means"]).all(1)
        white = x @ tensors["whitening"]
        return torch.cdist(white, tensors["means"][finite] @ tensors["whitening"]).pow(2).amin(1)
    bank = tensors["bank"].double()
    similarity = F.normalize(x, dim=1) @ bank.T
    return -similarity.topk(min(NEIGHBOUR, len(bank)), dim=1).values[:, -1]


@dataclass
class NoveltyStats:
    """Everything the detectors need, their held-out reference scores and the threshold."""
    tensors: dict[str, torch.Tensor]     # "<detector index>.<name>": means, whitening, bank, reference
    threshold: float                     # on the Fisher combination of the detectors' p-values
    flagged_share: float
    weights: str = ""                    # the SHA-256 of the weights they were fitted for, when known

    def _p_values(self, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, detectors): each detector's score as the share of held-out images scoring at least as high."""
        columns = []
        for i, (kind, tap) in enumerate(DETECTORS):
            own = {name.split(".", 1)[1]: t for name, t in self.tensors.items() if name.startswith(f"{i}.")}
            score = _score(kind, own, found[tap])
            reference = own["reference"].double()        # sorted
            above = len(reference) - torch.searchsorted(reference, score.contiguous(), right=False)
            columns.append((above + 1) / (len(reference) + 1))
        return torch.stack(columns, 1)

    def scores(self, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N,) Fisher's combination, -2 * sum(log p): higher is less like the training images."""
        return -2 * self._p_values(found).log().sum(1)

    def flags(self, model: nn.Module, images: torch.Tensor, normalization: Normalization) -> torch.Tensor:
        """(N,) bool: which images look like none of the model's classes."""
        return self.scores(activations(model, images, normalization)) > self.threshold

    def save(self, path: str | Path) -> None:
        """Written to a temporary file and renamed: a crash leaves the old file or none."""
        path = Path(path)
        # Half precision for the banks of activations (most of the file): a cosine to 3 digits is plenty.
        tensors = {name: (t.half() if name.endswith("bank") else t.float()).contiguous()
                   for name, t in self.tensors.items()}
        metadata = {"version": VERSION, "detectors": json.dumps(DETECTORS), "threshold": repr(self.threshold),
                    "flagged_share": repr(self.flagged_share), "weights": self.weights}
        # Serialised here and written with open(), so the file gets the usual permissions
        # (safetensors' save_file makes it owner-only: other users of a classroom server could not read it).
        content = safetensors_bytes(tensors, metadata=metadata)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> "NoveltyStats":
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {name: f.get_tensor(name).double() for name in f.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise NoveltyError(f"{path}: not a readable novelty file ({error}).") from None
        expected = {f"{i}.{name}" for i, (kind, _) in enumerate(DETECTORS) for name in FITTED[kind] + ("reference",)}
        if metadata.get("version") != VERSION or set(tensors) != expected:
            raise NoveltyError(f"{path}: made by another version of the novelty check; fit it again.")
        try:
            threshold, share = float(metadata["threshold"]), float(metadata["flagged_share"])
        except (KeyError, ValueError):
            threshold = share = float("nan")
        if not np.isfinite(threshold):
            raise NoveltyError(f"{path}: its threshold is missing or not a number; fit it again.")
        return cls(tensors, threshold, share, metadata.get("weights", ""))

    def fits(self, model: nn.Module) -> bool:
        """Whether these statistics were made for a model of this shape (the sizes of its activations)."""
        with torch.no_grad():
            found = activations(model, torch.zeros(1, 28, 28, dtype=torch.uint8), Normalization(0.0, 1.0))
        for i, (kind, tap) in enumerate(DETECTORS):
            for name in FITTED[kind]:
                if found[tap].shape[1] != self.tensors[f"{i}.{name}"].shape[-1]:
                    return False
        try:  # a damaged file's matrix of another shape fails here, not on the Draw page
            self.scores(found)
        except RuntimeError:
            return False
        return True


def fit(model: nn.Module, normalization: Normalization, images: torch.Tensor, labels: torch.Tensor,
        held_out: torch.Tensor, num_classes: int, flagged_share: float = FLAGGED_SHARE, seed: int = 0,
        frame: Framing = MNIST_FRAMING) -> NoveltyStats:
    """Fit the detectors on `images` (training images with their labels) and calibrate them on
    `held_out` (other images of the same classes): half of it gives each detector's reference
    scores, the other half the threshold that flags `flagged_share` of it. `frame`, the
    dataset's framing, says how wide the Draw page's pens come out (the ink detector)."""
    if len(images) == 0 or len(held_out) < 20:
        raise ValueError("fitting the novelty check needs training images and at least 20 held-out images")
    generator = torch.Generator().manual_seed(seed)
    train = activations(model, images, normalization)
    labels = labels.cpu().long()
    order = torch.randperm(len(held_out), generator=generator)
    reference_images, threshold_images = held_out[order[::2]], held_out[order[1::2]]
    reference = activations(model, reference_images, normalization)
    tensors: dict[str, torch.Tensor] = {}
    for i, (kind, tap) in enumerate(DETECTORS):
        own = (_mahalanobis_fit(train[tap], labels, num_classes) if kind == "mahalanobis" else
               _neighbours_fit(train[tap], generator) if kind == "neighbours" else {})
        found = reference[tap]
        if kind == "ink":
            # How much ink a drawing of a class may hold: the held-out images re-drawn with the
            # Draw page's pens, up to the widest, which inks a kana far more than its brush did.
            unit = reference_images.float() / 255 if reference_images.dtype == torch.uint8 else reference_images
            found = ink_share(strokes.stroke_augment(unit.reshape(-1, 1, 28, 28), 1.0, generator, framing=frame))
        own["reference"] = _score(kind, own, found).sort().values
        tensors.update({f"{i}.{name}": t for name, t in own.items()})
    stats = NoveltyStats(tensors, 0.0, flagged_share)
    combined = stats.scores(activations(model, threshold_images, normalization))
    stats.threshold = float(np.quantile(combined.numpy(), 1 - flagged_share))
    return stats


def fit_for_splits(model: nn.Module, splits: Splits, seed: int = 0) -> NoveltyStats:
    """The detectors of a trained model, fitted on (up to FIT_IMAGES of) its training split and
    calibrated on its validation split; without one, a tenth of the training split is held
    out instead."""
    generator = torch.Generator().manual_seed(seed)
    train_images, train_labels, held_out = splits.train_images, splits.train_labels, splits.val_images
    if len(held_out) < 20:
        order = torch.randperm(len(train_images), generator=generator)
        cut = max(20, len(train_images) // 10)
        held_out, train_images, train_labels = (train_images[order[:cut]], train_images[order[cut:]],
                                                train_labels[order[cut:]])
    if len(train_images) > FIT_IMAGES:
        pick = torch.randperm(len(train_images), generator=generator)[:FIT_IMAGES]
        train_images, train_labels = train_images[pick], train_labels[pick]
    frame = framing.framing_for_dataset(splits.info.name, splits.train_images)
    return fit(model, splits.normalization, train_images, train_labels, held_out, splits.info.num_classes, seed=seed,
               frame=frame)


def weights_digest(run_path: str | Path) -> str:
    """The SHA-256 of a run's weights file: which weights a run's statistics belong to."""
    from .runs import WEIGHTS
    return hashlib.sha256((Path(run_path) / WEIGHTS).read_bytes()).hexdigest()


def save_for_run(stats: NoveltyStats, run_path: str | Path) -> None:
    """Save the statistics beside the run's weights, marked with which weights they fit."""
    stats.weights = weights_digest(run_path)
    stats.save(Path(run_path) / FILE)


def load_for_run(run_path: str | Path, model: nn.Module) -> NoveltyStats | None:
    """The run's saved statistics; None when it has none, or only some for other weights (the
    run trained on after they were fitted). NoveltyError when they are unusable."""
    path = Path(run_path) / FILE
    if not path.is_file():
        return None
    stats = NoveltyStats.load(path)
    if stats.weights and stats.weights != weights_digest(run_path):
        return None
    if not stats.fits(model):
        raise NoveltyError(f"{path} was made for another model; fit it again.")
    return stats


def fit_for_run(run, data_root: str | None = None) -> NoveltyStats:
    """Fit the statistics of an existing run from its dataset (the same split it was trained
    with) and save them beside its weights; where the folder is read-only they are only
    returned. Raises DatasetUnavailable without the data, CheckpointError for a broken run."""
    from . import data, runs
    model = runs.load_model(run)
    config = run.config
    splits = data.make_splits(data.load_dataset(run.record.dataset.name, data_root, download=False),
                              config.val_fraction, config.seed)
    stats = fit_for_splits(model, splits, config.seed)
    try:
        save_for_run(stats, run.path)
    except OSError as error:
        log.warning("could not save %s for run %s: %s", FILE, run.id, error)
    return stats


def main(argv: list[str] | None = None) -> int:
    """python -m kmnist_core.novelty RUN [RUN ...]: fit and save the "not one of my classes"
    statistics of runs that lack them (trained before the trainer fitted them), as the Draw
    page does the first time it shows one."""
    from . import data, runs
    parser = argparse.ArgumentParser(prog="python -m kmnist_core.novelty", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", help="run ids (folders under the runs directory) or paths")
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--data-root", default=None, help="where the datasets are (default: $KMNIST_DATA_ROOT, else ./data)")
    args = parser.parse_args(argv)
    status = 0
    for name in args.runs:
        try:
            run = runs.load_run(name, args.runs_dir)
            fit_for_run(run, args.data_root)
            print(f"{run.id}: saved {run.path / FILE}" if (run.path / FILE).is_file() else
                  f"{run.id}: fitted, but {run.path} is read-only: nothing saved")
        except (ValueError, OSError, runs.CheckpointError, data.DatasetUnavailable) as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
