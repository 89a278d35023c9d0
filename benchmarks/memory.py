"""Peak server memory per Draw upload and per canvas message, at and beyond the size limits:
`python -m benchmarks.memory`. Each case runs in a fresh Python that has imported what the
server has (kmnist_core.drawing, the canvas decoder); its figure is the peak resident memory
(Linux's VmHWM, reset through /proc/self/clear_refs) above the resident memory just before the
input is handed over. The inputs are made beforehand and read from files, so making them costs
nothing measured. Target: at most 100 MB above the idle server for any input (issue 20)."""

from __future__ import annotations

import argparse
import io
import platform
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

TARGET_MB = 100
ROOT = Path(__file__).resolve().parents[1]


def _status_mb(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def measure(code: str) -> float:
    """Run `code` here; the peak RSS in MB above the RSS at its call of MARK() (or at its start)."""
    from kmnist_core import drawing  # noqa: F401 - the server's imports are part of idle
    import pages.canvas  # noqa: F401
    baseline = [0.0]

    def mark() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from the current RSS
        baseline[0] = _status_mb("VmRSS")

    mark()
    exec(code, {"MARK": mark})
    return _status_mb("VmHWM") - baseline[0]


def _png(array: np.ndarray, **options) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG", compress_level=1, **options)
    return out.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", quality=70)
    return out.getvalue()


def cases() -> dict[str, tuple[str, bytes]]:
    """name -> (kind, file content): uploads for read_image_bytes, canvas PNGs for the decoder."""
    from PIL import Image
    from kmnist_core import drawing
    side = int(drawing.MAX_DECODED_PIXELS ** 0.5)
    rng = np.random.default_rng(0)
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")
    return {
        "upload 7000x7000 16-bit PNG (refused)": ("upload", _png(np.zeros((7000, 7000), np.uint16))),
        f"upload {side}x{side} 16-bit PNG (the pixel limit)": ("upload", _png(np.full((side, side), 900, np.uint16))),
        f"upload {side}x{side} RGBA PNG (the pixel limit)": ("upload", _png(np.zeros((side, side, 4), np.uint8))),
        "upload 8000x6000 JPEG (48 MP, drafted)": ("upload", _jpeg(np.zeros((6000, 8000, 3), np.uint8))),
        "upload 1800x1800 noise PNG (~9.7 MB, the byte limit)": (
            "upload", _png(rng.integers(0, 255, (1800, 1800, 3), dtype=np.uint8))),
        "canvas 280x280 (a real message)": ("canvas", _png(np.zeros((280, 280, 4), np.uint8))),
        "canvas 9000x9000 PNG (crafted, refused)": ("canvas", _png(np.zeros((9000, 9000), np.uint8))),
        "canvas 20000x20000 PNG (a decompression bomb, refused)": ("canvas", bomb.getvalue()),
    }


def code_for(kind: str, path: Path) -> str:
    if kind == "upload":
        return (f"from kmnist_core import drawing\ncontent = open({str(path)!r}, 'rb').read()\nMARK()\n"
                f"try: drawing.read_image_bytes(content)\nexcept drawing.ImageProblem: pass")
    return (f"import base64\nfrom pages.canvas import decode\ncontent = open({str(path)!r}, 'rb').read()\n"
            f"state = {{'drawing': {{'png': 'data:image/png;base64,' + base64.b64encode(content).decode()}}}}\n"
            f"MARK()\ndecode(state)")


def run_cases(requests: list[tuple[str, bytes]]) -> list[float]:
    """The peak of each (kind, content) request, one after another in one fresh Python (the
    benchmark gives each its own; the tests share one to save the imports)."""
    with tempfile.TemporaryDirectory() as folder:
        codes = []
        for i, (kind, content) in enumerate(requests):
            path = Path(folder) / f"input{i}"
            path.write_bytes(content)
            codes += ["--code", code_for(kind, path)]
        result = subprocess.run([sys.executable, "-m", "benchmarks.memory", *codes],
                                cwd=ROOT, capture_output=True, text=True, check=True)
    return [float(line) for line in result.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", help="measure this code in this process (used by the cases)")
    args = parser.parse_args()
    if args.code:
        for code in args.code:
            print(f"{measure(code):.1f}")
        return 0
    print(f"# peak RSS above idle, per request; {platform.node()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    worst = 0.0
    for name, (kind, content) in cases().items():
        (extra,) = run_cases([(kind, content)])
        worst = max(worst, extra)
        print(f"{name:58} {len(content) / 2**20:6.2f} MB file  {extra:6.1f} MB")
    print(f"worst: {worst:.1f} MB (target <= {TARGET_MB} MB)")
    return 0 if worst <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
