"""TrainConfig's rules live in its field metadata: types, choices and bounds are checked by
validate(), read back from run.json by from_dict, shown by the CLI and used by the pages'
widgets (issue 13, item 23)."""

import dataclasses

import pytest

from kmnist_core.cli import main
from kmnist_core.config import TrainConfig

WRONG = {
    "width as text": (dict(width="wide"), "width must be a number, got 'wide'"),
    "dropout as text": (dict(dropout="0.2"), "dropout must be a number, got '0.2'"),
    "epochs as a flag": (dict(epochs=True), "epochs must be a whole number, got True"),
    "epochs as a float": (dict(epochs=2.5), "epochs must be a whole number, got 2.5"),
    "name as a number": (dict(name=7), "name must be text, got 7"),
    "flip as a number": (dict(flip=1), "flip must be true or false, got 1"),
    "infinite lr": (dict(lr=float("inf")), "lr must be a finite number, got inf"),
    "huge width": (dict(width=50.0), "width must be between 0.1 and 8, got 50"),
    "huge batch": (dict(batch_size=100_000), "batch_size must be between 1 and 8192, got 100000"),
    "endless epochs": (dict(epochs=10**6), "epochs must be between 1 and 1000, got 1000000"),
    "negative seed": (dict(seed=-1), "seed must be between 0 and 2147483647, got -1"),
    "unknown optimizer": (dict(optimizer="lion"), "optimizer must be one of adam, adamw, sgd, got 'lion'"),
}


@pytest.mark.parametrize("case", WRONG)
def test_wrong_types_and_values_beyond_the_bounds_are_refused(case):
    values, message = WRONG[case]
    with pytest.raises(ValueError) as error:
        TrainConfig(**values).validate()
    assert str(error.value) == message


def test_every_number_has_bounds_and_every_setting_a_label():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["label"] and f.metadata["help"]
        if f.type in ("int", "float", "float | None"):
            low, high, step = f.metadata["min"], f.metadata["max"], f.metadata["step"]
            assert low < high and 0 < step <= high - low, f.name
            assert f.default is None or low <= f.default <= high, f.name


def test_a_stored_config_is_checked_and_whole_numbers_count_as_floats():
    assert TrainConfig.from_dict({"width": 2, "future_option": 1}).width == 2.0
    for stored in ([1, 2], "lenet", None):
        with pytest.raises(ValueError, match="the config must be a JSON object"):
            TrainConfig.from_dict(stored)
    with pytest.raises(ValueError, match="dropout must be a number"):
        TrainConfig.from_dict({"dropout": "0.5"})


def test_the_cli_shows_the_bounds_and_refuses_a_huge_width_in_one_line(capsys):
    assert main(["train", "--width", "50"]) == 2
    assert capsys.readouterr().err == "error: width must be between 0.1 and 8, got 50\n"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: 2, 1 to 1000)" in capsys.readouterr().out


def test_the_pages_widgets_take_their_bounds_from_the_metadata(app_env):
    """The number fields are unbounded in the browser (which would keep an out-of-range value with a
    small red icon): the bounds the page states beside a field are the metadata's."""
    from conftest import open_page
    fields = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}

    def refused_beside(at, key, name):
        meta = fields[name]
        at.number_input(key=key).set_value(meta["max"] * 2 + 1).run()
        said = f"{meta['label']} must be between {meta['min']:g} and {meta['max']:g}."
        assert any(e.value == said for e in at.error), (name, [e.value for e in at.error])
        at.number_input(key=key).set_value(meta["min"]).run()

    at = open_page("pages/train.py")
    for name in ("epochs", "batch_size", "lr", "weight_decay", "width", "seed", "label_smoothing"):
        refused_beside(at, f"train_{name}", name)
    assert (at.slider(key="train_augment").min, at.slider(key="train_augment").max) == (fields["augment"]["min"],
                                                                                         fields["augment"]["max"])
    at.switch_page("pages/sweep.py").run()
    for name in ("epochs", "batch_size", "lr", "weight_decay"):
        refused_beside(at, f"sweep_{name}", name)
    at.selectbox(key="sweep_param").set_value("width").run()
    at.text_input(key="sweep_values_width").set_value("1, 100").run()  # once free text without bounds
    assert not at.exception and "width must be between 0.1 and 8, got 100" in at.error[0].value
    assert "start_sweep" not in [button.key for button in at.button]
