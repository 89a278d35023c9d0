import pytest
import torch

from kmnist_core import models

REPORT_PARAMETER_COUNTS = {
    "mlp": 222_360,
    "mlp_wide": 932_362,
    "mlp_small": 55_050,
    "lenet": 44_426,
    "lenet_avg": 36_038,
    "cnn_small": 607_394,
    "convnet_bn": 857_930,  # 832 + 64 (BN) + 51,264 + 128 (BN) + 803,072 + 2,570
}


def test_registry_lists_every_preset():
    assert set(models.list_models()) == set(REPORT_PARAMETER_COUNTS) | {"mixer", "resnet", "resnet_small"}


def test_quick_demo_resnet_is_resnet_at_half_width():
    assert models.count_parameters(models.build("resnet_small")) == 230_458
    assert models.count_parameters(models.build("resnet_small", width=2)) == \
        models.count_parameters(models.build("resnet")) == 917_610


@pytest.mark.parametrize("name,count", REPORT_PARAMETER_COUNTS.items())
def test_report_parameter_counts(name, count):
    assert models.count_parameters(models.build(name)) == count


@pytest.mark.parametrize("name", models.list_models())
def test_forward_backward_features_and_summary(name):
    torch.manual_seed(0)
    model = models.build(name, num_classes=7)
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 7)
    logits.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters())
    features = model.features(x)
    assert features.dim() == 2 and features.shape[1] == model.head.in_features
    rows = models.summarize(model)
    assert sum(r.parameters for r in rows) == models.count_parameters(model)
    assert rows[-1].output_shape == (7,)


def test_mixer_shape_follows_the_report():
    mixer = models.build("mixer")
    assert mixer.head.in_features == 16                       # classifier 16 -> 10
    token_mlp = mixer.features[3].token_mlp
    assert (token_mlp[0].in_features, token_mlp[0].out_features, token_mlp[3].out_features) == (49, 512, 49)


def test_options_and_errors():
    assert models.build("cnn_small", dropout=0.5).features[-1].p == 0.5
    wide = models.build("mlp_small", width=2)
    assert wide.head.in_features == 128
    with pytest.raises(ValueError, match="Unknown architecture 'vgg'"):
        models.build("vgg")
    with pytest.raises(ValueError, match="no dropout"):
        models.build("lenet", dropout=0.3)


def test_eval_mode_restores_the_mode_it_found_even_on_error():
    model = models.build("resnet")
    with models.eval_mode(model):
        assert not model.training and not any(m.training for m in model.modules())
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with pytest.raises(RuntimeError):
        with models.eval_mode(model):
            raise RuntimeError("mid-evaluation")
    assert not model.training
