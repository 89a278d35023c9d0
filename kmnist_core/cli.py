"""Command line: python -m kmnist_core {train,evaluate,predict,list,sweep} ...

Every failure the user can cause (a bad argument, missing data, a broken run)
ends in one line on stderr and exit status 2, never a traceback; Ctrl+C ends in
"interrupted" and status 130 (a run it stops keeps its best checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from . import data, models, runs, sweeps, training
from .config import TrainConfig, field_types


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One --option per TrainConfig field, with its default, type, bounds and help."""
    kinds = field_types()
    for f in dataclasses.fields(TrainConfig):
        kind, meta = kinds[f.name], f.metadata
        option, text = f"--{f.name.replace('_', '-')}", meta["help"].replace("%", "%%")  # argparse %-formats help
        if kind is bool:  # --flip / --no-flip
            parser.add_argument(option, dest=f.name, default=f.default, action=argparse.BooleanOptionalAction,
                                help=text)
            continue
        bounds = f", {meta['min']} to {meta['max']}" if meta["min"] is not None else ""
        parser.add_argument(option, dest=f.name, type=kind, default=f.default, choices=meta["choices"],
                            help=f"{text} (default: {f.default}{bounds})")


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}).validate()


class ProgressBar:
    """tqdm over the steps of one run, with loss, images/s and validation accuracy."""

    def __init__(self, position: int = 0, leave: bool = True):
        self.bar = None
        self.position, self.leave = position, leave
        self.postfix: dict[str, str] = {}

    def __call__(self, event) -> None:
        if isinstance(event, training.RunStarted):
            self.bar = tqdm(total=event.epochs * event.steps_per_epoch, desc=event.run_id, unit="step",
                            position=self.position, leave=self.leave, dynamic_ncols=True)
        elif isinstance(event, training.Step) and self.bar is not None:
            self.bar.update(1)
            if event.step % 20 == 0:
                self.postfix.update(epoch=str(event.epoch), loss=f"{event.loss:.3f}", img_s=f"{event.images_per_second:.0f}")
                self.bar.set_postfix(self.postfix, refresh=False)
        elif isinstance(event, training.Epoch) and event.record.val_accuracy is not None:
            self.postfix["val_acc"] = f"{event.record.val_accuracy:.2%}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_line(run: runs.Run) -> str:
    r = run.record
    dataset = r.dataset.display_name + ("" if data.is_available(r.dataset.name) else " (dataset no longer available)")
    parts = [f"{run.id}: {run.status}", f"{dataset} / {r.config.arch}", f"{len(r.history)} epochs"]
    if r.best_val_accuracy is not None:
        parts.append(f"best val {r.best_val_accuracy:.2%} (epoch {r.best_epoch})")
    if r.test is not None:
        parts.append(f"test {r.test.accuracy:.2%} (loss {r.test.loss:.4f})")
    if r.timings is not None and r.timings.train_seconds is not None:
        speed = r.timings.images_per_second
        parts.append(f"{r.timings.train_seconds:.1f} s" + (f", {speed:.0f} img/s" if speed is not None else ""))
    if r.reason:
        parts.append(r.reason)
    return " | ".join(parts)


INTERRUPTED = 130  # the shell's status for a process ended by Ctrl+C (128 + SIGINT)


def interrupted() -> int:
    print("interrupted", file=sys.stderr)
    return INTERRUPTED


def cmd_train(args) -> int:
    config = _config(args)
    bar = ProgressBar()
    try:
        run = training.train(config, on_event=bar, runs_dir=args.runs_dir)
    finally:
        bar.close()
    print(summary_line(run))
    if run.status == "stopped":  # on the command line only Ctrl+C stops a run
        return interrupted()
    return 0 if run.status == "finished" else 1


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate
    run = runs.load_run(args.run, args.runs_dir)
    model = runs.load_model(run)
    name = run.record.dataset.name
    if not data.is_available(name):
        recorded = run.test_accuracy
        raise data.DatasetUnavailable(
            f"Run '{run.id}' was trained on '{name}', a dataset no longer available here, so it cannot be "
            f"evaluated again" + (f" (its recorded test accuracy: {recorded:.2%})." if recorded is not None else "."))
    if args.data_root is not None and not Path(args.data_root).is_dir():  # never made (nor downloaded into)
        raise data.DatasetUnavailable(f"The data folder {args.data_root} does not exist.")
    dataset = data.load_dataset(name, args.data_root or run.config.data_root)
    report = evaluate(model, dataset.test_images, dataset.test_labels, run.normalization, run.class_names)
    print(f"{run.id}: test accuracy {report.accuracy:.2%}, loss {report.loss:.4f} on {len(report.labels)} images")
    print(f"{'class':>14} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>6}")
    for i, name in enumerate(report.class_names):
        print(f"{name:>14} {report.precision[i]:9.3f} {report.recall[i]:7.3f} {report.f1[i]:6.3f} {report.support[i]:6d}")
    print("most confused pairs:")
    for pair in report.confused_pairs(5):
        print(f"  {report.class_names[pair.a]} <-> {report.class_names[pair.b]}, {pair.describe(report.class_names)}")
    return 0


def cmd_predict(args) -> int:
    from .drawing import ImageProblem, read_image_file, prepare_drawing, predict_drawing
    from .framing import framing_of_record
    run = runs.load_run(args.run, args.runs_dir)
    model = runs.load_model(run)
    frame = framing_of_record(run.record.framing, run.record.dataset.name)  # framed as its dataset
    unread = 0
    for path in args.images:
        try:
            image = read_image_file(path)
        except (ImageProblem, OSError) as error:  # said, and the other images are still classified
            print(f"error: {printable(str(error) if isinstance(error, ImageProblem) else f'{path}: {error}')}",
                  file=sys.stderr)
            unread += 1
            continue
        prepared = prepare_drawing(image, frame)
        if prepared is None:
            print(f"{path}: no character found (the image is blank)")
            continue
        probabilities = predict_drawing(model, run.normalization, prepared)
        top = probabilities.argsort(descending=True)[:3]
        print(f"{path}: " + ", ".join(f"{run.class_names[i]} {probabilities[i]:.1%}" for i in top.tolist()))
    return 2 if unread else 0


def printable(text: str) -> str:
    """The text on one line: a newline or control character in a folder's name is shown escaped,
    so it cannot forge a line of the listing."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def cmd_list(args) -> int:
    runs_dir = args.runs_dir or runs.default_runs_dir()
    problem = runs.runs_dir_problem(runs_dir)
    if problem:
        raise runs.CheckpointError(problem)
    found, problems = runs.scan_runs(args.runs_dir)
    for problem in problems:
        print(f"skipped: {printable(problem)}", file=sys.stderr)
    if not found:
        print(f"no runs in {printable(str(runs_dir))}")
    for run in found:
        print(("[shipped] " if run.shipped else "") + printable(summary_line(run)))
    print(f"\narchitectures: {', '.join(models.list_models())}\ndatasets: {', '.join(data.list_datasets())}")
    return 0


def cmd_sweep(args) -> int:
    base = _config(args)
    configs = sweeps.expand(base, args.param, sweeps.parse_values(base, args.param, args.values), args.repeats)
    finished = []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {args.param}={getattr(config, args.param)} seed={config.seed}", flush=True)
        bar = ProgressBar(leave=False)
        try:
            finished.append(training.train(config, on_event=bar, runs_dir=args.runs_dir))
        finally:
            bar.close()
        print("  " + summary_line(finished[-1]))
        if finished[-1].status == "stopped":  # Ctrl+C stops the sweep, not only this run
            break
    print()
    print(sweeps.format_table(sweeps.aggregate(finished, args.param, args.metric), args.param, args.metric))
    return interrupted() if finished[-1].status == "stopped" else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kmnist_core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model and save it as a run")
    _add_config_options(train)
    train.set_defaults(handler=cmd_train)

    sweep = sub.add_parser("sweep", help="train once per value of one hyperparameter (and per seed) and tabulate")
    _add_config_options(sweep)
    sweep.add_argument("--param", required=True, choices=sweeps.SWEEPABLE, help="the hyperparameter to vary")
    sweep.add_argument("--values", required=True, help="comma-separated values, e.g. 1e-3,1e-4")
    sweep.add_argument("--repeats", type=int, default=1, help="runs per value, with seeds seed, seed+1, ...")
    sweep.add_argument("--metric", default="test_accuracy", choices=sweeps.METRICS)
    sweep.set_defaults(handler=cmd_sweep)

    evaluate = sub.add_parser("evaluate", help="test metrics, per-class scores and confusions of a run")
    evaluate.add_argument("run", help="run id (a folder under the runs directory) or path")
    evaluate.add_argument("--data-root", default=None)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify image files with a run (top 3)")
    predict.add_argument("run")
    predict.add_argument("images", nargs="+", type=Path)
    predict.set_defaults(handler=cmd_predict)

    listing = sub.add_parser("list", help="saved runs, architectures and datasets")
    listing.set_defaults(handler=cmd_list)

    for command in (train, sweep, evaluate, predict, listing):
        command.add_argument("--runs-dir", type=_runs_dir, default=None,
                             help="where runs are saved (default: $KMNIST_RUNS_DIR, else ./checkpoints)")
    return p


def _runs_dir(value: str) -> Path:
    if not value.strip():  # Path("") is the working directory: a run would land among the user's files
        raise argparse.ArgumentTypeError("the runs folder must not be empty")
    return Path(value)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.handler(args)
    except (ValueError, data.DatasetUnavailable, runs.CheckpointError, OSError) as error:
        print(f"error: {_first_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted()
    except Exception as error:  # noqa: BLE001 - a damaged file can fail in ways no one listed: still one line
        print(f"error: {_first_line(f'{type(error).__name__}: {error}')}", file=sys.stderr)
        return 2


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or [""])[0]
