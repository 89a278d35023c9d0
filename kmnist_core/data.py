"""Datasets: a small registry, loading into uint8 tensors held once per process,
the stratified validation split and the normalisation statistics.

The three named datasets are torchvision's: its classes name their files, mirrors
and checksums, and its `check_integrity` verifies a download. Two parts are ours,
for the failures a classroom meets:
- the transfer, because torchvision's has no deadline and cannot be stopped (a
  server that trickles bytes held it forever), and its only timeout is the
  process-wide socket default;
- reading the MNIST-format idx files, because torchvision's reader asserts on a
  bad header, cannot say which file is broken or truncated, reads no `.gz`, and
  its dataset classes first try to unpickle a legacy `processed/*.pt`.
"""

from __future__ import annotations

import gzip
import math
import os
import secrets
import struct
import threading
import time
import urllib.request
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from sklearn.model_selection import train_test_split
from torchvision.datasets.utils import USER_AGENT, check_integrity

# A download (all four files, every mirror tried) must be over within this many seconds,
# successful or not; docs/troubleshooting.md documents it.
DOWNLOAD_TIMEOUT_SECONDS = 30.0

KMNIST_CLASSES = ("お o", "き ki", "す su", "つ tsu", "な na", "は ha", "ま ma", "や ya", "れ re", "を wo")
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing and could not be downloaded, or are unreadable."""


class DownloadStopped(DatasetUnavailable):
    """The caller's stop event was set while the dataset was downloading."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str                      # registry key, or the folder path of a user's idx dataset
    display_name: str
    class_names: tuple[str, ...]
    folder: str                    # sub-folder of the data root, torchvision's layout: <folder>/raw/
    description: str = ""
    torchvision_class: type | None = None  # None: a folder of idx files we only read
    homepage: str = ""
    licence: str = ""
    train_size: int = 0            # official training images, known before a download
    attribution: str = ""          # the credit line the licence asks for, copied into every run's record
    warning: str = ""              # shown wherever the dataset or a model trained on it appears
    test_set_note: str = ""        # why its test accuracy differs from validation, where it does

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_kana(self) -> bool:
        return is_kana(self.class_names)

    @property
    def can_download(self) -> bool:
        """Whether torchvision can fetch it (a user's folder of idx files cannot be)."""
        return self.torchvision_class is not None


DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in [
        DatasetInfo(
            "kmnist", "Kuzushiji-MNIST", KMNIST_CLASSES, "KMNIST",
            "Ten cursive classical-Japanese hiragana (kuzushiji), 60,000 training / 10,000 test images.",
            torchvision.datasets.KMNIST, "https://github.com/rois-codh/kmnist",
            "CC BY-SA 4.0, ROIS-DS Center for Open Data in the Humanities (Clanuwat et al., arXiv:1812.01718)", 60000,
            attribution='"KMNIST Dataset" (created by CODH), adapted from "Kuzushiji Dataset" (created by NIJL and '
                        'others), doi:10.20676/00000341',
            test_set_note="Validation images are held out from the training set, while the official test set comes "
                          "from other writers and books and is harder, so test accuracy reads lower: the best epoch "
                          "is chosen on validation, never on test."),
        DatasetInfo(
            "mnist", "MNIST", MNIST_CLASSES, "MNIST",
            "Handwritten digits 0-9, 60,000 training / 10,000 test images.",
            torchvision.datasets.MNIST, "http://yann.lecun.com/exdb/mnist/",
            "CC BY-SA 3.0, Yann LeCun and Corinna Cortes", 60000),
        DatasetInfo(
            "fashion", "Fashion-MNIST", FASHION_CLASSES, "FashionMNIST",
            "Zalando's article images in ten clothing classes, 60,000 training / 10,000 test images.",
            torchvision.datasets.FashionMNIST, "https://github.com/zalandoresearch/fashion-mnist",
            "MIT, Zalando Research", 60000),
    ]
}


def kana_and_romanisation(label: str) -> tuple[str, str] | None:
    """("お", "o") for a class named as KMNIST's are, a hiragana and its romanisation; else None."""
    parts = label.split()
    if len(parts) == 2 and all("\u3040" <= ch <= "\u309f" for ch in parts[0]):
        return parts[0], parts[1]
    return None


def is_kana(class_names) -> bool:
    """Whether every class is a hiragana with its romanisation (KMNIST's, or a user's kana set)."""
    return bool(class_names) and all(kana_and_romanisation(name) for name in class_names)


def list_datasets() -> list[str]:
    return list(DATASETS)


# A checkout with the project's shared datasets beside it (every developer's machine and CI) reads them
# from there; a user's install downloads into ./data.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def default_data_root() -> Path:
    """$KMNIST_DATA_ROOT, else ../shared/datasets beside the checkout where it is, else ./data."""
    if os.environ.get("KMNIST_DATA_ROOT"):
        return Path(os.environ["KMNIST_DATA_ROOT"])
    return SHARED_DATASETS if SHARED_DATASETS.is_dir() else Path("data")


def allowed_folders() -> list[Path]:
    """The roots a user's own dataset folder must be under, from $KMNIST_DATA_FOLDERS (colon-separated);
    none set: any folder the server can read (a single user on a laptop)."""
    return [Path(p).expanduser().resolve() for p in os.environ.get("KMNIST_DATA_FOLDERS", "").split(":") if p]


def _folder_path(name: str) -> Path:
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~someone/..." with no such user here: a path that names no folder
        return Path(name)


def _offered(folder: Path) -> bool:
    """Whether the folder is under one of allowed_folders() (any folder when none are set)."""
    roots = allowed_folders()
    return not roots or any(folder.resolve().is_relative_to(root) for root in roots)


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset `name`, or a user's folder of idx files given by its path.

    A user's folder may hold a `classes.txt` with one class name per line;
    without it the classes are named by their label numbers.
    """
    if name in DATASETS:
        return DATASETS[name]
    if not name.strip():  # Path("") would be the working directory
        raise DatasetUnavailable(f"No dataset given: use one of {', '.join(DATASETS)} or the path of a folder "
                                 f"of idx files.")
    folder = _folder_path(name)
    if allowed_folders():
        # One message for a folder outside the roots, missing or not a dataset: in a class, the box
        # must not tell which of the server's folders exist.
        if not (_offered(folder) and folder.is_dir() and all(_find(_idx_folder(folder), f) for f in IDX_FILES)):
            raise DatasetUnavailable(f"'{name}' is not one of the dataset folders this server offers: use one of "
                                     f"{', '.join(DATASETS)} or a dataset folder under "
                                     f"{', '.join(map(str, allowed_folders()))}.")
    elif folder.is_file():
        raise DatasetUnavailable(f"'{name}' is a file: give the folder that holds the four idx files.")
    elif not folder.is_dir() and (os.sep in name or name.startswith(("~", "."))):
        raise DatasetUnavailable(f"The folder '{name}' does not exist.")
    elif not folder.is_dir():
        raise DatasetUnavailable(
            f"Unknown dataset '{name}': use one of {', '.join(DATASETS)} or the path of a folder of idx files.")
    raw = _idx_folder(folder)
    files = _idx_paths(folder.name, raw)
    classes_file = next((p for p in (folder / "classes.txt", raw / "classes.txt") if p.is_file()), None)
    if classes_file:
        try:
            text = classes_file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DatasetUnavailable(f"{classes_file} is not UTF-8 text: save it as UTF-8, one class name "
                                     f"per line.") from None
        except OSError as error:
            raise DatasetUnavailable(f"{classes_file} cannot be read ({error.strerror}).") from None
        class_names = tuple(line.strip() for line in text.splitlines() if line.strip())
        if not class_names:
            raise DatasetUnavailable(f"{classes_file} names no classes: write one class name per line, "
                                     f"or delete it to name the classes by their numbers.")
    else:
        labels = _read_idx(files[1], ndim=1)
        class_names = tuple(str(i) for i in range(int(labels.max()) + 1))
    return DatasetInfo(str(folder), folder.name, class_names, str(folder), f"idx files in {folder}")


def is_available(name: str) -> bool:
    """Whether this install knows the dataset `name`: a registered one, or a folder that exists.
    A run made on a dataset since retired (or on a folder since moved) still lists, loads and
    predicts with the class names its run.json stores; only what needs the images cannot be done."""
    return name in DATASETS or (bool(name.strip()) and _folder_path(name).is_dir() and _offered(_folder_path(name)))


@dataclass(frozen=True)
class RawDataset:
    """The official train and test splits as uint8 images (N, 28, 28) and int64 labels (N,)."""
    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


class _DatasetCache:
    """Loaded datasets by their resolved folder (however it was spelt), each with the identity of
    its files when read (size, mtime, inode: replacing a file changes it, so the next load reads
    it again). Bounded: the least recently used go first once the total passes max_bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.entries: OrderedDict[tuple[str, str], tuple[tuple, RawDataset, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str], identity: tuple) -> RawDataset | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None or found[0] != identity:
                return None
            self.entries.move_to_end(key)
            return found[1]

    def put(self, key: tuple[str, str], identity: tuple, dataset: RawDataset) -> None:
        size = sum(t.nbytes for t in (dataset.train_images, dataset.train_labels,
                                      dataset.test_images, dataset.test_labels))
        with self.lock:
            if key in self.entries:
                self.bytes -= self.entries.pop(key)[2]
            self.entries[key] = (identity, dataset, size)
            self.bytes += size
            while self.bytes > self.max_bytes and len(self.entries) > 1:  # the newest stays, whatever its size
                self.bytes -= self.entries.popitem(last=False)[1][2]


# The three named datasets take 55 MB each; 30 spellings of one folder once cached 30 copies.
MAX_CACHED_DATASET_BYTES = 768 * 2**20
_cache = _DatasetCache(MAX_CACHED_DATASET_BYTES)
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def raw_folder(name: str, root: str | Path | None = None) -> Path:
    """Where a registered dataset's idx files live (and where downloads go)."""
    root = Path(root) if root is not None else default_data_root()
    return _idx_folder(root / DATASETS[name].folder) if name in DATASETS else _idx_folder(_folder_path(name))


def needs_download(name: str, root: str | Path | None = None) -> bool:
    """True for a downloadable dataset whose files (unpacked or .gz) are not all there yet."""
    info = dataset_info(name)
    folder = raw_folder(name, root)
    return info.torchvision_class is not None and any(_find(folder, f) is None for f in IDX_FILES)


def downloaded_bytes(name: str, root: str | Path | None = None) -> int:
    """Bytes so far in the dataset's folder: a download writes each file there as it
    arrives, so polling this shows its progress."""
    folder = raw_folder(name, root)
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:  # the folder, or a partial file in it, came or went meanwhile
        return 0


def load_dataset(name: str, root: str | Path | None = None, download: bool = True,
                 stop: threading.Event | None = None) -> RawDataset:
    """Load a dataset into memory once per process (later calls return the same tensors).

    A missing registered dataset is downloaded (when `download`) within
    DOWNLOAD_TIMEOUT_SECONDS; setting `stop` ends the download, or the wait for
    another thread's download of the same dataset, at once with DownloadStopped.
    Each dataset has its own lock, so one downloading never holds up another loading.
    """
    root = Path(root) if root is not None else default_data_root()
    info = dataset_info(name)
    folder = _dataset_folder(info, root)
    key = (str(folder), info.name if info.name in DATASETS else "")
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    while not lock.acquire(timeout=0.1):
        if stop is not None and stop.is_set():
            raise DownloadStopped(f"Stopped while waiting for {info.display_name} to download.")
    try:
        found = _cache.get(key, _identity(folder))
        if found is None:
            found = _read(info, root, download, stop)
            _cache.put(key, _identity(folder), found)
        return found
    finally:
        lock.release()


def _dataset_folder(info: DatasetInfo, root: Path) -> Path:
    return (root / info.folder if info.name in DATASETS else _folder_path(info.folder)).resolve()


def _identity(folder: Path) -> tuple:
    """What changes when a dataset's files are replaced: each file's size, mtime and inode."""
    raw = _idx_folder(folder)
    identity = []
    for path in [_find(raw, name) for name in IDX_FILES] + [folder / "classes.txt", raw / "classes.txt"]:
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            stat = None
        identity.append((stat.st_size, stat.st_mtime_ns, stat.st_ino) if stat else None)
    return tuple(identity)


def _read(info: DatasetInfo, root: Path, download: bool, stop: threading.Event | None) -> RawDataset:
    folder = root / info.folder if info.name in DATASETS else _folder_path(info.folder)
    if info.torchvision_class is not None and any(_find(_idx_folder(folder), f) is None for f in IDX_FILES):
        if not download:
            raise DatasetUnavailable(_missing_message(info, root, tried_download=False))
        _download(info, root, stop)
    raw = _idx_folder(folder)
    images_train, labels_train, images_test, labels_test = _idx_paths(info.display_name, raw)
    return _checked(info, _read_idx(images_train, 3), _read_idx(labels_train, 1),
                    _read_idx(images_test, 3), _read_idx(labels_test, 1))


def _find(folder: Path, name: str) -> Path | None:
    """The idx file `name` in folder, unpacked or as name.gz."""
    return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)


def _idx_paths(dataset_name: str, raw: Path) -> list[Path]:
    """The four idx files of a folder, or one message saying which are missing and what is needed."""
    found = [_find(raw, name) for name in IDX_FILES]
    if all(found):
        return found
    missing = [name for name, path in zip(IDX_FILES, found) if path is None]
    lacks = "holds none of the idx files" if len(missing) == len(IDX_FILES) else f"lacks {', '.join(missing)}"
    raise DatasetUnavailable(
        f"{dataset_name}: {raw} {lacks}. A dataset folder needs the four MNIST-format idx files "
        f"{', '.join(IDX_FILES)} (each may be .gz), directly in it or in its raw/ sub-folder.")


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """One MNIST-format idx file (unpacked or .gz) as a uint8 tensor, checked against its
    header: magic 00 00 08 <ndim>, then <ndim> big-endian sizes, then the bytes."""
    what = "image" if ndim == 3 else "label"
    try:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
    except EOFError:
        raise DatasetUnavailable(f"{path} is truncated: the .gz archive ends early (an interrupted download "
                                 f"or copy?). Replace it with a complete copy.") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DatasetUnavailable(f"{path} is not a valid .gz archive ({error}).") from None
    except OSError as error:
        raise DatasetUnavailable(f"{path} cannot be read ({error.strerror or error}).") from None
    magic = bytes((0, 0, 0x08, ndim))
    header = 4 + 4 * ndim
    if content[:4] != magic:
        found = content[:4].hex(" ") or "nothing"
        raise DatasetUnavailable(f"{path} is not an MNIST-format {what} file: it starts with {found}, "
                                 f"not {magic.hex(' ')}.")
    if len(content) < header:
        raise DatasetUnavailable(f"{path} is truncated: it ends inside its {header}-byte header.")
    sizes = struct.unpack(f">{ndim}I", content[4:header])
    if sizes[0] == 0:
        raise DatasetUnavailable(f"{path} holds no {what}s (its header says 0).")
    if ndim == 3 and sizes[1:] != (28, 28):
        raise DatasetUnavailable(f"{path} holds {sizes[1]}x{sizes[2]} images; KMNIST Lab reads 28x28 images.")
    expected = header + math.prod(sizes)
    if len(content) < expected:
        raise DatasetUnavailable(f"{path} is truncated: its header promises {sizes[0]:,} {what}s "
                                 f"({expected:,} bytes) but it holds {len(content):,} bytes.")
    if len(content) > expected:
        raise DatasetUnavailable(f"{path} holds {len(content) - expected:,} bytes more than its header's "
                                 f"{sizes[0]:,} {what}s: it is not a clean idx file.")
    return torch.frombuffer(bytearray(content[header:]), dtype=torch.uint8).view(*sizes)


def _download(info: DatasetInfo, root: Path, stop: threading.Event | None) -> None:
    """Fetch the missing files from torchvision's mirrors into <root>/<folder>/raw/, verify
    their checksums, and unpack them; all of it within DOWNLOAD_TIMEOUT_SECONDS."""
    cls = info.torchvision_class
    raw = root / info.folder / "raw"
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT_SECONDS
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetUnavailable(_missing_message(info, root) + f" (The folder cannot be made: {error}.)") from None
    for filename, md5 in cls.resources:  # e.g. ("train-images-idx3-ubyte.gz", "<md5>")
        archive = raw / filename
        if (raw / archive.stem).is_file() or check_integrity(str(archive), md5):
            _unpack(archive)
            continue
        failures = []
        for mirror in cls.mirrors:
            try:
                _fetch(f"{mirror}{filename}", archive, deadline, stop)
            except DownloadStopped:
                raise DownloadStopped(f"The download of {info.display_name} was stopped.") from None
            except TimeoutError:
                raise DatasetUnavailable(
                    _missing_message(info, root) + f" (The download failed: timed out, not finished within "
                    f"{DOWNLOAD_TIMEOUT_SECONDS:g} s.)") from None
            except OSError as error:  # URLError, HTTPError, refused, reset, disk full: try the next mirror
                failures.append(f"{mirror}{filename}: {getattr(error, 'reason', None) or error}")
                continue
            if check_integrity(str(archive), md5):
                break
            archive.unlink(missing_ok=True)
            failures.append(f"{mirror}{filename}: the file's checksum is wrong")
        else:
            raise DatasetUnavailable(_missing_message(info, root) + f" (The download failed: {failures[-1]}.)")
        _unpack(archive)


def _fetch(url: str, target: Path, deadline: float, stop: threading.Event | None) -> None:
    """Download `url` to `target` by `deadline` (time.monotonic()), or raise TimeoutError;
    a set `stop` raises DownloadStopped at once.

    The transfer runs in a daemon thread that this one watches, so no server (one that never
    answers, one that trickles a byte at a time, a slow name lookup) holds the caller past
    the deadline. The thread writes to a unique partial file, renamed into place only when
    complete; an abandoned thread deletes its partial file and ends at its next read (each
    read is bounded by the time that was left when it started)."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    abandoned, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def transfer() -> None:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=max(0.1, deadline - time.monotonic())) as response, \
                    open(partial, "wb") as out:
                # read1 returns what has arrived (up to 64 KiB), so an abandoned transfer notices soon.
                while not abandoned.is_set() and (chunk := response.read1(1 << 16)):
                    out.write(chunk)
            if not abandoned.is_set():
                partial.replace(target)
        except BaseException as error:  # handed to the waiting caller
            failure.append(error)
        finally:
            partial.unlink(missing_ok=True)
            done.set()

    threading.Thread(target=transfer, name=f"download {target.name}", daemon=True).start()
    while not done.wait(0.05):
        stopped = stop is not None and stop.is_set()
        if stopped or time.monotonic() >= deadline:
            abandoned.set()
            partial.unlink(missing_ok=True)  # the thread may still hold it open: POSIX frees it when it lets go
            if stopped:
                raise DownloadStopped(f"The download of {url} was stopped.")
            raise TimeoutError(f"{url} did not finish within the download's deadline")
    if failure:
        raise failure[0]


def _unpack(archive: Path) -> None:
    """archive.gz -> archive, as torchvision lays a download out (later loads skip the gunzip);
    written aside and renamed, so an interrupted unpack never leaves a half file."""
    target = archive.with_suffix("")
    if target.is_file() or not archive.is_file():
        return
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with gzip.open(archive) as source, open(partial, "wb") as out:
            while block := source.read(1 << 20):
                out.write(block)
        partial.replace(target)
    except (OSError, EOFError, zlib.error):
        pass  # the .gz stays; reading it names what is wrong with it
    finally:
        partial.unlink(missing_ok=True)


def _missing_message(info: DatasetInfo, root: Path, tried_download: bool = True) -> str:
    raw = root / info.folder / "raw"
    sources = " or ".join(m for m in info.torchvision_class.mirrors)
    legacy = root / info.folder / "processed"
    note = (f" (Its {legacy} holds torchvision's old pickled format, which is never loaded: "
            f"pickles can run code.)" if legacy.is_dir() and any(legacy.glob("*.pt")) else "")
    return (f"{info.display_name} is not in {raw}" + (" and could not be downloaded. " if tried_download else ". ") +
            f"Download it, or put its four files ({', '.join(IDX_FILES)}, .gz or unpacked) in {raw.resolve()} - "
            f"they are at {sources} ({info.homepage}) - or point KMNIST_DATA_ROOT at a folder that has them." + note)


def _idx_folder(folder: Path) -> Path:
    """Accept either the dataset folder (torchvision layout, files in raw/) or the folder of the files."""
    return folder / "raw" if (folder / "raw").is_dir() else folder


def _checked(info: DatasetInfo, train_images, train_labels, test_images, test_labels) -> RawDataset:
    for split, images, labels in (("training", train_images, train_labels), ("test", test_images, test_labels)):
        if len(images) != len(labels):
            raise DatasetUnavailable(f"{info.display_name}: the {split} files hold {len(images):,} images "
                                     f"but {len(labels):,} labels.")
        if labels.min() < 0 or labels.max() >= info.num_classes:
            raise DatasetUnavailable(
                f"{info.display_name}: the {split} labels run from {int(labels.min())} to {int(labels.max())} "
                f"but there are {info.num_classes} class names.")
    return RawDataset(info, train_images, train_labels.long(), test_images, test_labels.long())


@dataclass(frozen=True)
class Normalization:
    mean: float
    std: float

    @staticmethod
    def of(images: torch.Tensor) -> "Normalization":
        pixels = images.float().div_(255)
        return Normalization(round(pixels.mean().item(), 6), round(pixels.std().item(), 6))

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) or float [0, 1] (N, 1, 28, 28) images -> normalised float (N, 1, 28, 28)."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        if images.dim() == 3:
            images = images.unsqueeze(1)
        return (images - self.mean) / self.std


@dataclass(frozen=True)
class Splits:
    """Train / validation / test tensors, the validation indices into the official
    training set and the normalisation computed on the training split only."""
    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    val_indices: torch.Tensor
    normalization: Normalization


def make_splits(data: RawDataset, val_fraction: float = 0.1, seed: int = 0) -> Splits:
    """Carve a seeded validation split from the training set: stratified when every class can
    have an image on both sides, else (a small own folder, such as a class's shared drawings)
    a plain seeded split."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    check_split(data, val_fraction)
    indices = torch.arange(len(data.train_labels))
    if val_fraction > 0:
        classes, n = len(torch.unique(data.train_labels)), len(indices)
        stratify = data.train_labels.numpy() if classes <= math.ceil(val_fraction * n) <= n - classes else None
        train_idx, val_idx = train_test_split(indices.numpy(), test_size=val_fraction, random_state=seed,
                                              stratify=stratify)
        train_idx, val_idx = torch.from_numpy(train_idx).sort().values, torch.from_numpy(val_idx).sort().values
    else:
        train_idx, val_idx = indices, indices[:0]
    train_images = data.train_images[train_idx]
    return Splits(data.info, train_images, data.train_labels[train_idx],
                  data.train_images[val_idx], data.train_labels[val_idx],
                  data.test_images, data.test_labels, val_idx, Normalization.of(train_images))


def check_split(data: RawDataset, val_fraction: float) -> None:
    """DatasetUnavailable, saying what the folder needs, when a class has fewer than two training
    images: one of them would go to validation and leave the class nothing to learn from
    (scikit-learn's own message lists the classes, a hundred of them)."""
    if val_fraction == 0:
        return
    counts = torch.bincount(data.train_labels)
    if counts[counts > 0].min() >= 2:
        return
    classes, n = int((counts > 0).sum()), len(data.train_labels)
    raise DatasetUnavailable(
        f"{data.info.display_name}: its {n:,} training images of {classes:,} classes are too few to hold out "
        f"{val_fraction:g} of them for validation. The folder needs at least 2 images of every class; "
        "or set the validation fraction to 0.")


def examples_per_class(labels: torch.Tensor, per_class: int, num_classes: int, seed: int = 0) -> list[list[int]]:
    """Up to `per_class` random indices of each class (a fixed sample for a given seed)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    return [order[shuffled == c][:per_class].tolist() for c in range(num_classes)]
