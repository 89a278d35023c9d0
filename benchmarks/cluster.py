"""Benchmark: a sweep of 4 tiny runs through the in-process queue and through a local Ray
instance of 2 workers with 1 thread each (python -m benchmarks.cluster; needs
requirements-cluster.txt). Prints figures; nothing asserts them.

Each way runs in a process of its own, which stands for the app's server: its wall time from
submission to the last run tested, its peak memory (the Ray workers' is not in it: on a
cluster they are other machines), and each run's result. The runs are lenet, 1 epoch, seeds
0-3, on the first TRAIN_IMAGES of Kuzushiji-MNIST. CPU runs are deterministic for a given
number of torch threads (not across numbers: a sum split over more threads rounds
differently), so the cluster's runs are compared with in-process runs of 1 thread, as a
cluster worker has, and with the app's default, all the cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

TRAIN_IMAGES, TEST_IMAGES = 10_000, 2_000
WAYS = ("in-process", "in-process, 1 thread", "ray")


def kmnist_subset(data_root: Path, folder: Path) -> Path:
    """The first images of Kuzushiji-MNIST as a folder of idx files (a dataset of one's own)."""
    from kmnist_core import data
    raw = data_root / "KMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in zip(data.IDX_FILES, (TRAIN_IMAGES, TRAIN_IMAGES, TEST_IMAGES, TEST_IMAGES)):
        content = (raw / name).read_bytes()
        ndim = content[3]
        dims = [int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        header = content[:4] + count.to_bytes(4, "big") + content[8:4 + 4 * ndim]
        (folder / name).write_bytes(header + content[4 + 4 * ndim:4 + 4 * ndim + count * math.prod(dims[1:])])
    return folder


def sweep(way: str, dataset: str, runs_dir: str) -> dict:
    """One way's figures (run in a process of its own)."""
    from kmnist_core import runs, training
    from kmnist_core.config import TrainConfig
    from kmnist_core.jobs import JobManager
    figures = {}
    if way == "ray":
        import ray

        from kmnist_core import cluster
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        figures["ray_start_seconds"] = time.perf_counter() - start
        executor = cluster.RayExecutor(cpus_per_job=1)
        manager = JobManager(runs_dir, executor=executor, queue_of=executor.queue_of)
    else:
        if way == "in-process, 1 thread":
            os.environ[training.THREADS_VARIABLE] = "1"
        manager = JobManager(runs_dir)
    configs = [TrainConfig(dataset=dataset, arch="lenet", epochs=1, seed=seed, group="bench", device="cpu")
               for seed in range(4)]
    start = time.perf_counter()
    jobs = manager.submit_many(configs)
    for job in jobs:
        manager.wait(job)
    figures["sweep_seconds"] = time.perf_counter() - start
    figures["runs"] = {}
    for job in jobs:
        run = runs.load_run(job.run_id, runs_dir)
        figures["runs"][job.config.seed] = dict(
            status=job.status, accuracy=run.test.accuracy, loss=run.test.loss,
            weights=weights_digest(run.path / runs.WEIGHTS))
    if way == "ray":
        figures["stop_seconds"] = stop_latency(manager, configs[0])
    figures["peak_rss_mib"] = _status_kib("VmHWM") / 1024
    figures["rss_mib"] = _status_kib("VmRSS") / 1024
    return figures


def weights_digest(path: Path) -> str:
    """The tensors' digest (the file's own metadata names its run, which differs)."""
    from safetensors.torch import load_file
    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(path).items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()[:12]


def stop_latency(manager, config) -> float:
    """Seconds from Stop to the job ended, its stopped run written back, for a job training."""
    import dataclasses
    job = manager.submit(dataclasses.replace(config, epochs=100))
    while job.snapshot().step < 20:
        time.sleep(0.05)
    start = time.perf_counter()
    manager.stop(job.id)
    manager.wait(job)
    return time.perf_counter() - start


def _status_kib(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def main() -> None:
    from kmnist_core.data import default_data_root
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(default_data_root()))
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the child process of one way
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        with tempfile.TemporaryDirectory() as runs_dir:
            print(json.dumps(sweep(args.way, args.dataset, runs_dir)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        dataset = kmnist_subset(Path(args.data_root), Path(scratch) / "kmnist-subset")
        results = {}
        for way in WAYS:
            done = subprocess.run([sys.executable, "-m", "benchmarks.cluster", "--way", way, "--dataset",
                                   str(dataset)], check=True, capture_output=True, text=True)
            results[way] = json.loads(done.stdout.strip().splitlines()[-1])
    report(results)


def report(results: dict) -> None:
    print(f"Sweep of 4 lenet runs, 1 epoch, {TRAIN_IMAGES:,} Kuzushiji-MNIST images, seeds 0-3 - "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for way, figures in results.items():
        extra = (f" (Ray started in {figures['ray_start_seconds']:.1f} s; Stop to stopped run written back "
                 f"{figures['stop_seconds']:.2f} s)" if way == "ray" else "")
        print(f"  {way:22} {figures['sweep_seconds']:6.1f} s   app process peak {figures['peak_rss_mib']:5.0f} MiB, "
              f"now {figures['rss_mib']:5.0f} MiB{extra}")
    for seed in results["ray"]["runs"]:
        row = {way: figures["runs"][seed] for way, figures in results.items()}
        print(f"  seed {seed}: " + "; ".join(f"{way} {r['accuracy']:.4f} / loss {r['loss']:.6f} / {r['weights']}"
                                          for way, r in row.items()))
    same = all(results["ray"]["runs"][s] == results["in-process, 1 thread"]["runs"][s] for s in results["ray"]["runs"])
    print(f"  Ray runs identical to in-process runs of 1 thread (accuracy, loss, weights): {same}")


if __name__ == "__main__":
    main()
