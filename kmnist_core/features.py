"""What a trained model has learned: its penultimate-layer features for a sample of
images, projected to 2-D with PCA or t-SNE, and its first layer's weights as images.

    >>> sample = features.sample_features(model, dataset, run.normalization, size=2000)
    >>> points = features.project(sample.features, "tsne")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.model_selection import train_test_split
from torch import nn

from .data import Normalization, RawDataset
from .evaluation import predict_logits

METHODS = ("pca", "tsne")
TSNE_INPUT_DIMS = 50  # t-SNE runs on the top principal components: faster, and it drops the noise


def extract_features(model, images_uint8: torch.Tensor, normalization: Normalization,
                     batch_size: int = 512) -> np.ndarray:
    """Penultimate-layer features (N, D): the output of `model.features`, before the linear head."""
    # `features` is a module of its own, so the batched eval-mode forward of the logits applies to it as is.
    return predict_logits(model.features, images_uint8, normalization, batch_size).cpu().numpy()


def sample_indices(labels: torch.Tensor, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices drawn with the classes in their proportions (all of them if there are fewer), sorted."""
    everything = np.arange(len(labels))
    if size >= len(labels):
        return everything
    picked, _ = train_test_split(everything, train_size=size, random_state=seed, stratify=labels.numpy())
    return np.sort(picked)


@dataclass
class Sample:
    """A sample of the test set with the model's features and predictions for it."""
    indices: np.ndarray       # into the test set
    labels: np.ndarray
    predictions: np.ndarray
    features: np.ndarray      # (N, D)


def sample_features(model, dataset: RawDataset, normalization: Normalization, size: int, seed: int = 0) -> Sample:
    indices = sample_indices(dataset.test_labels, size, seed)
    found = extract_features(model, dataset.test_images[indices], normalization)
    with torch.no_grad():  # the head on the features gives the predictions without a second pass
        logits = model.head(torch.from_numpy(found).to(next(model.parameters()).device))
    return Sample(indices, dataset.test_labels[indices].numpy(), logits.argmax(1).cpu().numpy(), found)


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) features -> (N, 2) points; the same points for the same features and seed."""
    if method not in METHODS:
        raise ValueError(f"Unknown projection '{method}': choose one of {', '.join(METHODS)}.")
    features = np.asarray(features, dtype=np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if features.shape[1] > TSNE_INPUT_DIMS and len(features) > TSNE_INPUT_DIMS:
        features = PCA(n_components=TSNE_INPUT_DIMS, random_state=seed).fit_transform(features)
    # Perplexity must stay below the number of points; 30 is the usual choice for a few thousand.
    perplexity = min(30.0, (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(features)


def first_layer_images(model: nn.Module) -> list[np.ndarray]:
    """The first layer's weights as square images in [0, 1], one per unit: a CNN's first
    filters, an MLP's first weight rows as 28x28, the mixer's patch embedding as 4x4.
    Zero is mid-grey, so bright means a positive weight and dark a negative one."""
    layer = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    weights = layer.weight.detach().cpu().float()
    if isinstance(layer, nn.Conv2d):
        tiles = weights.mean(dim=1)  # over input channels: one for the grey images of the first layer
    else:
        side = round(weights.shape[1] ** 0.5)
        tiles = weights.reshape(len(weights), side, side)
    scale = tiles.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return list((tiles / scale * 0.5 + 0.5).numpy())
