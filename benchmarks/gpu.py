"""GPU figures: python -m benchmarks.gpu [--data-root DIR] (prints figures when a CUDA GPU is present).

- ceiling: resnet's (and lenet's) training step on one fixed batch, eager and as a replayed
           CUDA graph: what the trainer could reach with no data path at all;
- trainer: the trainer's steady-state images/s (its last epoch) at the same batch sizes;
- quick:   the GPU quick-demo recipe on MNIST, trained twice in this process: the first run
           pays cuDNN's kernel choice and the graph capture, the second is what a later job sees;
- best:    the 10-minute CPU recipes for MNIST and KMNIST, on the GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F

from kmnist_core import models, training
from kmnist_core.config import TrainConfig

from .recipes import BEST

CEILING_CASES = [("resnet", 128), ("resnet", 512), ("lenet", 256)]


def fixed_batch_throughput(arch: str, batch: int, graph: bool, steps: int = 300) -> float:
    """Images/s of `arch`'s training step (bfloat16 autocast, fused AdamW) on one fixed batch."""
    model = models.build(arch).cuda().to(memory_format=torch.channels_last)
    optimizer = training._optimizer(TrainConfig(arch=arch, batch_size=batch), model, capturable=graph)
    x = torch.randn(batch, 1, 28, 28, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    torch.backends.cudnn.benchmark = True
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(5):
            step()
    torch.cuda.current_stream().wait_stream(side)
    if graph:
        recorded = torch.cuda.CUDAGraph()
        with torch.cuda.graph(recorded):
            step()
        step = recorded.replay
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def train(runs_dir: str, **options):
    """A run on the GPU and its last epoch's steady-state images/s."""
    steps = []
    run = training.train(TrainConfig(**{"device": "cuda", **options}),
                         on_event=lambda e: isinstance(e, training.Step) and steps.append(e), runs_dir=runs_dir)
    last_epoch = [s for s in steps if s.epoch == run.config.epochs]
    return run, (last_epoch[-1].images_per_second if last_epoch else float("nan"))


def describe(run) -> str:
    test = run.test_accuracy
    return (f"{run.record.timings.train_seconds:.2f} s of training to test "
            + (f"{test:.2%}" if test is not None else run.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="default: $KMNIST_DATA_ROOT, else ./data")
    parser.add_argument("--sections", default="ceiling,trainer,quick,best")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing to measure.")
        return 0
    sections = args.sections.split(",")
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    ceilings = {}
    with tempfile.TemporaryDirectory() as runs_dir:
        data = dict(data_root=args.data_root)
        if "ceiling" in sections or "trainer" in sections:
            for arch, batch in CEILING_CASES:
                eager = fixed_batch_throughput(arch, batch, graph=False)
                ceilings[arch, batch] = fixed_batch_throughput(arch, batch, graph=True)
                print(f"{arch}, batch {batch}, one fixed batch: {eager:,.0f} images/s eager, "
                      f"{ceilings[arch, batch]:,.0f} as a CUDA graph", flush=True)
        if "trainer" in sections:
            train(runs_dir, dataset="mnist", arch="lenet", epochs=1, **data)  # loads the data once
            for arch, batch in CEILING_CASES:
                _, speed = train(runs_dir, dataset="mnist", arch=arch, batch_size=batch, epochs=2, **data)
                print(f"{arch}, batch {batch}, trainer: {speed:,.0f} images/s = {speed / ceilings[arch, batch]:.0%} "
                      "of the CUDA-graph ceiling   [target for resnet at 128: >= 80%]", flush=True)
        if "quick" in sections:
            recipe = TrainConfig.quick_demo("cuda")
            for attempt in ("first run in this process", "second run"):
                run, _ = train(runs_dir, **{**recipe.to_dict(), **data, "device": "cuda"})
                print(f"quick demo on MNIST (resnet, batch {recipe.batch_size}, lr {recipe.lr:g}, "
                      f"{recipe.epochs} epochs), {attempt}: {describe(run)}   [target: <= 1.5 s to >= 99.0%]", flush=True)
        if "best" in sections:
            for dataset in ("mnist", "kmnist"):
                run, _ = train(runs_dir, **BEST[dataset], **data)
                print(f"10-minute CPU recipe for {dataset}, on the GPU: {describe(run)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
