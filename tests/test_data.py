import gzip
import pickle
import socket
import socketserver
import threading
import time

import pytest
import torch
import torchvision

from kmnist_core import data
from conftest import IDX_NAMES, REAL_DATASETS, needs_shared, write_dataset, write_idx


def test_registry_names_and_kmnist_classes():
    assert data.list_datasets() == ["kmnist", "mnist", "fashion"]  # KMNIST10K is retired
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
    with pytest.raises(data.DatasetUnavailable, match="lacks t10k-labels-idx1-ubyte. A dataset folder needs"):
        data.load_dataset(str(folder))
    (folder / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(data.DatasetUnavailable, match="t10k-labels-idx1-ubyte is not an MNIST-format label file"):
        data.load_dataset(str(folder))


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("contents", ["empty", "other files", "files in raw/ of the wrong kind"])
def test_a_folder_that_is_not_a_dataset_names_the_four_files(tmp_path, contents):
    folder = tmp_path / "folder"
    folder.mkdir()
    if contents == "other files":  # a system folder: configuration files, a sub-folder
        for name in ("passwd", "hosts", "fstab"):
            (folder / name).write_text("root:x:0:0\n")
        (folder / "ssl").mkdir()
    elif contents == "files in raw/ of the wrong kind":
        (folder / "raw").mkdir()
        (folder / "raw" / "notes.txt.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(data.DatasetUnavailable) as error:
        data.dataset_info(str(folder))
    message = one_line(error)
    assert "holds none of the idx files" in message and all(name in message for name in IDX_NAMES)
    assert ".gz" in message


def test_a_folder_of_gz_files_loads(tmp_path):
    folder = write_dataset(tmp_path / "zipped", n_train=40, n_test=20) / "raw"
    for name in IDX_NAMES:
        (folder / f"{name}.gz").write_bytes(gzip.compress((folder / name).read_bytes()))
        (folder / name).unlink()
    loaded = data.load_dataset(str(tmp_path / "zipped"))
    assert loaded.train_images.shape == (40, 28, 28) and loaded.info.num_classes == 10


class RunsCode:
    """A pickle payload: unpickling it would create `marker`."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_in_processed_is_never_loaded(tmp_path):
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    for name in ("training.pt", "test.pt"):  # torchvision's legacy layout
        (processed / name).write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load_dataset("mnist", tmp_path, download=False)
    message = one_line(error)
    assert "MNIST is not in" in message and str(processed) in message and "never loaded" in message
    assert not marker.exists()
    write_dataset(tmp_path / "MNIST", n_train=30, n_test=10)   # with the idx files there, they are what loads
    assert data.load_dataset("mnist", tmp_path, download=False).train_images.shape == (30, 28, 28)
    assert not marker.exists()


def test_corrupt_idx_files_name_the_file_and_the_reason(tmp_path):
    def broken(name, damage):
        folder = write_dataset(tmp_path / name, n_train=20, n_test=10)
        damage(folder / "raw")
        with pytest.raises(data.DatasetUnavailable) as error:
            data.load_dataset(str(folder))
        return one_line(error)

    def bad_label_magic(raw):  # and no classes.txt: the class count is read from this file
        content = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
        content[2] = 0x0D
        (raw / "train-labels-idx1-ubyte").write_bytes(bytes(content))
    message = broken("label-magic", bad_label_magic)
    assert "train-labels-idx1-ubyte is not an MNIST-format label file: it starts with 00 00 0d 01" in message

    message = broken("image-magic", lambda raw: (raw / "t10k-images-idx3-ubyte").write_bytes(b"PK\x03\x04" + bytes(50)))
    assert "t10k-images-idx3-ubyte is not an MNIST-format image file: it starts with 50 4b 03 04" in message

    import numpy as np
    message = broken("no-images", lambda raw: write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28))))
    assert "t10k-images-idx3-ubyte holds no images" in message

    message = broken("latin1", lambda raw: (raw.parent / "classes.txt").write_bytes("caf\xe9\n".encode("latin-1") * 10))
    assert "classes.txt is not UTF-8 text" in message


def test_truncated_files_are_named_truncated(tmp_path):
    folder = write_dataset(tmp_path / "cut", n_train=20, n_test=10) / "raw"
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load_dataset(str(folder.parent))
    assert f"{images} is truncated: its header promises 20 images (15,696 bytes) but it holds 5,000" in one_line(error)

    # A registered dataset whose .gz was cut short (an interrupted copy), the other files fine.
    root = tmp_path / "root"
    raw = write_dataset(root / "MNIST", n_train=20, n_test=10) / "raw"
    packed = gzip.compress((raw / "t10k-images-idx3-ubyte").read_bytes())
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(packed[:len(packed) // 2])
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load_dataset("mnist", root, download=False)
    assert f"{raw / 't10k-images-idx3-ubyte.gz'} is truncated" in one_line(error)


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


class Trickle(socketserver.BaseRequestHandler):
    """Answers 200 with a 100 kB body, then sends it one byte every 50 ms (for at most 8 s)."""
    def handle(self):
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        end = time.monotonic() + 8
        while time.monotonic() < end and not self.server.closing.is_set():
            try:
                self.request.sendall(b"x")
            except OSError:
                return
            self.server.closing.wait(0.05)


@pytest.fixture
def trickling_mirror(monkeypatch):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads, server.closing = True, threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()


def test_a_trickling_download_ends_at_the_overall_deadline(tmp_path, trickling_mirror, monkeypatch):
    """One byte every 50 ms never trips a per-read timeout; the deadline is for the whole download."""
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_SECONDS", 1.0)
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailable) as error:
        data.load_dataset("kmnist", tmp_path)
    assert time.monotonic() - start < 3
    assert "timed out, not finished within 1 s" in one_line(error) and "Kuzushiji-MNIST is not in" in str(error.value)
    assert not list((tmp_path / "KMNIST" / "raw").glob("*.part"))  # no partial file left behind


def test_a_download_stops_at_once_and_keeps_the_socket_default(tmp_path, trickling_mirror):
    stop, outcome = threading.Event(), []

    def load():
        try:
            data.load_dataset("kmnist", tmp_path, stop=stop)
        except data.DatasetUnavailable as error:
            outcome.append(error)

    worker = threading.Thread(target=load)
    worker.start()
    defaults = set()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # what other threads see while the download runs
        defaults.add(socket.getdefaulttimeout())
        time.sleep(0.01)
    stop.set()
    stopped_at = time.monotonic()
    worker.join(5)
    assert time.monotonic() - stopped_at < 1
    assert defaults == {None}
    assert isinstance(outcome[0], data.DownloadStopped) and "was stopped" in str(outcome[0])


def test_a_download_does_not_hold_up_other_datasets(tmp_path, data_root, trickling_mirror, monkeypatch):
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_SECONDS", 2.0)
    downloading = threading.Thread(target=lambda: pytest.raises(data.DatasetUnavailable, data.load_dataset,
                                                                "kmnist", tmp_path))
    downloading.start()
    time.sleep(0.3)
    local = write_dataset(tmp_path / "local" / "MNIST", n_train=30, n_test=10).parent
    start = time.monotonic()
    assert data.load_dataset("mnist", local).train_images.shape == (30, 28, 28)
    waited = time.monotonic() - start
    assert downloading.is_alive() and waited < 1
    downloading.join(10)


@needs_shared
def test_shared_datasets_load():
    mnist = data.load_dataset("mnist", REAL_DATASETS)
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    kmnist = data.load_dataset("kmnist", REAL_DATASETS)
    assert len(kmnist.train_labels) == 60000 and len(kmnist.test_labels) == 10000
    assert kmnist.info.class_names == data.KMNIST_CLASSES


def test_stop_ends_a_job_that_is_downloading(tmp_path, runs_dir, trickling_mirror):
    """The Train page's Stop (and the sweep's) during the download: the job ends as stopped at once."""
    from kmnist_core.config import TrainConfig
    from kmnist_core.jobs import JobManager
    manager = JobManager(runs_dir)
    job = manager.submit(TrainConfig(dataset="kmnist", arch="mlp_small", data_root=str(tmp_path), device="cpu"))
    while not job.snapshot().phase.startswith("downloading"):
        time.sleep(0.02)
    time.sleep(0.2)
    manager.stop(job.id)
    assert manager.wait(job, timeout=2)
    assert job.status == "stopped" and "download of Kuzushiji-MNIST was stopped" in job.message
    assert not runs_dir.exists() or not list(runs_dir.iterdir())  # nothing trained, no run folder
