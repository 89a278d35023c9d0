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
import errno
import logging
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
from torch.optim.swa_utils import get_ema_multi_avg_fn

from . import augment, framing, models, novelty, runs, strokes
from .config import TrainConfig
from .data import dataset_info, load_dataset, make_splits, needs_download
from .evaluation import loss_and_accuracy

log = logging.getLogger(__name__)


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


THREADS_VARIABLE = "KMNIST_CPU_THREADS"  # fewer threads than cores, where a scheduler gave fewer (cluster.py)


def cpu_threads() -> int:
    if os.environ.get(THREADS_VARIABLE, "").isdigit() and int(os.environ[THREADS_VARIABLE]) > 0:
        return int(os.environ[THREADS_VARIABLE])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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


def _optimizer(config: TrainConfig, model: torch.nn.Module, capturable: bool = False) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter. Measured on the CPU, AdamW's update takes 0.13 ms a
    # step instead of 0.4 for lenet, 0.6 ms instead of 2-3.5 for resnet: 3-7% of a training step.
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay,
                               fused=True)
    # capturable: the step count and the learning rate live on the device, so a CUDA graph can
    # replay the update (the schedulers write a tensor learning rate in place).
    lr = torch.tensor(config.lr, device=next(model.parameters()).device) if capturable else config.lr
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return adam(params, lr=lr, weight_decay=config.weight_decay, fused=True, capturable=capturable)


def _schedule(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    return None


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}


class WeightAverage:
    """An exponential moving average of the weights and BatchNorm statistics, validated and tested
    in place of the live weights: it averages away the noise of the last steps. The decay warms up
    as (1 + t) / (10 + t), so that a short run is not dominated by its first, untrained weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
        self.floats = [pair for pair in pairs if pair[0].is_floating_point()]
        self.counters = [pair for pair in pairs if not pair[0].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        get_ema_multi_avg_fn(decay)([a for a, _ in self.floats], [b for _, b in self.floats], None)
        for average, live in self.counters:
            average.copy_(live)


class TrainingStep:
    """One optimisation step on the batch at `idx`, adding its loss and hits to running totals on
    the device: nothing here waits for the device, so a GPU can run ahead of Python."""

    def __init__(self, config: TrainConfig, model, optimizer, images, labels, norm, generator, memory_format,
                 amp_dtype, scaler, skeletons=None, frame=framing.MNIST_FRAMING):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.images, self.labels, self.norm, self.generator = images, labels, norm, generator
        self.memory_format, self.amp_dtype, self.scaler = memory_format, amp_dtype, scaler
        self.skeletons = skeletons  # the training images thinned once, for the stroke augmentation
        self.frame = frame          # the dataset's framing: how wide the Draw page's pens come out
        self.loss_sum = torch.zeros((), device=images.device)
        self.correct = torch.zeros((), device=images.device, dtype=torch.long)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        config = self.config
        x = self.images[idx].unsqueeze(1).float().div_(255)
        y = self.labels[idx]
        if config.strokes > 0:  # before the warp: the skeletons are the unwarped images'
            x = strokes.stroke_augment(x, config.strokes, self.generator, self.skeletons[idx], self.frame)
        if config.augment > 0 or config.flip:
            x = augment.affine(x, config.augment, self.generator, config.flip)
        x = self.norm.apply(x).contiguous(memory_format=self.memory_format)
        with torch.autocast(x.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        loss = loss.detach()
        self.loss_sum += loss * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        return loss


class GraphedStep:
    """A TrainingStep recorded once as a CUDA graph and replayed: one launch per step instead of
    a few hundred, which is what bounds a small network's step on a large GPU."""
    WARMUP_STEPS = 3

    def __init__(self, step: TrainingStep, warmup_batches: list[torch.Tensor]):
        # The warm-up steps are real steps, run on a side stream as graph capture requires.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.warmup_losses = [step(idx) for idx in warmup_batches]
        torch.cuda.current_stream().wait_stream(side)
        self.idx = warmup_batches[0].clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = step(self.idx)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        self.idx.copy_(idx)
        self.graph.replay()
        return self.loss.clone()


def _use_cuda_graph(config: TrainConfig, device: torch.device, amp_dtype) -> bool:
    # Adam's fused, capturable kernels keep the step count and learning rate on the device; float16
    # loss scaling checks for infinities on the host and cannot be recorded.
    return device.type == "cuda" and config.optimizer in ("adam", "adamw") and amp_dtype != torch.float16


def sync_interval(device: torch.device) -> int:
    """Steps between two reads of the loss on the host. Reading it waits for the device: free on
    the CPU, but on a GPU it would stall the queue of work at every step."""
    return 1 if device.type == "cpu" else 32


def train(config: TrainConfig, on_event: Callable[[object], None] | None = None,
          stop: threading.Event | None = None, runs_dir=None) -> runs.Run:
    """Train `config`, saving it under runs_dir as it goes; returns the finished (or
    stopped, or failed) run. Raises DatasetUnavailable or ValueError before any run
    folder is made when the data or the configuration cannot be used, and Stopped when
    a stop comes before training begins (no run folder is made then either)."""
    config.validate()
    emit = on_event or (lambda event: None)
    stop = stop or threading.Event()
    device = pick_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())

    downloading = needs_download(config.dataset, config.data_root)
    emit(Phase(f"downloading {dataset_info(config.dataset).display_name}" if downloading else "loading data"))
    splits = make_splits(load_dataset(config.dataset, config.data_root, stop=stop), config.val_fraction, config.seed)
    if stop.is_set():
        raise Stopped("stopped before training began")
    info = splits.info
    norm = splits.normalization
    if not norm.std > 1e-6:
        raise ValueError(f"Every training image of {info.display_name} is the same shade (pixel std {norm.std:g}): "
                         "there is nothing to learn. Check the dataset's image files.")
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
    # Mixed precision on CUDA only: bfloat16 where supported (no loss scaling needed), else float16.
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    graphed = _use_cuda_graph(config, device, amp_dtype)
    # cudnn.benchmark stays off: trying every kernel cost a new process 2 s on an H200, longer than
    # the whole quick demo trains there (0.45 s), and gained nothing measurable for these small nets.
    optimizer = _optimizer(config, model, capturable=graphed)
    scheduler = _schedule(config, optimizer, total_steps)
    # On the CPU the run's own seeded generator (exact reproduction); on a GPU the device's own
    # generator, seeded by manual_seed above (see augment.uniform).
    generator = torch.Generator().manual_seed(config.seed) if device.type == "cpu" else None
    ema = WeightAverage(model, config.ema) if config.ema > 0 else None
    evaluated = ema.model if ema else model
    chance_loss = math.log(info.num_classes)

    run = runs.create_run(runs.RunRecord(
        name=config.name,
        owner=config.owner,
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
        # How the dataset's images fill their frame, so the Draw page frames a drawing the same way:
        # the named datasets' conventions were learnt from their real training images (MNIST: 20 px
        # and centre of mass; KMNIST fills the frame), a folder's are learnt from a sample of it now.
        framing=framing.framing_for_dataset(info.name, splits.train_images).to_dict(),
    ), runs_dir)
    record = run.record
    emit(RunStarted(run.id, str(run.path), config.epochs, steps_per_epoch, record.model.parameters, record.device))

    # Thinning the whole training set once costs about a second per 60,000 images on the CPU;
    # thinning every batch would cost 10 ms a step.
    skeletons = strokes.thin_all(train_images) if config.strokes > 0 else None
    take_step = TrainingStep(config, model, optimizer, train_images, train_labels, norm, generator, memory_format,
                             amp_dtype, scaler, skeletons, framing.Framing.from_dict(record.framing))
    replay = None
    sync_every = sync_interval(device)
    best_state, best_key = None, None
    step = 0
    started = time.perf_counter()
    emit(Phase("training"))
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            order = (torch.randperm(n, generator=generator) if generator is not None
                     else torch.randperm(n, device=device)).to(device)
            take_step.loss_sum.zero_()
            take_step.correct.zero_()
            pending: list[torch.Tensor] = []
            i = 0  # batches of this epoch done
            while i < steps_per_epoch:
                if stop.is_set():
                    raise Stopped(f"stopped at epoch {epoch}, step {step}")
                if graphed and replay is None and i + GraphedStep.WARMUP_STEPS <= steps_per_epoch:
                    replay = GraphedStep(take_step, [order[(i + k) * batch_size:(i + k + 1) * batch_size]
                                                     for k in range(GraphedStep.WARMUP_STEPS)])
                    losses = replay.warmup_losses
                else:
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    losses = [replay(idx) if replay is not None else take_step(idx)]
                for loss in losses:
                    _advance(scheduler, config)
                    if ema is not None:
                        ema.update()
                    pending.append(loss)
                    step, i = step + 1, i + 1
                if len(pending) >= sync_every or i == steps_per_epoch:
                    values = torch.stack(pending).float().tolist()  # the one wait for the device
                    pending = []
                    for value in values:
                        _check_loss(value, step, chance_loss, config)
                    emit(Step(epoch, step, total_steps, sum(values) / len(values), _current_lr(optimizer),
                              i * batch_size / (time.perf_counter() - epoch_start), time.perf_counter() - started))

            seen = steps_per_epoch * batch_size
            train_loss, train_acc = take_step.loss_sum.item() / seen, take_step.correct.item() / seen
            val_loss = val_acc = None
            if len(splits.val_labels):
                val_loss, val_acc = loss_and_accuracy(evaluated, splits.val_images, splits.val_labels, norm)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss if val_loss is not None else train_loss)
            _check_learning(epoch, train_loss, val_acc if val_acc is not None else train_acc, info.num_classes, config)
            key = (val_acc, -val_loss) if val_acc is not None else (epoch, 0)  # no validation: keep the last
            is_best = best_key is None or key > best_key
            seconds = time.perf_counter() - epoch_start
            if is_best:
                best_key, best_state = key, copy.deepcopy(evaluated.state_dict())
                run.save_model(evaluated)  # first: the record never names weights that are not on disk
                record.best_epoch, record.best_val_accuracy = epoch, val_acc
            record.history.append(runs.EpochRecord(
                epoch=epoch, train_loss=train_loss, train_accuracy=train_acc, val_loss=val_loss,
                val_accuracy=val_acc, seconds=seconds, elapsed=time.perf_counter() - started,
                lr=_current_lr(optimizer)))
            run.save()
            emit(Epoch(record.history[-1], config.epochs, best=is_best))
        record.status = "finished"
    except Stopped as reason:
        record.status, record.reason = "stopped", str(reason)
    except KeyboardInterrupt:  # Ctrl+C on the command line: a stop, not a failure
        record.status, record.reason = "stopped", f"interrupted at step {step}"
    except Diverged as reason:
        record.status, record.reason = "failed", str(reason)
    except OSError as error:  # a save failed: the disk is full, or the run was deleted
        record.status, record.reason = _save_failure(error)
    except BaseException as error:
        record.status, record.reason = "failed", f"{type(error).__name__}: {error}"
        _try_save(run)
        raise

    train_seconds = time.perf_counter() - started
    images_seen = step * batch_size
    record.timings = runs.Timings(train_seconds=round(train_seconds, 2),
                                  images_per_second=round(images_seen / train_seconds, 1) if train_seconds else None)
    try:
        if best_state is None and record.status == "stopped" and step > 0:
            run.save_model(evaluated)  # stopped inside the first epoch: keep what there is
        if record.status == "finished":
            emit(Phase("testing"))
            evaluated.load_state_dict(best_state)
            test_start = time.perf_counter()
            test_loss, test_acc = loss_and_accuracy(evaluated, splits.test_images, splits.test_labels, norm)
            record.test = runs.TestResult(loss=test_loss, accuracy=test_acc)
            record.timings.test_seconds = round(time.perf_counter() - test_start, 2)
            # The Draw page's "not one of my classes?" check, fitted now (1-3 s on the CPU) so that
            # a new model is ready to draw on.
            emit(Phase("fitting the 'not one of my classes' check"))
            try:
                novelty.save_for_run(novelty.fit_for_splits(evaluated, splits, config.seed), run.path)
            except ValueError as error:   # a dataset of a few dozen images: the model stands without the check
                log.warning("no 'not one of my classes' check for run %s: %s", run.id, error)
    except OSError as error:
        record.status, record.reason = _save_failure(error)
    record.finished = runs.now_iso()
    _try_save(run)
    return run


def _advance(scheduler, config: TrainConfig) -> None:
    if scheduler is not None and config.schedule != "plateau":
        scheduler.step()


def _current_lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _check_loss(value: float, step: int, chance_loss: float, config: TrainConfig) -> None:
    """A loss that is not a number, or far above a uniform guess's, will not come back."""
    if not math.isfinite(value) or value > 20 * chance_loss:
        what = f"became {value}" if not math.isfinite(value) else \
            f"rose to {value:,.0f}, against {chance_loss:.2f} for a blind guess"
        raise Diverged(f"diverged at step {step}: the loss {what}. Learning rate {config.lr:g} is too high for "
                       f"{config.arch}; try {config.lr / 10:g}.")


def _check_learning(epoch: int, train_loss: float, accuracy: float, num_classes: int, config: TrainConfig) -> None:
    """After two epochs a network that is still at chance has stopped learning (its units died or
    its weights blew up and saturated); more epochs will not help."""
    if epoch >= 2 and accuracy < 1.5 / num_classes and train_loss > 0.9 * math.log(num_classes):
        raise Diverged(f"learned nothing: after {epoch} epochs it still guesses ({accuracy:.0%} right, chance is "
                       f"{1 / num_classes:.0%}). Learning rate {config.lr:g} is probably too high for {config.arch}; "
                       f"try {config.lr / 10:g}.")


def _save_failure(error: OSError) -> tuple[str, str]:
    """The status and reason of a run whose save failed ("deleted": its folder was removed meanwhile)."""
    if isinstance(error, runs.RunDeleted):
        return "deleted", str(error)
    if getattr(error, "errno", None) == errno.ENOSPC:
        return "failed", "no space left on the disk to save the model: free some space and train again"
    return "failed", f"could not save the model ({error.strerror or error})"


def _try_save(run: runs.Run) -> None:
    try:
        run.save()
    except OSError:  # the disk is full: the record on disk stays the last one that was written
        pass
