import socket
import time

import pytest
import torch
import torchvision

from kmnist_core import data
from conftest import SHARED_DATASETS, needs_shared, write_dataset


def test_registry_names_and_kmnist_classes():
    assert data.list_datasets()[:3] == ["kmnist", "mnist", "fashion"]
    kmnist = data.dataset_info("kmnist")
    assert kmnist.class_names[0] == "お o" and kmnist.class_names[9] == "を wo"
    # same order as torchvision's romanised class list
    assert [c.split()[1] for c in kmnist.class_names] == torchvision.datasets.KMNIST.classes
    assert data.dataset_info("fashion").class_names[9] == "Ankle boot"


def test_loads_through_torchvision_into_uint8_and_caches(data_root):
    first = data.load_dataset("mnist", data_root)
    assert first.train_images.dtype == torch.uint8 and first.train_images.shape == (1000, 28, 28)
    assert first.test_labels.dtype == torch.int64 and len(first.test_labels) == 300
    assert data.load_dataset("mnist", data_root) is first  # held once per process


def test_data_root_from_environment(data_root, monkeypatch):
    monkeypatch.setenv("KMNIST_DATA_ROOT", str(data_root))
    assert data.load_dataset("kmnist").train_images.shape == (1000, 28, 28)


def test_split_is_stratified_seeded_and_normalised_on_train_only(data_root):
    raw = data.load_dataset("mnist", data_root)
    a = data.make_splits(raw, 0.1, seed=3)
    b = data.make_splits(raw, 0.1, seed=3)
    c = data.make_splits(raw, 0.1, seed=4)
    assert len(a.val_labels) == 100 and len(a.train_labels) == 900
    assert torch.equal(a.val_indices, b.val_indices) and not torch.equal(a.val_indices, c.val_indices)
    assert torch.bincount(a.val_labels, minlength=10).tolist() == [10] * 10
    assert len(set(a.val_indices.tolist())) == 100  # no image held out twice
    expected_mean = a.train_images.float().div(255).mean().item()
    assert a.normalization.mean == pytest.approx(expected_mean, abs=1e-5)
    normalised = a.normalization.apply(a.train_images)
    assert normalised.shape == (900, 1, 28, 28)
    assert normalised.mean().item() == pytest.approx(0, abs=1e-3) and normalised.std().item() == pytest.approx(1, abs=1e-3)


def test_user_folder_with_class_names(tmp_path):
    folder = write_dataset(tmp_path / "mine", n_train=50, n_test=20)
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    loaded = data.load_dataset(str(folder))
    assert loaded.info.class_names[3] == "c3" and loaded.train_images.shape == (50, 28, 28)


def test_user_folder_problems_are_clear(tmp_path):
    with pytest.raises(data.DatasetUnavailable, match="Unknown dataset 'nowhere'"):
        data.dataset_info("nowhere")
    folder = write_dataset(tmp_path / "partial", n_train=20, n_test=10)
    (folder / "raw" / "t10k-labels-idx1-ubyte").unlink()
    (folder / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x14" + bytes(20))
    with pytest.raises(data.DatasetUnavailable, match="t10k-labels-idx1-ubyte not found"):
        data.load_dataset(str(folder))
    (folder / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(data.DatasetUnavailable, match="unreadable"):
        data.load_dataset(str(folder))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_names_dataset_folder_and_source(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{_closed_port()}/"])
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load_dataset("kmnist", tmp_path)
    message = str(error.value)
    assert "Kuzushiji-MNIST" in message and str(tmp_path / "KMNIST" / "raw") in message
    assert "127.0.0.1" in message and "KMNIST_DATA_ROOT" in message and "download failed" in message


def test_download_that_never_answers_times_out(tmp_path, monkeypatch):
    """A server that accepts the connection and says nothing must not hang the app."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{server.getsockname()[1]}/"])
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_SECONDS", 0.5)
    start = time.monotonic()
    try:
        with pytest.raises(data.DatasetUnavailable, match="timed out"):
            data.load_dataset("kmnist", tmp_path)
    finally:
        server.close()
    assert time.monotonic() - start < 10
    assert socket.getdefaulttimeout() is None  # the process-wide default is restored


def test_download_from_a_mirror_with_checksums(tmp_path, kmnist_mirror):
    """The real download path (torchvision: fetch, md5 check, gunzip) against a local mirror."""
    assert data.needs_download("kmnist", tmp_path / "root")
    loaded = data.load_dataset("kmnist", tmp_path / "root")
    assert loaded.train_images.shape == (200, 28, 28) and len(loaded.test_labels) == 50
    assert not data.needs_download("kmnist", tmp_path / "root")
    assert data.downloaded_bytes("kmnist", tmp_path / "root") > 200 * 784

    # A corrupted file on the mirror fails the checksum with the same clear error.
    (kmnist_mirror / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(data.DatasetUnavailable, match="could not be downloaded"):
        data.load_dataset("kmnist", tmp_path / "bad")


@needs_shared
def test_shared_datasets_load():
    mnist = data.load_dataset("mnist", SHARED_DATASETS)
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    k10 = data.load_dataset("kmnist10k", SHARED_DATASETS)
    assert len(k10.train_labels) == 8000 and len(k10.test_labels) == 2000
    assert k10.info.class_names == data.KMNIST_CLASSES
