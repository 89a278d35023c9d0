"""The trainer: one function, `train(config)`, that fits a model and saves it as a run.

Fast by design on a small CPU: each split is one uint8 tensor on the device,
a batch is an index slice of it, and augmentation is one affine warp of the
whole batch (grid_sample) - there is no DataLoader and no per-image Python.

Progress goes to `on_event` as plain dataclasses (RunStarted, Phase, Step,
Epoch); setting the `stop` event ends the run within one step and keeps the
best weights so far.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

from . import models, runs
from .config import TrainConfig
from .data import dataset_info, load_dataset, make_splits, needs_download
from .evaluation import loss_and_accuracy


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then the CPU for "auto"; otherwise the named device, if present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device '{name}' was asked for but this machine has no CUDA GPU; use auto or cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device '{name}' was asked for but Apple MPS is not available here; use auto or cpu.")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS GPU"
    return f"CPU ({torch.get_num_threads()} threads)"


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def augment_batch(images: torch.Tensor, strength: float, generator: torch.Generator,
                  flip: bool = False) -> torch.Tensor:
    """Random rotation (up to 15 deg), shift (up to 3 px) and scale (up to 15%) per image,
    scaled by `strength`, and optionally a mirror image for half of them, as one affine warp
    of the whole (N, 1, 28, 28) [0, 1] batch. Pixels brought in from outside the frame are 0,
    the datasets' background."""
    n = images.shape[0]
    # Drawn on the CPU: the same numbers on every device. A fifth column only when flipping,
    # so that runs without flips keep their random stream.
    rand = (torch.rand(n, 5 if flip else 4, generator=generator) * 2 - 1).to(images.device)
    angle = rand[:, 0] * math.radians(15) * strength
    scale = 1 + rand[:, 1] * 0.15 * strength
    shift = rand[:, 2:4] * (3 / 14) * strength  # affine_grid works in [-1, 1]: 14 px per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    mirror = torch.where(rand[:, 4] < 0, -1.0, 1.0) if flip else torch.ones_like(cos)  # x -> -x
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = affine_grid(theta, *images.shape[-2:])
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """F.affine_grid(theta, (N, 1, height, width), align_corners=False), built as (x part) + (y part):
    a grid is separable, and affine_grid's batched matmul took 1.2 ms of a 10 ms LeNet step for
    256 images on the CPU; this takes 0.4 ms."""
    x = ((torch.arange(width, device=theta.device) * 2 + 1) / width - 1).view(1, 1, width, 1)
    y = ((torch.arange(height, device=theta.device) * 2 + 1) / height - 1).view(1, height, 1, 1)
    t = theta.transpose(1, 2)[:, :, None, None, :]  # (N, 3, 1, 1, 2): the weights of x, y and 1
    return (t[:, 0] * x + t[:, 2]) + t[:, 1] * y     # (N, 1, W, 2) + (N, H, 1, 2) -> (N, H, W, 2)


@dataclass
class RunStarted:
    run_id: str
    path: str
    epochs: int
    steps_per_epoch: int
    parameters: int
    device: str


@dataclass
class Phase:
    name: str  # "loading data", "training", "testing"


@dataclass
class Step:
    epoch: int
    step: int                # global step, from 1
    total_steps: int
    loss: float
    lr: float
    images_per_second: float  # over the epoch so far
    elapsed: float            # seconds since training began


@dataclass
class Epoch:
    record: runs.EpochRecord  # the row the run's history just gained
    epochs: int
    best: bool


class Stopped(Exception):
    pass


class Diverged(Exception):
    pass


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter. Measured on the CPU, AdamW's update takes 0.13 ms a
    # step instead of 0.4 for lenet, 0.6 ms instead of 2-3.5 for resnet: 3-7% of a training step.
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay,
                               fused=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def _schedule(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    return None


def estimate_seconds(config: TrainConfig, train_size: int, num_classes: int = 10, probe_steps: int = 5) -> float:
    """How long `config` would train on this machine, from timing a few steps on random images."""
    device = pick_device(config.device)
    model = models.build(config.arch, num_classes=num_classes, dropout=config.dropout, width=config.width)
    memory_format = torch.channels_last if models.is_convolutional(model) else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = _optimizer(config, model)
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG of a running job alone
    x = torch.rand(config.batch_size, 1, 28, 28, generator=generator).to(device, memory_format=memory_format)
    y = torch.randint(0, num_classes, (config.batch_size,), generator=generator).to(device)
    for i in range(probe_steps + 1):
        if i == 1:  # the first step pays one-off kernel set-up
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    per_step = (time.perf_counter() - start) / probe_steps
    train_steps = int(train_size * (1 - config.val_fraction)) // config.batch_size * config.epochs
    return per_step * train_steps * 1.1  # plus about a tenth for validation and testing


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}


def train(config: TrainConfig, on_event: Callable[[object], None] | None = None,
          stop: threading.Event | None = None, runs_dir=None) -> runs.Run:
    """Train `config`, saving it under runs_dir as it goes; returns the finished (or
    stopped, or failed) run. Raises DatasetUnavailable or ValueError before any run
    folder is made when the data or the configuration cannot be used."""
    config.validate()
    emit = on_event or (lambda event: None)
    stop = stop or threading.Event()
    device = pick_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())

    downloading = needs_download(config.dataset, config.data_root)
    emit(Phase(f"downloading {dataset_info(config.dataset).display_name}" if downloading else "loading data"))
    splits = make_splits(load_dataset(config.dataset, config.data_root), config.val_fraction, config.seed)
    info = splits.info
    torch.manual_seed(config.seed)
    model = models.build(config.arch, num_classes=info.num_classes, dropout=config.dropout, width=config.width)
    # channels_last lets oneDNN/cuDNN skip layout conversions: measured 1.3x on LeNet on the CPU.
    memory_format = torch.channels_last if models.is_convolutional(model) else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)

    train_images, train_labels = splits.train_images.to(device), splits.train_labels.to(device)
    n = len(train_labels)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size  # the incomplete last batch is dropped; reshuffling covers it next epoch
    total_steps = steps_per_epoch * config.epochs
    optimizer = _optimizer(config, model)
    scheduler = _schedule(config, optimizer, total_steps)
    # Mixed precision on CUDA only: bfloat16 where supported (no loss scaling needed), else float16.
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(config.seed)
    norm = splits.normalization

    run = runs.create_run(runs.RunRecord(
        name=config.name,
        config=config,
        dataset=runs.DatasetRecord(
            info.name, info.display_name, list(info.class_names), train_size=n, val_size=len(splits.val_labels),
            test_size=len(splits.test_labels),
            validation_split=f"stratified {config.val_fraction:g} of the training set, seed {config.seed}"),
        normalization=norm,
        model=runs.ModelRecord(config.arch, models.count_parameters(model), models.MODELS[config.arch].description),
        device=describe_device(device),
        versions=versions(),
        attribution=info.attribution,
    ), runs_dir)
    record = run.record
    emit(RunStarted(run.id, str(run.path), config.epochs, steps_per_epoch, record.model.parameters, record.device))

    best_state, best_key = None, None
    step = 0
    started = time.perf_counter()
    emit(Phase("training"))
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(steps_per_epoch):
                if stop.is_set():
                    raise Stopped(f"stopped at epoch {epoch}, step {step}")
                idx = order[i * batch_size:(i + 1) * batch_size]
                x = train_images[idx].unsqueeze(1).float().div_(255)
                if config.augment > 0 or config.flip:
                    x = augment_batch(x, config.augment, generator, config.flip)
                x = norm.apply(x).contiguous(memory_format=memory_format)
                y = train_labels[idx]
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None and config.schedule != "plateau":
                    scheduler.step()
                step += 1
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise Diverged(f"diverged at step {step}: the loss became {loss_value}. "
                                   f"Learning rate {config.lr:g} is too high for {config.arch}; try {config.lr / 10:g}.")
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                emit(Step(epoch, step, total_steps, loss_value, optimizer.param_groups[0]["lr"],
                          (i + 1) * batch_size / (time.perf_counter() - epoch_start), time.perf_counter() - started))

            seen = steps_per_epoch * batch_size
            val_loss = val_acc = None
            if len(splits.val_labels):
                val_loss, val_acc = loss_and_accuracy(model, splits.val_images, splits.val_labels, norm)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss if val_loss is not None else loss_sum.item() / seen)
            key = (val_acc, -val_loss) if val_acc is not None else (epoch, 0)  # no validation: keep the last
            is_best = best_key is None or key > best_key
            seconds = time.perf_counter() - epoch_start
            record.history.append(runs.EpochRecord(
                epoch=epoch, train_loss=loss_sum.item() / seen, train_accuracy=correct.item() / seen,
                val_loss=val_loss, val_accuracy=val_acc, seconds=seconds,
                elapsed=time.perf_counter() - started, lr=optimizer.param_groups[0]["lr"]))
            if is_best:
                best_key, best_state = key, copy.deepcopy(model.state_dict())
                record.best_epoch, record.best_val_accuracy = epoch, val_acc
                run.save_model(model)
            run.save()
            emit(Epoch(record.history[-1], config.epochs, best=is_best))
        record.status = "finished"
    except Stopped as reason:
        record.status, record.reason = "stopped", str(reason)
    except KeyboardInterrupt:  # Ctrl+C on the command line: a stop, not a failure
        record.status, record.reason = "stopped", f"interrupted at step {step}"
    except Diverged as reason:
        record.status, record.reason = "failed", str(reason)
    except BaseException as error:
        record.status, record.reason = "failed", f"{type(error).__name__}: {error}"
        run.save()
        raise

    train_seconds = time.perf_counter() - started
    images_seen = step * batch_size
    record.timings = runs.Timings(train_seconds=round(train_seconds, 2),
                                  images_per_second=round(images_seen / train_seconds, 1) if train_seconds else None)
    if best_state is None and record.status == "stopped" and step > 0:
        run.save_model(model)  # stopped inside the first epoch: keep what there is
    if record.status == "finished":
        emit(Phase("testing"))
        model.load_state_dict(best_state)
        test_start = time.perf_counter()
        test_loss, test_acc = loss_and_accuracy(model, splits.test_images, splits.test_labels, norm)
        record.test = runs.TestResult(loss=test_loss, accuracy=test_acc)
        record.timings.test_seconds = round(time.perf_counter() - test_start, 2)
    record.finished = runs.now_iso()
    run.save()
    return run
