"""The training configuration: one plain dataclass, stored in every run.json and
turned into command-line options (cli.py) and the pages' widgets field by field.

Each field's metadata is the one home of its rules: a label and help text, its
choices, or its inclusive bounds and a step for the widgets. `validate()` checks
types and bounds from that metadata, so the CLI, the pages and a run read back
from disk all refuse the same values with the same message.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field

from . import models

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "onecycle", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda", "mps")  # what the pages offer; the CLI also takes cuda:N


def _option(default, label: str, help: str, *, choices=None, min=None, max=None, step=None):
    return field(default=default, metadata={"label": label, "help": help, "choices": choices,
                                            "min": min, "max": max, "step": step})


@dataclass
class TrainConfig:
    # The defaults are the CPU's "quick demo": the half-width residual CNN reaches 99.2% on MNIST in
    # two epochs (see docs/benchmarks.md); quick_demo() gives a GPU's.
    dataset: str = _option("mnist", "Dataset", "dataset name (kmnist, mnist, fashion) or a folder of idx files")
    arch: str = _option("resnet_small", "Architecture", "architecture preset (see `list`)")
    # Upper bounds keep a typo from asking for days of training or more memory than a
    # classroom machine has (width 50 on resnet was killed by the kernel at 21 GB).
    epochs: int = _option(2, "Epochs", "passes over the training split", min=1, max=1000, step=1)
    batch_size: int = _option(128, "Batch size", "images per step", min=1, max=8192, step=1)
    optimizer: str = _option("adamw", "Optimizer", "optimizer", choices=OPTIMIZERS)
    lr: float = _option(3e-3, "Learning rate", "learning rate (the peak rate for onecycle)", min=1e-6, max=100.0,
                        step=1e-4)
    weight_decay: float = _option(5e-4, "Weight decay", "weight decay", min=0.0, max=1.0, step=1e-4)
    schedule: str = _option("onecycle", "Schedule", "learning-rate schedule", choices=SCHEDULES)
    label_smoothing: float = _option(0.0, "Label smoothing", "label smoothing of the cross-entropy loss",
                                     min=0.0, max=0.9, step=0.05)
    dropout: float | None = _option(None, "Dropout", "dropout probability, for models that have dropout "
                                    "(default: the preset's)", min=0.0, max=0.9, step=0.05)
    width: float = _option(1.0, "Width multiplier", "multiplies every hidden layer's size (1 is the preset as "
                           "published)", min=0.1, max=8.0, step=0.25)
    augment: float = _option(0.0, "Augmentation strength", "augmentation strength: random rotation up to 15 deg, "
                             "shift up to 3 px, scale 15%, times this", min=0.0, max=1.0, step=0.05)
    flip: bool = _option(False, "Random horizontal flips", "random horizontal flips (for clothing; characters and "
                         "digits are not symmetric)")
    strokes: float = _option(0.0, "Drawing-like strokes", "stroke augmentation strength: random stroke widths and, "
                             "for part of each batch, the character re-drawn with a uniform pen, so that a model "
                             "reads what people draw (0: off)", min=0.0, max=1.0, step=0.05)
    ema: float = _option(0.0, "Weight average (EMA decay)", "decay of a moving average of the weights, validated and "
                         "tested instead of them (0: off; 0.999 is typical)", min=0.0, max=0.9999, step=0.001)
    val_fraction: float = _option(0.1, "Validation fraction", "fraction of the training set held out for "
                                  "validation (stratified)", min=0.0, max=0.5, step=0.05)
    seed: int = _option(0, "Seed", "random seed (runs on the CPU are deterministic given it)", min=0, max=2**31 - 1,
                        step=1)
    device: str = _option("auto", "Device", "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps")
    data_root: str | None = _option(None, "Data folder", "folder holding the datasets (default: $KMNIST_DATA_ROOT, "
                                    "else ./data)")
    name: str = _option("", "Run name", "a display name for the run")
    group: str = _option("", "Group", "the sweep or experiment this run belongs to")
    # Set by the job manager from the acting user in a class (access.py); never a form field.
    owner: str = _option("", "Owner", "who started the run, in a class (the app sets it)")

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a one-line reason for values no run can use."""
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.arch not in models.MODELS:
            raise ValueError(f"Unknown architecture '{self.arch}': choose one of {', '.join(models.MODELS)}.")
        return self

    @classmethod
    def quick_demo(cls, device_type: str = "cpu") -> "TrainConfig":
        """The quick-demo recipe for a kind of device: the defaults above on the CPU; on a GPU the
        full-width resnet with twice the batch and a higher learning rate, which cost a GPU no more
        time per step (measured on an H200: 99.23% on MNIST in 1.1 s; see benchmarks/gpu.py)."""
        return cls() if device_type == "cpu" else cls(arch="resnet", batch_size=256, lr=4e-3)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config a run.json holds, checked. Keys this version does not know are ignored
        (a newer version's options); missing ones take their defaults (an older version's
        record). Whole numbers are accepted for float fields."""
        if not isinstance(values, dict):
            raise ValueError(f"the config must be a JSON object, not {type(values).__name__}")
        kinds = field_types()
        known = {}
        for name, value in values.items():
            if name not in kinds:
                continue
            if kinds[name] is float and type(value) is int:
                value = float(value)
            known[name] = value
        return cls(**known).validate()


@functools.cache
def field_types() -> dict[str, type]:
    """Each field's value type, `X | None` read as X."""
    hints = typing.get_type_hints(TrainConfig)
    return {name: next((a for a in typing.get_args(kind) if a is not type(None)), kind)
            for name, kind in hints.items()}


@functools.cache
def optional_fields() -> frozenset[str]:
    """The fields that may be None (dropout: the preset's own; data_root: the default folder)."""
    return frozenset(name for name, kind in typing.get_type_hints(TrainConfig).items()
                     if type(None) in typing.get_args(kind))


def _check_field(f: dataclasses.Field, value) -> None:
    if value is None and f.name in optional_fields():
        return
    kind = field_types()[f.name]
    # bool is an int to Python, but True epochs or a batch size of False is a mistake.
    right_type = type(value) is kind or (kind is float and type(value) is int)
    if not right_type:
        raise ValueError(f"{f.name} must be {_KIND_NAMES[kind]}, got {value!r}")
    meta = f.metadata
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{f.name} must be a finite number, got {value}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    low, high = meta["min"], meta["max"]
    if low is not None and not low <= value <= high:
        raise ValueError(f"{f.name} must be between {_plain(low)} and {_plain(high)}, got {_plain(value)}")


def _plain(number) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


_KIND_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
