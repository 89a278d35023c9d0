"""The shipped models in checkpoints/: each loads without unpickling into its own
architecture, stays small, records the command that made it, and (where the real data
is beside the checkout) still scores the test accuracy its run.json states."""

from pathlib import Path

import pytest

from conftest import REAL_DATASETS, needs_shared
from kmnist_core import data, evaluation, runs

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p.name for p in CHECKPOINTS.glob("shipped-*"))


def test_the_promised_models_ship():
    assert {"shipped-kmnist-resnet", "shipped-kmnist-lenet", "shipped-mnist-resnet", "shipped-fashion-resnet",
            "shipped-mnist-lenet", "shipped-fashion-lenet"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_loads_and_is_documented(name):
    run = runs.load_run(name, CHECKPOINTS)
    model = runs.load_model(run)  # raises CheckpointError on a mismatch with run.json's architecture
    assert run.shipped and run.status == "finished"
    assert run.record.dataset.name in data.DATASETS  # a dataset of this install, never a retired stand-in
    assert run.record.command.startswith(f"python -m kmnist_core train --dataset {run.record.dataset.name} "
                                         f"--arch {run.config.arch} ")
    assert (run.path / runs.WEIGHTS).stat().st_size < 5_000_000
    assert sum(p.numel() for p in model.parameters()) == run.record.model.parameters


@needs_shared
@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_scores_what_it_states(name):
    run = runs.load_run(name, CHECKPOINTS)
    dataset = data.load_dataset(run.record.dataset.name, REAL_DATASETS, download=False)
    _, accuracy = evaluation.loss_and_accuracy(runs.load_model(run), dataset.test_images, dataset.test_labels,
                                               run.normalization)
    assert accuracy == pytest.approx(run.test_accuracy, abs=1e-4)
    assert accuracy >= {"kmnist": 0.96, "mnist": 0.99, "fashion": 0.88}[run.record.dataset.name]


def test_kmnist_models_carry_the_datasets_attribution():
    for name in ("shipped-kmnist-resnet", "shipped-kmnist-lenet"):
        record = runs.load_run(name, CHECKPOINTS).record
        assert record.attribution == data.DATASETS["kmnist"].attribution
        assert '"KMNIST Dataset" (created by CODH)' in record.attribution and "doi:10.20676/00000341" in record.attribution
