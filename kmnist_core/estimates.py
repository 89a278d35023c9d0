"""How long a configuration would train on this machine, from measured steps.

One figure per configuration and machine: the first measurement of a configuration's
speed (images a second) is kept for the life of the process, so every page and every
visit shows the same estimate. It comes from, in this order:
- a job training the same configuration right now: its own images a second;
- a probe: a few training steps of the configuration, timed here, but only while no job
  trains on the device (two trainings on the same cores slow each other many times over:
  the figure would be wrong by as much, and the job slowed).
While another configuration trains on the device, there is no estimate yet (None).
"""

from __future__ import annotations

import threading
import time

import torch
import torch.nn.functional as F

from . import models, training
from .config import TrainConfig
from .jobs import JobManager, device_key

PROBE_STEPS = 5
MIN_MEASURED_STEPS = 20      # a running job's speed is read once it has taken this many steps
VALIDATION_OVERHEAD = 1.1    # validation and testing add about a tenth to the training steps

_speeds: dict[tuple, float] = {}  # images a second, by speed_key: measured once per process
_probing = threading.Lock()        # one probe at a time, and no second probe of the same configuration


def speed_key(config: TrainConfig) -> tuple:
    """What sets the speed of a training step on this machine (not the dataset, seed or epochs)."""
    return (device_key(config.device), training.cpu_threads(), config.arch, config.width, config.batch_size,
            config.optimizer, config.augment > 0 or config.flip, config.ema > 0)


def training_images(config: TrainConfig, train_size: int) -> int:
    """Images the trainer steps through: the training split in whole batches, every epoch."""
    split = int(train_size * (1 - config.val_fraction))
    return split // config.batch_size * config.batch_size * config.epochs


def estimate_seconds(config: TrainConfig, train_size: int, manager: JobManager) -> float | None:
    """Seconds `config` would train on this machine, or None while the device is busy training
    another configuration and this one's speed was never measured."""
    speed = images_per_second(config, manager)
    return None if speed is None else training_images(config, train_size) / speed * VALIDATION_OVERHEAD


def images_per_second(config: TrainConfig, manager: JobManager) -> float | None:
    key = speed_key(config)
    if key in _speeds:
        return _speeds[key]
    device = key[0]
    job = manager.running_on(device)
    if job is not None:
        snap = job.snapshot()
        if speed_key(snap.config) == key and snap.step >= MIN_MEASURED_STEPS and snap.images_per_second > 0:
            return _speeds.setdefault(key, snap.images_per_second)
        return None  # never time a probe while a job trains on the same cores
    with _probing:
        if key not in _speeds:
            with manager.device_if_idle(device) as idle:
                if not idle:
                    return None
                _speeds[key] = probe(config)
        return _speeds[key]


def probe(config: TrainConfig, num_classes: int = 10, steps: int = PROBE_STEPS) -> float:
    """Images a second of `config`'s training step, timed over a few steps on random images."""
    device = training.pick_device(config.device)
    model = models.build(config.arch, num_classes=num_classes, dropout=config.dropout, width=config.width)
    memory_format = torch.channels_last if models.is_convolutional(model) else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = training._optimizer(config, model)
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG alone
    x = torch.rand(config.batch_size, 1, 28, 28, generator=generator).to(device, memory_format=memory_format)
    y = torch.randint(0, num_classes, (config.batch_size,), generator=generator).to(device)
    for i in range(steps + 1):
        if i == 1:  # the first step pays one-off kernel set-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - start)
