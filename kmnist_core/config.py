"""The training configuration: one plain dataclass, stored in every run.json and
turned into command-line options field by field (see cli.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import models

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "onecycle", "cosine", "plateau")


def _option(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    # The defaults are the CPU's "quick demo": the half-width residual CNN reaches 99.2% on MNIST in
    # two epochs (see the README's benchmarks); quick_demo() gives a GPU's.
    dataset: str = _option("mnist", "dataset name (kmnist, mnist, fashion) or a folder of idx files")
    arch: str = _option("resnet_small", "architecture preset (see `list`)")
    epochs: int = _option(2, "passes over the training split")
    batch_size: int = _option(128, "images per step")
    optimizer: str = _option("adamw", "optimizer", OPTIMIZERS)
    lr: float = _option(3e-3, "learning rate (the peak rate for onecycle)")
    weight_decay: float = _option(5e-4, "weight decay")
    schedule: str = _option("onecycle", "learning-rate schedule", SCHEDULES)
    label_smoothing: float = _option(0.0, "label smoothing of the cross-entropy loss, 0 to 1")
    dropout: float | None = _option(None, "dropout probability, for models that have dropout (default: the preset's)")
    width: float = _option(1.0, "multiplies every hidden layer's size (1 is the preset as published)")
    augment: float = _option(0.0, "augmentation strength 0-1: random rotation up to 15 deg, shift up to 3 px, scale 15%")
    flip: bool = _option(False, "random horizontal flips (for clothing; characters and digits are not symmetric)")
    ema: float = _option(0.0, "decay of a moving average of the weights, validated and tested instead of them "
                              "(0: off; 0.999 is typical)")
    val_fraction: float = _option(0.1, "fraction of the training set held out for validation (stratified)")
    seed: int = _option(0, "random seed (runs on the CPU are deterministic given it)")
    device: str = _option("auto", "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps")
    data_root: str | None = _option(None, "folder holding the datasets (default: $KMNIST_DATA_ROOT, else ./data)")
    name: str = _option("", "a display name for the run")
    group: str = _option("", "the sweep or experiment this run belongs to")

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a one-line reason for values no run can use."""
        checks = [
            (self.arch in models.MODELS, f"Unknown architecture '{self.arch}': choose one of {', '.join(models.MODELS)}."),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be 0 or more, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.dropout is None or 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.width > 0, f"width must be positive, got {self.width}"),
            (0 <= self.augment <= 1, f"augment must be in [0, 1], got {self.augment}"),
            (0 <= self.ema < 1, f"ema must be in [0, 1), got {self.ema}"),
            (0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
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
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
