"""kmnist_core.inside over every preset: the layers it shows, their shapes, and pushes that
add up to the logits where they must."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kmnist_core import charts, inside, models
from kmnist_core.data import Normalization

NORMALIZATION = Normalization(0.19, 0.35)


def drawing() -> torch.Tensor:
    image = torch.zeros(28, 28)
    image[4:24, 12:15] = 1.0
    image[8:11, 5:23] = 0.8
    return image


@pytest.fixture(scope="module")
def looked() -> dict:
    """Each preset (untrained, 7 classes, its BatchNorm statistics moved off their defaults) looked at once."""
    torch.manual_seed(0)
    found = {}
    for name in models.list_models():
        model = models.build(name, num_classes=7)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
        model.train()                      # look must use eval mode and leave the mode as it was
        found[name] = (model, inside.look(model, NORMALIZATION, drawing()))
    return found


@pytest.mark.parametrize("name", models.list_models())
def test_every_preset_shows_finite_layers_and_its_own_logits(looked, name):
    model, seen = looked[name]
    assert model.training and all(p.grad is None for p in model.parameters())
    with models.eval_mode(model), torch.no_grad():
        expected = model(NORMALIZATION.apply(drawing()[None, None]))[0].numpy()
    np.testing.assert_allclose(seen.logits, expected, rtol=1e-4, atol=1e-5)
    assert len(seen.layers) >= 2
    for layer in seen.layers:
        assert layer.values.ndim in (1, 3) and layer.push.shape == (7,)
        assert np.isfinite(layer.values).all() and np.isfinite(layer.push).all()
        assert layer.title
    assert seen.unit_push.shape == (model.head.in_features, 7)


@pytest.mark.parametrize("name", models.list_models())
def test_the_last_layers_push_sums_to_the_logits_less_the_bias(looked, name):
    _, seen = looked[name]
    np.testing.assert_allclose(seen.unit_push.sum(0) + seen.head_bias, seen.logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(seen.layers[-1].push + seen.head_bias, seen.logits, rtol=1e-4, atol=1e-4)


def test_convolutional_models_show_maps_and_mlps_units(looked):
    kinds = {name: [layer.has_maps for layer in seen.layers] for name, (_, seen) in looked.items()}
    assert kinds["mlp"] == [False, False] and kinds["mlp_wide"] == [False] * 3
    assert kinds["lenet"] == [True, True, False, False]
    # a convolution with its pooling and ReLU is one layer: LeNet's first shows 6 maps of 12x12
    assert looked["lenet"][1].layers[0].values.shape == (6, 12, 12)
    assert "Conv2d 1→6 5x5" in looked["lenet"][1].layers[0].title
    assert kinds["resnet"] == [True, True, True, True, False]
    assert looked["mixer"][1].layers[0].values.shape == (16, 7, 7)       # tokens over the 7x7 patch grid
    assert not any("Dropout" in layer.title for _, seen in looked.values() for layer in seen.layers)


def test_a_blank_drawing_and_a_stroke_are_seen_differently(looked):
    model, seen = looked["lenet"]
    blank = inside.look(model, NORMALIZATION, torch.zeros(28, 28))
    assert not np.allclose(blank.layers[0].values, seen.layers[0].values)


def test_strongest_channels_come_first():
    maps = np.zeros((5, 4, 4), np.float32)
    maps[3] = 2.0
    maps[1] = -1.0
    maps[4, 0, 0] = 0.5
    assert inside.strongest(maps, 3).tolist() == [3, 1, 4]
    assert inside.strongest(np.array([0.1, -3.0, 2.0]), 2).tolist() == [1, 2]


def test_maps_and_units_become_pictures():
    maps = np.random.default_rng(0).normal(size=(10, 12, 12)).astype(np.float32)
    grid = charts.map_grid(maps, columns=8, tile=48, gap=3)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 48 + 3, 8 * 48 + 7 * 3, 3)
    units = charts.unit_grid(np.linspace(-1, 1, 250, dtype=np.float32), cell=10)
    assert units.shape == (16 * 10, 16 * 10, 3)                            # 250 units in a 16x16 grid
    assert (units[-1, -1] == int(0.45 * 255)).all()                        # the unused cells are grey
    figure = charts.class_push([np.array([1.0, -2.0]), np.array([0.5, 0.0])], ["Layer 1", "Layer 2"], ["a", "b"])
    assert figure.data[0].z.shape == (2, 2) and figure.data[0].zmin == -2.0
