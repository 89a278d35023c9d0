import types

import pytest
from conftest import make_run

from kmnist_core import sweeps
from kmnist_core.config import TrainConfig


def sweep_run(group, value, accuracy):
    return make_run(TrainConfig(group=group, lr=value), test_accuracy=accuracy)


def test_expand_values_times_seeds():
    base = TrainConfig(arch="mlp_small", seed=7)
    configs = sweeps.expand(base, "weight_decay", sweeps.parse_values(base, "weight_decay", "1e-3, 1e-4"), repeats=3)
    assert [(c.weight_decay, c.seed) for c in configs] == [
        (1e-3, 7), (1e-3, 8), (1e-3, 9), (1e-4, 7), (1e-4, 8), (1e-4, 9)]
    assert len({c.group for c in configs}) == 1 and sweeps.swept_param(configs[0].group) == "weight_decay"
    assert sweeps.new_group("lr") != sweeps.new_group("lr")  # two sweeps started in one second stay apart
    assert configs[0].arch == "mlp_small" and configs[4].name == "weight_decay=0.0001 seed=8"


def test_parse_values_types_and_errors():
    base = TrainConfig()
    assert sweeps.parse_values(base, "batch_size", "64,128") == [64, 128]
    assert sweeps.parse_values(base, "arch", "lenet,mlp") == ["lenet", "mlp"]
    with pytest.raises(ValueError, match="not a valid int"):
        sweeps.parse_values(base, "batch_size", "64,big")
    with pytest.raises(ValueError, match="lr must be between 1e-06 and 100, got -1"):
        sweeps.parse_values(base, "lr", "0.1,-1")
    with pytest.raises(ValueError, match="Cannot sweep 'seed'"):
        sweeps.parse_values(base, "seed", "1,2")


def test_aggregate_mean_std_and_table():
    runs = [sweep_run("", lr, acc) for lr, acc in [(0.1, 0.80), (0.1, 0.82), (0.1, 0.84), (0.01, 0.9)]]
    runs.append(sweep_run("", 0.01, None))  # a stopped run has no test metric
    rows = sweeps.aggregate(runs, "lr")
    assert [(r.value, r.n) for r in rows] == [(0.1, 3), (0.01, 1)]
    assert rows[0].mean == pytest.approx(0.82) and rows[0].std == pytest.approx(0.02)
    assert rows[1].std == 0.0
    table = sweeps.format_table(rows, "lr", "test_accuracy")
    assert "0.1 | 82.00 ± 2.00 (3)" in table and "0.01 | 90.00 ± 0.00 (1)" in table


def test_progress_counts_failures_as_failures_and_says_each_reason_once():
    def job(status, message="", name="run"):
        return types.SimpleNamespace(status=status, message=message, config=types.SimpleNamespace(name=name))
    offline = "Kuzushiji-MNIST is not in data/KMNIST/raw and could not be downloaded."
    state = sweeps.progress([job("failed", offline, "lr=0.1 seed=0"), job("failed", offline, "lr=0.01 seed=0"),
                             job("failed", "diverged at step 3", "lr=10 seed=0"), job("finished"),
                             job("cancelled"), job("stopped"), job("queued")])
    assert state.counts == {"queued": 1, "running": 0, "finished": 1, "failed": 3, "stopped": 2}
    assert state.failures == [(offline, ["lr=0.1 seed=0", "lr=0.01 seed=0"]), ("diverged at step 3", ["lr=10 seed=0"])]
def test_sweep_groups_and_the_reports_table():
    group = "sweep-lr-20250101-120000-ab12"
    found = [sweep_run(group, 0.001, 0.8279 + d) for d in (-0.0011, 0, 0.0011)]
    found += [sweep_run("", 0.1, 0.5), sweep_run("my-experiment", 0.1, 0.5), sweep_run(group, 0.01, None)]
    assert sweeps.sweep_groups(found) == [group]
    assert sweeps.swept_param(group) == "lr" and sweeps.swept_param("sweep-seed-20250101-120000-ab12") is None
    rows = sweeps.sweep_rows(found[::-1], group, "test_accuracy")  # newest first, as runs are scanned
    assert [(row.value, row.n) for row in rows] == [(0.001, 3), (0.01, 0)]
    table = sweeps.sweep_table(rows, "lr", "test_accuracy")
    assert table.values.tolist() == [["0.001", "82.79 ± 0.11", 3], ["0.01", "- ± -", 0]]
