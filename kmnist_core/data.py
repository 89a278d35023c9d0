"""Datasets: a small registry, loading into uint8 tensors held once per process,
the stratified validation split and the normalisation statistics.

The three named datasets load through torchvision's own classes (which also
download, check and parse them); a user's own folder of MNIST-format idx files
is parsed with torchvision's idx reader.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from sklearn.model_selection import train_test_split
from torchvision.datasets.mnist import read_image_file, read_label_file

DOWNLOAD_TIMEOUT_SECONDS = 30.0

KMNIST_CLASSES = ("お o", "き ki", "す su", "つ tsu", "な na", "は ha", "ま ma", "や ya", "れ re", "を wo")
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing and could not be downloaded, or are unreadable."""


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

    @property
    def image_size(self) -> tuple[int, int]:
        return (28, 28)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in [
        DatasetInfo(
            "kmnist", "Kuzushiji-MNIST", KMNIST_CLASSES, "KMNIST",
            "Ten cursive classical-Japanese hiragana (kuzushiji), 60,000 training / 10,000 test images.",
            torchvision.datasets.KMNIST, "https://github.com/rois-codh/kmnist",
            "CC BY-SA 4.0, ROIS-DS Center for Open Data in the Humanities (Clanuwat et al., arXiv:1812.01718)", 60000,
            attribution='"KMNIST Dataset" (created by CODH), adapted from "Kuzushiji Dataset" (created by NIJL and '
                        'others), doi:10.20676/00000341'),
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
        DatasetInfo(
            "kmnist10k", "KMNIST10K (not the KMNIST benchmark)", KMNIST_CLASSES, "KMNIST10K",
            "The official KMNIST *test* set split 8,000 / 2,000 per class: a local stand-in for "
            "offline machines. Its accuracies are not KMNIST accuracies.",
            warning="KMNIST10K is the official KMNIST *test* set split 8,000/2,000 for offline machines: "
                    "its accuracies are not KMNIST accuracies."),
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


def default_data_root() -> Path:
    return Path(os.environ.get("KMNIST_DATA_ROOT", "data"))


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset `name`, or a user's folder of idx files given by its path.

    A user's folder may hold a `classes.txt` with one class name per line;
    without it the classes are named by their label numbers.
    """
    if name in DATASETS:
        return DATASETS[name]
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise DatasetUnavailable(
            f"Unknown dataset '{name}': use one of {', '.join(DATASETS)} or the path of a folder of idx files.")
    raw = _idx_folder(folder)
    classes_file = next((p for p in (folder / "classes.txt", raw / "classes.txt") if p.is_file()), None)
    if classes_file:
        class_names = tuple(line.strip() for line in classes_file.read_text().splitlines() if line.strip())
    else:
        labels = read_label_file(str(raw / IDX_FILES[1]))
        class_names = tuple(str(i) for i in range(int(labels.max()) + 1))
    return DatasetInfo(str(folder), folder.name, class_names, str(folder), f"idx files in {folder}")


@dataclass(frozen=True)
class RawDataset:
    """The official train and test splits as uint8 images (N, 28, 28) and int64 labels (N,)."""
    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


_cache: dict[tuple[str, str], RawDataset] = {}
_cache_lock = threading.Lock()
_download_lock = threading.Lock()


def raw_folder(name: str, root: str | Path | None = None) -> Path:
    """Where a registered dataset's idx files live (and where downloads go)."""
    root = Path(root) if root is not None else default_data_root()
    return _idx_folder(root / DATASETS[name].folder) if name in DATASETS else _idx_folder(Path(name))


def needs_download(name: str, root: str | Path | None = None) -> bool:
    """True for a downloadable dataset whose unpacked files are not all there yet."""
    info = dataset_info(name)
    folder = raw_folder(name, root)
    return info.torchvision_class is not None and not all((folder / f).is_file() for f in IDX_FILES)


def downloaded_bytes(name: str, root: str | Path | None = None) -> int:
    """Bytes so far in the dataset's folder: torchvision writes each file in place as it
    downloads, so polling this shows a download's progress."""
    folder = raw_folder(name, root)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def load_dataset(name: str, root: str | Path | None = None, download: bool = True) -> RawDataset:
    """Load a dataset into memory once per process (later calls return the same tensors)."""
    root = Path(root) if root is not None else default_data_root()
    info = dataset_info(name)
    key = (info.name, str(root.resolve()))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _read(info, root, download)
        return _cache[key]


def _read(info: DatasetInfo, root: Path, download: bool) -> RawDataset:
    if info.torchvision_class is None:
        raw = _idx_folder(root / info.folder if info.name in DATASETS else Path(info.folder))
        missing = [f for f in IDX_FILES if not (raw / f).is_file()]
        if missing:
            raise DatasetUnavailable(
                f"{info.display_name}: {', '.join(missing)} not found in {raw}. "
                f"A dataset folder needs the four MNIST-format idx files: {', '.join(IDX_FILES)}.")
        try:
            tensors = [read_image_file(str(raw / IDX_FILES[0])), read_label_file(str(raw / IDX_FILES[1])),
                       read_image_file(str(raw / IDX_FILES[2])), read_label_file(str(raw / IDX_FILES[3]))]
        except Exception as error:
            raise DatasetUnavailable(f"{info.display_name}: the idx files in {raw} are unreadable ({error}).") from error
        return _checked(info, *tensors)

    cls = info.torchvision_class
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError:
        if not download:
            raise DatasetUnavailable(_missing_message(info, root, tried_download=False)) from None
        train, test = _download(info, root)
    return _checked(info, train.data, train.targets, test.data, test.targets)


def _download(info: DatasetInfo, root: Path):
    # torchvision's urllib calls carry no timeout, so one unanswered connection would
    # hang the app forever; the socket default applies to them. It is process-wide,
    # hence the lock and the restore.
    cls = info.torchvision_class
    with _download_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
        try:
            return cls(root, train=True, download=True), cls(root, train=False, download=True)
        except Exception as error:
            reason = str(error).strip().splitlines()
            raise DatasetUnavailable(
                _missing_message(info, root) + f" (The download failed: {reason[-1] if reason else type(error).__name__}.)"
            ) from error
        finally:
            socket.setdefaulttimeout(previous)


def _missing_message(info: DatasetInfo, root: Path, tried_download: bool = True) -> str:
    raw = root / info.folder / "raw"
    sources = " or ".join(m for m in info.torchvision_class.mirrors)
    return (f"{info.display_name} is not in {raw}" + (" and could not be downloaded. " if tried_download else ". ") +
            f"Download it, or put its four files ({', '.join(IDX_FILES)}, .gz or unpacked) in {raw.resolve()} - "
            f"they are at {sources} ({info.homepage}) - or point KMNIST_DATA_ROOT at a folder that has them.")


def _idx_folder(folder: Path) -> Path:
    """Accept either the dataset folder (torchvision layout, files in raw/) or the folder of the files."""
    return folder / "raw" if (folder / "raw").is_dir() else folder


def _checked(info: DatasetInfo, train_images, train_labels, test_images, test_labels) -> RawDataset:
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        if images.dim() != 3 or tuple(images.shape[1:]) != info.image_size or len(images) != len(labels):
            raise DatasetUnavailable(
                f"{info.display_name}: expected 28x28 images with one label each, got images {tuple(images.shape)} "
                f"and {len(labels)} labels.")
        if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
            raise DatasetUnavailable(
                f"{info.display_name}: labels run from {int(labels.min())} to {int(labels.max())} "
                f"but there are {info.num_classes} class names.")
    return RawDataset(info, train_images.to(torch.uint8), train_labels.long(),
                      test_images.to(torch.uint8), test_labels.long())


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
    """Carve a stratified, seeded validation split from the training set."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    indices = torch.arange(len(data.train_labels))
    if val_fraction > 0:
        train_idx, val_idx = train_test_split(indices.numpy(), test_size=val_fraction, random_state=seed,
                                              stratify=data.train_labels.numpy())
        train_idx, val_idx = torch.from_numpy(train_idx).sort().values, torch.from_numpy(val_idx).sort().values
    else:
        train_idx, val_idx = indices, indices[:0]
    train_images = data.train_images[train_idx]
    return Splits(data.info, train_images, data.train_labels[train_idx],
                  data.train_images[val_idx], data.train_labels[val_idx],
                  data.test_images, data.test_labels, val_idx, Normalization.of(train_images))


def examples_per_class(labels: torch.Tensor, per_class: int, num_classes: int, seed: int = 0) -> list[list[int]]:
    """Up to `per_class` random indices of each class (a fixed sample for a given seed)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    return [order[shuffled == c][:per_class].tolist() for c in range(num_classes)]
