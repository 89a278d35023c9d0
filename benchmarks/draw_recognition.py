"""How well the Draw page recognises what people draw, for every shipped model (or the runs
named): test accuracy, accuracy on test characters re-drawn with a uniform pen (thinned to
their skeletons, re-stroked at several pen widths, sizes and positions on the 280 px
canvas, then prepared as the page prepares a drawing), and what the "not one of my
classes" check flags: real and re-drawn test images (wrongly), and junk drawings -
scribbles, filled shapes, letters of other scripts, near-blank sketches (rightly).

    python -m benchmarks.draw_recognition [--images 1000] [--junk 300] [RUN ...]
    python -m benchmarks.draw_recognition --modern-kana [--positions 4] [RUN ...]

--modern-kana measures instead how a kana model reads each class's modern hiragana, rendered
from the Noto CJK fonts (Debian's fonts-noto-cjk), thinned and re-stroked like the test images:
read right, and flagged "not one of my classes", per pen width.

Needs the real datasets ($KMNIST_DATA_ROOT, else ../shared/datasets beside the checkout).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kmnist_core import data, evaluation, framing, junk, novelty, runs, strokes  # noqa: E402


@dataclass
class Figures:
    run: str
    test_accuracy: float
    redrawn_accuracy: dict[int, float]           # pen width -> accuracy
    pen_widths: tuple[int, ...]
    flagged: dict[str, float] = field(default_factory=dict)   # what the novelty check flags, by set
    no_guess: dict[str, float] = field(default_factory=dict)  # junk refused before the model (blank, dot)


def measure(run: runs.Run, dataset: data.RawDataset, images: int = 1000, junk_per_kind: int = 300,
            pen_widths: tuple[int, ...] = strokes.PEN_WIDTHS, seed: int = 0) -> Figures:
    """The figures of one run on its dataset: its first `images` test images, re-drawn at each
    pen width; `junk_per_kind` drawings of each kind of junk. The novelty statistics are the
    run's own, fitted now (not saved) when it has none."""
    model = runs.load_model(run)
    frame = framing.framing_of_record(run.record.framing, run.record.dataset.name)
    test_images, test_labels = dataset.test_images[:images], dataset.test_labels[:images]
    predicted = evaluation.predict_logits(model, dataset.test_images, run.normalization).argmax(1).cpu()
    figures = Figures(run.id, float((predicted == dataset.test_labels).float().mean()), {}, tuple(pen_widths))

    redrawn = strokes.redrawn_test_set(test_images, test_labels, pen_widths, seed=seed, framing=frame)
    guesses = evaluation.predict_logits(model, redrawn.images[:, None], run.normalization).argmax(1).cpu()
    for width in pen_widths:
        chosen = redrawn.pen_widths == width
        figures.redrawn_accuracy[width] = float((guesses[chosen] == redrawn.labels[chosen]).float().mean())

    stats = novelty.load_for_run(run.path, model)
    if stats is None:
        config = run.config
        stats = novelty.fit_for_splits(model, data.make_splits(dataset, config.val_fraction, config.seed), config.seed)
    flags = lambda x: stats.flags(model, x, run.normalization).float().mean().item()
    figures.flagged["test images"] = flags(dataset.test_images)
    figures.flagged["re-drawn test images"] = flags(redrawn.images[:, None])
    for kind in junk.KINDS:
        drawn, refused = junk.junk_images(kind, junk_per_kind, seed=seed + 1, framing=frame)
        figures.no_guess[kind] = refused / junk_per_kind
        figures.flagged[kind] = flags(drawn[:, None]) * len(drawn) / junk_per_kind if len(drawn) else 0.0
    return figures


# Regular and bold, sans and serif: four skeletons of each kana.
NOTO_CJK = [Path("/usr/share/fonts/opentype/noto") / name for name in
            ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc", "NotoSerifCJK-Regular.ttc", "NotoSerifCJK-Bold.ttc")]
NOTO_JP = 0    # the Japanese face's index in each .ttc


def modern_kana(class_names: list[str], fonts: list[Path] = NOTO_CJK) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Each kana class's modern hiragana in each font found, as uint8 (N, 28, 28) white on
    black, its longer side 26 px (what strokes.redrawn_test_set re-draws), the labels and the
    fonts used."""
    images, labels, used = [], [], []
    for path in fonts:
        try:
            font = ImageFont.truetype(str(path), 200, index=NOTO_JP)
        except OSError:
            continue
        used.append(path.stem)
        for label, name in enumerate(class_names):
            canvas = Image.new("L", (280, 280), 0)
            ImageDraw.Draw(canvas).text((140, 140), data.kana_and_romanisation(name)[0], fill=255, font=font,
                                        anchor="mm")
            glyph = canvas.crop(canvas.getbbox())
            side = max(glyph.size)
            square = Image.new("L", (side, side), 0)
            square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
            framed = Image.new("L", (28, 28), 0)
            framed.paste(square.resize((26, 26), Image.BILINEAR), (1, 1))
            images.append(np.asarray(framed))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels), used


def measure_modern_kana(run: runs.Run, dataset: data.RawDataset, positions: int = 4,
                        pen_widths: tuple[int, ...] = strokes.PEN_WIDTHS, seed: int = 0) -> str:
    """Read right and flagged, per pen width, of the modern hiragana re-drawn `positions` times
    (a random size and place on the canvas each) with each pen."""
    if not run.record.dataset.is_kana:
        return f"{run.id}: skipped, not a kana model"
    model = runs.load_model(run)
    frame = framing.framing_of_record(run.record.framing, run.record.dataset.name)
    images, labels, fonts = modern_kana(run.class_names)
    if not fonts:
        return f"{run.id}: skipped, no Noto CJK font (apt-get install fonts-noto-cjk)"
    drawn = strokes.redrawn_test_set(images.repeat(positions, 1, 1), labels.repeat(positions), pen_widths,
                                     seed=seed, framing=frame)
    guesses = evaluation.predict_logits(model, drawn.images[:, None], run.normalization).argmax(1).cpu()
    stats = novelty.load_for_run(run.path, model)
    if stats is None:
        config = run.config
        stats = novelty.fit_for_splits(model, data.make_splits(dataset, config.val_fraction, config.seed), config.seed)
    flagged = stats.flags(model, drawn.images[:, None], run.normalization).cpu()
    right = guesses == drawn.labels
    per_pen = ", ".join(f"{w}: {right[drawn.pen_widths == w].float().mean():.0%} right, "
                        f"{flagged[drawn.pen_widths == w].float().mean():.0%} flagged" for w in pen_widths)
    per_class = ", ".join(f"{name.split()[0]} {right[drawn.labels == c].float().mean():.0%}/"
                          f"{flagged[drawn.labels == c].float().mean():.0%}" for c, name in enumerate(run.class_names))
    return "\n".join([
        f"{run.id}: modern hiragana, {len(drawn.labels)} drawings ({len(fonts)} fonts x {positions} positions x "
        f"{len(pen_widths)} pens)",
        f"  read right {right.float().mean():.1%}, flagged {flagged.float().mean():.1%}, right and not flagged "
        f"{(right & ~flagged).float().mean():.1%}",
        f"  per pen: {per_pen}",
        f"  per class, read right/flagged: {per_class}"])


def report(figures: Figures) -> str:
    widths = ", ".join(f"{w}: {a:.1%}" for w, a in figures.redrawn_accuracy.items())
    mean_redrawn = sum(figures.redrawn_accuracy.values()) / len(figures.redrawn_accuracy)
    junk_caught = [figures.flagged[k] + figures.no_guess[k] for k in junk.KINDS]
    lines = [f"{figures.run}",
             f"  test accuracy {figures.test_accuracy:.2%}; re-drawn {mean_redrawn:.1%} (pen width {widths})",
             f"  wrongly flagged 'not one of my classes': test images {figures.flagged['test images']:.1%}, "
             f"re-drawn test images {figures.flagged['re-drawn test images']:.1%} (target <= 2%)",
             "  junk caught (flagged, or no guess at all): " + ", ".join(
                 f"{k} {c:.0%}" + (f" ({figures.no_guess[k]:.0%} no guess)" if figures.no_guess[k] else "")
                 for k, c in zip(junk.KINDS, junk_caught)) + f"; all {sum(junk_caught) / len(junk_caught):.1%} (target >= 90%)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run ids or folders (default: the shipped models)")
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--images", type=int, default=1000, help="test images re-drawn at each pen width")
    parser.add_argument("--junk", type=int, default=300, help="junk drawings of each kind")
    parser.add_argument("--modern-kana", action="store_true",
                        help="measure modern hiragana rendered from fonts instead (kana models only)")
    parser.add_argument("--positions", type=int, default=4, help="with --modern-kana: drawings of each glyph per pen")
    args = parser.parse_args(argv)
    root = str(data.default_data_root())
    chosen = [runs.load_run(r, args.runs_dir) for r in args.runs] or \
        [runs.load_run(p) for p in sorted((REPO / "checkpoints").glob("shipped-*"))]
    for run in chosen:
        try:
            dataset = data.load_dataset(run.record.dataset.name, root, download=False)
        except data.DatasetUnavailable as error:
            print(f"{run.id}: skipped, {error}")
            continue
        if args.modern_kana:
            print(measure_modern_kana(run, dataset, args.positions), flush=True)
        else:
            print(report(measure(run, dataset, args.images, args.junk)), flush=True)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    sys.exit(main())
