"""Look inside a model: what each layer makes of one drawing, and which classes it pushes
towards, for the Draw page's "Look inside" panel (CNN Explainer's idea, for every preset).

    >>> seen = look(model, normalization, image28)       # image28: (28, 28) float in [0, 1]
    >>> [(layer.title, layer.values.shape) for layer in seen.layers]
    [('Conv2d 1→6 5x5 · MaxPool2d · ReLU', (6, 12, 12)), ..., ('Linear 120→84 · ReLU', (84,))]

A model is walked as its forward pass runs (models.Classifier: `features`, a Sequential, then
the linear `head`), so nothing is registered on a model other sessions share. A layer shown
is a stage of `features` that ends in an activation or a block (a residual or mixer block):
a convolution with its pooling and ReLU is one picture, not three. Its values are feature
maps (channels, height, width) or, for dense layers, units (units,); a mixer's token
sequence is shown as maps over its 7x7 grid of patches.

Which classes a layer pushes towards: for each class, the sum over the layer's values of
value x the gradient of that class's logit with respect to it (gradient x activation).
For the head's input this is exact: it sums to the logit minus the head's bias; for earlier
layers it is a first-order estimate, as saliency is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import Normalization
from .models import eval_mode

# Modules after which a stage ends: what they output is what the layer "sees".
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid)
# Modules that change nothing worth a picture on their own (a stage of only these is not shown).
PASS_THROUGH = (nn.Dropout, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class Layer:
    title: str             # what they are: "Conv2d 1→6 5x5 · MaxPool2d · ReLU"
    values: np.ndarray     # (C, H, W) feature maps, or (U,) units
    push: np.ndarray       # (num_classes,) gradient x activation summed, per class

    @property
    def has_maps(self) -> bool:
        return self.values.ndim == 3


@dataclass(frozen=True)
class Inside:
    layers: list[Layer]
    logits: np.ndarray        # (num_classes,)
    head_bias: np.ndarray     # (num_classes,), zeros for a head without bias
    unit_push: np.ndarray     # (units, num_classes): head weight x the head's input, per unit and class


def stages(model: nn.Module) -> list[tuple[int, int]]:
    """The (first, last) indices in model.features of each stage shown: runs of modules ending
    in an activation, a block (a module with children) or the last module, without the runs
    made only of pass-through modules (a trailing Dropout)."""
    parts = list(model.features)
    found, first = [], 0
    for index, part in enumerate(parts):
        if isinstance(part, ACTIVATIONS) or list(part.children()) or index == len(parts) - 1:
            if not all(isinstance(p, PASS_THROUGH) for p in parts[first:index + 1]):
                found.append((first, index))
            first = index + 1
    return found


def describe(module: nn.Module) -> str:
    """A module in a few words: 'Conv2d 1→6 5x5', 'Linear 784→64', 'ResidualBlock'."""
    name = type(module).__name__
    if isinstance(module, nn.Conv2d):
        return f"{name} {module.in_channels}→{module.out_channels} {'x'.join(map(str, module.kernel_size))}"
    if isinstance(module, nn.Linear):
        return f"{name} {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Sequential):
        return " · ".join(describe(m) for m in module if not isinstance(m, PASS_THROUGH))
    return name


def _as_values(x: torch.Tensor) -> np.ndarray:
    """One image's activations as maps (C, H, W) or units (U,). A token sequence (T, C) whose T
    is a square number (a mixer's 49 patches) becomes C maps over the patch grid."""
    x = x.detach().float().cpu()
    if x.dim() == 2 and math.isqrt(x.shape[0]) ** 2 == x.shape[0]:
        side = math.isqrt(x.shape[0])
        x = x.T.reshape(x.shape[1], side, side)
    elif x.dim() not in (1, 3):
        x = x.flatten()
    return x.numpy()


def look(model: nn.Module, normalization: Normalization, image28: torch.Tensor) -> Inside:
    """What every stage of `model` makes of one prepared (28, 28) image, and each stage's
    push towards every class. One forward pass of a batch of one copy per class and one
    backward pass: each copy's logit of its own class gives that class's gradients."""
    head: nn.Linear = model.head
    num_classes = head.out_features
    device = next(model.parameters()).device
    shown = stages(model)
    ends = {last: (first, last) for first, last in shown}
    # Input gradients on: every activation is in the graph even if the weights are frozen.
    x = normalization.apply(image28[None, None].to(device)).repeat(num_classes, 1, 1, 1).requires_grad_(True)
    outputs = []
    with eval_mode(model), torch.enable_grad():
        for index, part in enumerate(model.features):
            x = part(x)
            if index in ends:
                outputs.append(x)
        logits = head(x)
        # autograd.grad, not backward(): the model's parameters' .grad stay untouched (shared model).
        grads = torch.autograd.grad(logits.diagonal().sum(), outputs)
    layers = []
    parts = list(model.features)
    for (first, last), out, grad in zip(shown, outputs, grads):
        push = (out * grad).flatten(1).sum(1).detach().float().cpu().numpy()
        title = " · ".join(describe(p) for p in parts[first:last + 1] if not isinstance(p, PASS_THROUGH))
        layers.append(Layer(title, _as_values(out[0]), push))
    head_input = x[0].detach().float().cpu()
    weight = head.weight.detach().float().cpu()
    bias = head.bias.detach().float().cpu().numpy() if head.bias is not None else np.zeros(num_classes, np.float32)
    return Inside(layers, logits[0].detach().float().cpu().numpy(), bias, (weight * head_input).T.numpy())


def strongest(values: np.ndarray, count: int) -> np.ndarray:
    """The indices of the `count` channels (maps) or units most active for this image, strongest
    first: by mean absolute activation (a map) or absolute value (a unit)."""
    strength = np.abs(values).reshape(len(values), -1).mean(1)
    return np.argsort(-strength, kind="stable")[:count]
