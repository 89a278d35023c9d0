"""Hardening, round two (issue 20): one regression test per fault or bad input the second probe
found, each failing on the code before the fix. Memory, hangs, tracebacks, silent wrong answers."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_dataset, write_idx
from kmnist_core import cli, data, drawing, novelty, runs
from kmnist_core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG", compress_level=1)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Memory and hangs


@pytest.fixture(scope="module")
def big_16bit_png(tmp_path_factory) -> Path:
    """A 7000x7000 16-bit greyscale PNG: about 100 kB on disk, 49 megapixels decoded."""
    path = tmp_path_factory.mktemp("big") / "big16.png"
    array = np.zeros((7000, 7000), dtype=np.uint16)
    array[3000:4000, 3000:4000] = 60000
    path.write_bytes(png_bytes(array))
    return path


def test_a_huge_16_bit_png_upload_and_a_crafted_canvas_message_cost_bounded_memory(big_16bit_png, tmp_path):
    # Measured in this process, already warm (benchmarks/memory.py gives each request a fresh one).
    from benchmarks.memory import code_for, measure
    assert big_16bit_png.stat().st_size < drawing.MAX_UPLOAD_BYTES
    canvas = tmp_path / "canvas.png"
    canvas.write_bytes(png_bytes(np.zeros((9000, 9000), dtype=np.uint8)))
    assert measure(code_for("upload", big_16bit_png)) <= 100
    assert measure(code_for("canvas", canvas)) <= 100


def test_a_16_bit_png_at_the_pixel_limit_is_read_and_stretched():
    side = int(drawing.MAX_DECODED_PIXELS ** 0.5)
    array = np.zeros((side, side), dtype=np.uint16)
    array[side // 4: side // 2, side // 4: side // 2] = 1000   # dim ink: stretched to full white
    image = drawing.read_image_bytes(png_bytes(array))
    assert max(image.shape) <= drawing.WORKING_SIDE and image.dtype == np.uint8 and image.max() >= 250


def canvas_state(png: bytes, pen="20") -> dict:
    return {"drawing": {"png": "data:image/png;base64," + base64.b64encode(png).decode(), "pen": pen, "strokes": 1}}


def test_canvas_messages_with_huge_pictures_or_a_bad_pen_are_refused_not_raised():
    from pages.canvas import SIZE, decode
    big = png_bytes(np.zeros((9000, 9000), dtype=np.uint8))             # a crafted 9000x9000 canvas
    assert decode(canvas_state(big)) is None
    bomb = Image.new("1", (20000, 20000))                                # 400 megapixels: a decompression bomb
    out = io.BytesIO()
    bomb.save(out, "PNG")
    assert decode(canvas_state(out.getvalue())) is None
    good = png_bytes(np.zeros((SIZE, SIZE, 4), dtype=np.uint8))
    assert decode(canvas_state(good, pen="wide")) is None                 # a non-numeric pen width
    assert decode(canvas_state(good, pen=[1])) is None
    assert decode(canvas_state(good)).pen == 20


def test_the_dataset_cache_holds_one_copy_per_folder_whatever_its_spelling(tmp_path):
    folder = write_dataset(tmp_path / "own", n_train=200, n_test=50)
    first = data.load_dataset(str(folder))
    for spelling in (f"{folder}/raw/..", f"{folder}/raw/../raw/..", f"{folder}/."):
        assert data.load_dataset(spelling) is first
    assert sum(1 for key in data._cache.entries if key[0] == str(folder.resolve())) == 1


def test_the_dataset_cache_is_bounded_by_bytes(tmp_path, monkeypatch):
    folders = [write_dataset(tmp_path / f"own{i}", n_train=300, n_test=100, seed=i) for i in range(3)]
    one = data.load_dataset(str(folders[0]))
    size = one.train_images.numel() + one.test_images.numel() + 8 * (len(one.train_labels) + len(one.test_labels))
    monkeypatch.setattr(data._cache, "max_bytes", int(2.5 * size))
    for folder in folders[1:]:
        data.load_dataset(str(folder))
    assert data._cache.bytes <= 2.5 * size
    assert str(folders[0].resolve()) not in {key[0] for key in data._cache.entries}   # least recently used out
    assert data.load_dataset(str(folders[2])) is data.load_dataset(str(folders[2]))


def test_own_folder_files_replaced_on_disk_are_read_again(tmp_path):
    folder = write_dataset(tmp_path / "own", n_train=200, n_test=50)
    before = data.load_dataset(str(folder))
    labels = (before.train_labels.numpy() + 1) % 10
    os.replace(folder / "raw" / "train-labels-idx1-ubyte", tmp_path / "old-labels")
    write_idx(folder / "raw" / "train-labels-idx1-ubyte", labels.astype(np.uint8))
    after = data.load_dataset(str(folder))
    assert after is not before and after.train_labels.tolist() == labels.tolist()


def _record_in(tmp_path) -> Path:
    run = runs.Run(tmp_path / "runs" / "a-run", _record())
    run.path.mkdir(parents=True)
    run.save()
    return run.path


def _record() -> runs.RunRecord:
    return runs.RunRecord(config=TrainConfig(), dataset=runs.DatasetRecord("mnist", "MNIST", list("0123456789")),
                          normalization=data.Normalization(0.1, 0.3), model=runs.ModelRecord("mlp", 1),
                          status="finished", created=runs.now_iso())


def _with_deadline(function, seconds: float = 10):
    """Run `function` in a thread; fail (not hang) if it has not returned within `seconds`."""
    result: list = []

    def call():
        try:
            result.append((True, function()))
        except Exception as error:  # noqa: BLE001 - handed back to the test
            result.append((False, error))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "it hung"
    returned, value = result[0]
    if not returned:
        raise value
    return value


def test_a_run_json_that_is_a_fifo_or_a_link_to_dev_zero_is_refused_without_hanging(tmp_path):
    path = _record_in(tmp_path)
    fifo, zero = tmp_path / "runs" / "fifo-run", tmp_path / "runs" / "zero-run"
    fifo.mkdir()
    os.mkfifo(fifo / runs.RECORD)
    zero.mkdir()
    (zero / runs.RECORD).symlink_to("/dev/zero")
    found, problems = _with_deadline(lambda: runs.scan_runs(tmp_path / "runs"))
    assert [run.path for run in found] == [path]
    assert len(problems) == 2 and all("not a regular file" in p for p in problems)
    with pytest.raises(runs.CheckpointError, match="not a regular file"):
        _with_deadline(lambda: runs.load_run(fifo))


# ---------------------------------------------------------------------------------------------
# Tracebacks


def test_a_tilde_user_folder_that_cannot_be_expanded_is_a_message_not_a_traceback(tmp_path, capsys):
    assert data.is_available("~nosuchuser-kmnist/kana") is False
    with pytest.raises(data.DatasetUnavailable, match="does not exist"):
        data.dataset_info("~nosuchuser-kmnist/kana")
    path = _record_in(tmp_path)
    record = json.loads((path / runs.RECORD).read_text())
    record["dataset"]["name"] = "~nosuchuser-kmnist/kana"
    (path / runs.RECORD).write_text(json.dumps(record))
    assert cli.main(["list", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "dataset no longer available" in capsys.readouterr().out


def test_a_damaged_novelty_file_is_refused_as_made_for_another_model(trained_run):
    model = runs.load_model(trained_run)
    path = trained_run.path / novelty.FILE
    stats = novelty.NoveltyStats.load(path)
    name = next(n for n in stats.tensors if n.endswith("whitening"))
    stats.tensors[name] = stats.tensors[name][:3]                     # a matrix of the wrong shape
    stats.save(path)
    with pytest.raises(novelty.NoveltyError, match="fit it again"):
        novelty.load_for_run(trained_run.path, model)


def tiny_folder(tmp_path, n_train: int, num_classes: int = 10) -> Path:
    folder = tmp_path / "tiny" / "raw"
    folder.mkdir(parents=True)
    labels = (np.arange(n_train) % num_classes).astype(np.uint8)
    images = np.random.default_rng(0).integers(0, 255, (n_train, 28, 28)).astype(np.uint8)
    for name, array in zip(data.IDX_FILES, (images, labels, images, labels)):
        write_idx(folder / name, array)
    return folder.parent


@pytest.mark.parametrize("n_train", [1, 10])
def test_a_dataset_too_small_to_split_says_what_the_folder_needs(tmp_path, n_train):
    folder = tiny_folder(tmp_path, n_train)
    with pytest.raises(data.DatasetUnavailable, match="needs at least") as error:
        data.make_splits(data.load_dataset(str(folder)), 0.1)
    assert "least populated" not in str(error.value)


def test_many_classes_in_few_images_is_one_short_message(tmp_path):
    labels = np.arange(200) % 250
    folder = tmp_path / "many" / "raw"
    folder.mkdir(parents=True)
    images = np.zeros((200, 28, 28), np.uint8)
    (tmp_path / "many" / "classes.txt").write_text("\n".join(f"c{i}" for i in range(250)))
    for name, array in zip(data.IDX_FILES, (images, labels, images, labels)):
        write_idx(folder / name, array.astype(np.uint8))
    with pytest.raises(data.DatasetUnavailable, match="needs at least") as error:
        data.make_splits(data.load_dataset(str(folder.parent)), 0.1)
    assert len(str(error.value)) < 300


def test_an_over_long_folder_name_gives_a_run_id_that_fits(tmp_path):
    config = TrainConfig(dataset=str(tmp_path / ("k" * 240)), arch="mlp")
    run_id = runs.new_run_id(config)
    assert len(run_id.encode()) <= 100 and "kkkk" in run_id
    odd = runs.new_run_id(TrainConfig(dataset=str(tmp_path / "a\nb c"), arch="mlp"))
    assert "\n" not in odd and " " not in odd


# ---------------------------------------------------------------------------------------------
# Silent wrong answers


def test_int8_weights_are_refused_not_loaded_as_a_model_that_answers_zero(trained_run):
    from safetensors.torch import load_file, save_file
    path = trained_run.path / runs.WEIGHTS
    state = load_file(path)
    save_file({name: t.to(torch.int8) if t.is_floating_point() else t for name, t in state.items()}, path)
    with pytest.raises(runs.CheckpointError, match="int8"):
        runs.load_model(trained_run)
    save_file({name: t.to(torch.bfloat16) if t.is_floating_point() else t for name, t in state.items()}, path)
    assert runs.load_model(trained_run) is not None                      # half precision is fine


def test_a_newline_in_a_run_folder_name_cannot_forge_a_line_of_list(tmp_path, capsys):
    path = _record_in(tmp_path)
    path.rename(path.with_name("evil\n[shipped] forged-run: finished"))
    assert cli.main(["list", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert not any(line.startswith("[shipped] forged") for line in out.splitlines())
    assert "evil\\n[shipped] forged-run" in out


def test_a_runs_folder_that_is_a_file_or_too_long_is_an_error_not_an_empty_list(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    for bad in (tmp_path / "file", tmp_path / ("x" * 300)):
        assert cli.main(["list", "--runs-dir", str(bad)]) == 2
        assert "runs folder" in capsys.readouterr().err
        found, problems = runs.scan_runs(bad)
        assert found == [] and "runs folder" in problems[0]


def test_an_empty_runs_dir_never_means_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--runs-dir", "", "--dataset", "mnist"])
    assert exit_.value.code == 2
    monkeypatch.setenv("KMNIST_RUNS_DIR", "")
    assert runs.default_runs_dir() == Path("checkpoints")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_with_a_wrong_data_root_makes_no_folders(trained_run, runs_dir, tmp_path, capsys):
    wrong = tmp_path / "typo" / "data"
    assert cli.main(["evaluate", trained_run.id, "--runs-dir", str(runs_dir), "--data-root", str(wrong)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def _training(tiny_config, runs_dir, on_first_epoch, epochs: int = 3):
    """Train tiny_config, calling on_first_epoch(run path) when the first epoch has been saved."""
    from kmnist_core import training
    seen = []

    def on_event(event):
        if isinstance(event, training.RunStarted):
            seen.append(Path(event.path))
        elif isinstance(event, training.Epoch) and event.record.epoch == 1:
            on_first_epoch(seen[0])

    config = TrainConfig(**{**tiny_config.__dict__, "epochs": epochs})
    return training.train(config, on_event=on_event, runs_dir=runs_dir)


def test_a_run_deleted_while_training_stays_deleted_and_its_job_ends_deleted(tiny_config, runs_dir):
    from kmnist_core import jobs

    def executor(config, on_event, stop, runs_dir):
        return _training(config, runs_dir, lambda path: shutil.rmtree(path))

    manager = jobs.JobManager(runs_dir, executor=executor)
    job = manager.submit(tiny_config)
    assert manager.wait(job, timeout=120)
    assert job.snapshot().status == "deleted", job.snapshot().message
    assert list(runs_dir.iterdir()) == []


def test_renaming_a_run_while_it_trains_survives_the_next_save(tiny_config, runs_dir):
    run = _training(tiny_config, runs_dir, lambda path: runs.rename_run(runs.load_run(path), "my first model"))
    assert run.status == "finished"
    assert runs.load_run(run.path).name == "my first model"


def test_a_killed_servers_run_is_not_still_training_when_its_pid_is_reused(tmp_path):
    import socket
    record = _record()
    record.status, record.host, record.pid = "running", socket.gethostname(), os.getpid()
    record.process_start = "1"   # this pid, but a process that started long before this one
    path = tmp_path / "runs" / "pid-reused"
    path.mkdir(parents=True)
    runs.write_record(path / runs.RECORD, record)
    run = runs.load_run(path)
    assert run.status == "interrupted"
    record.process_start = runs.process_start(os.getpid())
    runs.write_record(path / runs.RECORD, record)
    assert runs.load_run(path).status == "running"                  # the same process: still training


def test_a_run_of_a_dead_process_can_be_marked_interrupted(tmp_path):
    import socket
    record = _record()
    record.status, record.host, record.pid = "running", "another-host", 1   # no start time recorded
    path = tmp_path / "runs" / "old"
    path.mkdir(parents=True)
    runs.write_record(path / runs.RECORD, record)
    run = runs.load_run(path)
    runs.mark_interrupted(run)
    again = runs.load_run(path)
    assert again.status == "interrupted" and again.record.status == "interrupted" and "marked" in again.reason
    record.host, record.pid, record.process_start = socket.gethostname(), os.getpid(), runs.process_start(os.getpid())
    runs.write_record(path / runs.RECORD, record)
    with pytest.raises(runs.CheckpointError, match="still training"):
        runs.mark_interrupted(runs.load_run(path))


def test_a_half_created_run_is_invisible_to_scans(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    done, problems = threading.Event(), []

    def scan():
        while not done.is_set():
            problems.extend(runs.scan_runs(runs_dir)[1])

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        for _ in range(60):
            runs.create_run(_record(), runs_dir)
    finally:
        done.set()
        scanner.join()
    assert problems == []
    assert len(runs.scan_runs(runs_dir)[0]) == 60


def test_predict_goes_on_past_an_unreadable_image_and_fails_at_the_end(trained_run, runs_dir, tmp_path, capsys):
    broken, good = tmp_path / "broken.png", tmp_path / "good.png"
    broken.write_bytes(b"not a picture")
    picture = np.zeros((100, 100), np.uint8)
    picture[20:80, 45:55] = 255
    good.write_bytes(png_bytes(picture))
    assert cli.main(["predict", trained_run.id, str(broken), str(good), "--runs-dir", str(runs_dir)]) == 2
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and f"{good}:" in captured.out


def test_an_allow_list_of_data_folders_gives_one_message_for_anything_outside_or_not_a_dataset(
        tmp_path, monkeypatch):
    offered = tmp_path / "class-data"
    good = write_dataset(offered / "kana", n_train=60, n_test=20)
    (offered / "notes").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("KMNIST_DATA_FOLDERS", f"{offered}:{tmp_path / 'elsewhere'}")
    assert data.dataset_info(str(good)).num_classes == 10
    messages = set()
    for name in (tmp_path / "secret", tmp_path / "missing", tmp_path / "a-file", offered / "notes",
                 offered / "missing", offered / ".." / "secret"):
        with pytest.raises(data.DatasetUnavailable) as error:
            data.dataset_info(str(name))
        messages.add(str(error.value).replace(str(name), "NAME"))
    assert len(messages) == 1 and "not one of the dataset folders this server offers" in messages.pop()
    assert not data.is_available(str(tmp_path / "secret"))


# ---------------------------------------------------------------------------------------------
# Pages


def test_train_an_out_of_range_number_disables_start_and_says_why_beside_the_field(app_env):
    from conftest import open_page
    at = open_page("pages/train.py")
    for key, value in (("train_epochs", 0), ("train_epochs", 99999), ("train_batch_size", 100000),
                       ("train_lr", 1000.0), ("train_width", 50.0)):
        at = open_page("pages/train.py")
        at.number_input(key=key).set_value(value).run()
        assert not at.exception
        assert at.button(key="train_start").disabled, key
        label = at.number_input(key=key).label
        assert any(label in e.value and "between" in e.value for e in at.error), (key, [e.value for e in at.error])


def test_train_an_own_folder_that_is_missing_or_a_file_says_so(app_env, tmp_path):
    from conftest import open_page
    (tmp_path / "a-file").write_text("x")
    for folder, said in ((tmp_path / "missing", "does not exist"), (tmp_path / "a-file", "is a file")):
        at = open_page("pages/train.py")
        at.selectbox(key="train_dataset").set_value("own").run()
        at.text_input(key="train_folder").set_value(str(folder))
        at.button(key="train_start").click().run()
        assert not at.exception
        assert any(said in e.value for e in at.error), [e.value for e in at.error]
        assert not any("Unknown dataset" in e.value for e in at.error)


def test_train_a_folder_of_more_classes_than_images_says_what_it_needs(app_env, tmp_path):
    from conftest import open_page
    raw = tmp_path / "many" / "raw"
    raw.mkdir(parents=True)
    labels, images = (np.arange(200) % 250).astype(np.uint8), np.zeros((200, 28, 28), np.uint8)
    (tmp_path / "many" / "classes.txt").write_text("\n".join(f"c{i}" for i in range(250)))
    for name, array in zip(data.IDX_FILES, (images, labels, images, labels)):
        write_idx(raw / name, array)
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").set_value("own").run()
    at.text_input(key="train_folder").set_value(str(tmp_path / "many"))
    at.button(key="train_start").click().run()
    assert not at.exception and not at.exception
    assert any("needs at least" in e.value for e in at.error), [e.value for e in at.error]
    from pages.helpers.background_jobs import job_manager
    assert job_manager().jobs() == []


def test_sweep_a_folder_of_garbage_files_or_an_unknown_user_is_refused_before_it_starts(app_env, tmp_path):
    from conftest import open_page
    folder = write_dataset(tmp_path / "garbage", n_train=50, n_test=20)
    (folder / "raw" / "train-images-idx3-ubyte").write_bytes(os.urandom(5000))
    at = open_page("pages/sweep.py")
    for typed, said in ((str(folder), "train-images-idx3-ubyte"), ("~nosuchuser-kmnist/kana", "does not exist")):
        at.text_input(key="sweep_folder").set_value(typed).run()
        assert not at.exception
        assert any(said in e.value for e in at.error), [e.value for e in at.error]
        assert not any(b.key == "start_sweep" for b in at.button)


def test_draw_upload_says_its_limit_in_words(app_env, trained_run):
    from conftest import open_page
    at = open_page("pages/draw.py")
    at.radio(key="draw_source").set_value("📷 Upload a photo").run()
    uploader = at.get("file_uploader")[0].proto
    assert "10 MB" in uploader.label + uploader.help
    assert any("10 MB" in i.value for i in at.info)
