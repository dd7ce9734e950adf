"""Faults without loss: full and read-only disks, a damaged disk cache, self-contradicting data, two writers.

Faults are real where the machine allows them: a 2 MiB tmpfs is a full disk and a read-only tmpfs is a
read-only disk (both need root to mount; without root those tests are skipped and the monkeypatched
variants still run), two processes contend for a run lock, and a holder killed with SIGKILL frees it.
Every refused write must leave one line ``PATH: cannot ... (what happened); what to do``, no temp file and
the previous file unchanged.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.checkpoint import BackgroundSaver, save_checkpoint
from fcnlab.cli.main import main
from fcnlab.data import cache
from fcnlab.data.cache import load_or_build
from fcnlab.data.classification import load_image_set, read_label_csv, scan_folder
from fcnlab.data.images import list_images, read_rgb
from fcnlab.data.mask_codec import write_mask
from fcnlab.data.segmentation import load_tile_set
from fcnlab.errors import DataError, OutputError
from fcnlab.runtime.files import atomic_save, atomic_write_bytes, atomic_write_text
from fcnlab.runtime.lock import RunLock, RunLocked, lock_holder

SRC = str(Path(__file__).resolve().parents[1] / "src")


# ------------------------------------------------------------------------------------------ real faults
def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full or read-only disk) needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture()
def full_disk(tmp_path: Path):
    """A real 2 MiB disk (tmpfs): files over 2 MiB, or anything once :func:`fill` ran, meet ENOSPC."""
    folder = tmp_path / "full"
    _mount(folder, "size=2m")
    yield folder
    _umount(folder)


def fill(folder: Path) -> None:
    """Take every free block of ``folder``'s disk."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.fixture()
def read_only_disk(tmp_path: Path):
    """A real read-only disk holding ``old.png`` and ``last.pt``: mounted writable, filled, remounted read-only."""
    folder = tmp_path / "ro"
    _mount(folder, "size=4m")
    (folder / "old.png").write_bytes(b"old")
    save_checkpoint(folder / "last.pt", task="classify", weights=torch.arange(4))
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    yield folder
    _umount(folder)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


WRITERS = {
    "text": lambda p: atomic_write_text(p, "x" * 3_000_000),
    "bytes": lambda p: atomic_write_bytes(p, b"x" * 3_000_000),
    "save": lambda p: atomic_save(p, lambda tmp: tmp.write_bytes(b"x" * 3_000_000)),
    "checkpoint": lambda p: save_checkpoint(p, task="classify", weights=torch.zeros(800_000)),
    "mask": lambda p: write_mask(p, np.random.default_rng(0).integers(0, 7, (1200, 1200), dtype=np.uint8)),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_full_disk_is_one_line_and_keeps_the_previous_file(full_disk, writer):
    target = full_disk / ("out.png" if writer == "mask" else "out.bin")
    target.write_bytes(b"previous")
    if writer in ("text", "mask"):  # the others meet the 2 MiB limit half way through
        fill(full_disk)
    with pytest.raises(OutputError) as e:
        WRITERS[writer](target)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{target}: cannot ")
    assert "(the disk is full); free disk space or write elsewhere" in line
    assert "the previous out." in line
    assert target.read_bytes() == b"previous"
    assert set(_names(full_disk)) <= {target.name, "filler"}  # no temp file left


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_read_only_disk_is_one_line_and_keeps_the_previous_file(read_only_disk, writer):
    target = read_only_disk / ("old.png" if writer == "mask" else "last.pt")
    before = target.read_bytes()
    with pytest.raises(OutputError) as e:
        WRITERS[writer](target)
    assert str(e.value).startswith(f"{target}: cannot ") and "(the file system is read-only); write elsewhere" in str(
        e.value
    )
    assert target.read_bytes() == before
    with pytest.raises(OutputError, match="read-only"):  # a new file in a new folder on it
        atomic_write_text(read_only_disk / "new" / "a.txt", "a")


def test_a_write_fault_without_mounts_is_the_same_line(tmp_path, monkeypatch):
    """The same contract where no tmpfs can be mounted: ENOSPC injected into the write."""
    import fcnlab.runtime.files as atomic

    target = tmp_path / "report.html"
    target.write_text("previous")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(OutputError, match=r"report.html: cannot write \(the disk is full\); free disk space"):
        atomic_write_text(target, "new")
    assert target.read_text() == "previous" and _names(tmp_path) == ["report.html"]


def test_a_read_error_inside_a_write_keeps_its_own_message(tmp_path):
    """Only faults of the written file are reworded: reading some other file keeps the OS's error."""
    missing = tmp_path / "input.txt"
    with pytest.raises(FileNotFoundError):
        atomic_save(tmp_path / "out.txt", lambda tmp: tmp.write_text(missing.read_text()))
    assert _names(tmp_path) == []


def test_the_background_saver_reports_a_full_disk_without_waiting(full_disk):
    saver = BackgroundSaver()
    saver.submit(full_disk / "last.pt", {"task": "classify", "weights": torch.arange(3)})
    saver.wait()
    saver.submit(full_disk / "last.pt", {"task": "classify", "weights": torch.zeros(800_000)})
    saver._thread.join()  # the write has failed; check() must raise now, not at the next submit
    with pytest.raises(OutputError, match=r"last.pt: cannot write the checkpoint \(the disk is full\)"):
        saver.check()
    saver.check()  # raised once
    assert torch.load(full_disk / "last.pt", weights_only=True)["weights"].tolist() == [0, 1, 2]
    assert _names(full_disk) == ["last.pt"]


def _labelled_images(folder: Path, n: int = 4, size: int = 8, first_size: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        s = first_size if (i == 0 and first_size) else size
        path = folder / f"{i % 2}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_cli_output_on_a_full_disk_is_one_line_naming_the_file(full_disk, tmp_path, capsys):
    from fcnlab.config import from_dict
    from fcnlab.models import build_model

    images = tmp_path / "imgs"
    _labelled_images(images, n=2, size=32)
    ckpt = tmp_path / "model.pt"
    config = from_dict({"task": "classify", "model": "resnet18", "num_classes": 2, "device": "cpu"})
    save_checkpoint(
        ckpt,
        task="classify",
        model_name="resnet18",
        num_classes=2,
        model=build_model("resnet18", 2).state_dict(),
        config=config.to_dict(),
        epoch=0,
    )
    fill(full_disk)
    out = full_disk / "pred.csv"
    code = main(
        [
            "classify",
            "predict",
            "--ckpt",
            str(ckpt),
            "--images",
            str(images),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--workers",
            "0",
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"fcnlab: error: {out}: cannot write (the disk is full); free disk space")
    assert _names(full_disk) == ["filler"]


# ------------------------------------------------------------------------------------------ disk cache
def _decode(files: list[Path]):
    calls = []

    def decode(i: int) -> dict[str, np.ndarray]:
        calls.append(i)
        return {"images": read_rgb(files[i]).transpose(2, 0, 1)}

    return decode, calls


def _build(files: list[Path]) -> tuple[dict[str, np.ndarray], list[int]]:
    decode, calls = _decode(files)
    return load_or_build("test", files, {"images": (len(files), 3, 8, 8)}, decode, mode="disk"), calls


def _truncate(folder: Path) -> None:
    path = folder / "images.npy"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 10)


def _drop_marker(folder: Path) -> None:
    (folder / cache.MARKER).unlink()


def _other_shape(folder: Path) -> None:
    meta = json.loads((folder / cache.MARKER).read_text())
    meta["shapes"]["images"][1] = 1
    (folder / cache.MARKER).write_text(json.dumps(meta))


def _foreign_array(folder: Path) -> None:
    np.save(folder / "images.npy", np.zeros((4, 3, 8, 8), dtype=np.float32))


def _garbage_marker(folder: Path) -> None:
    (folder / cache.MARKER).write_text("{not json")


def _zeros_in_place(folder: Path) -> None:
    """A bad sector or another program: pixels overwritten at the same size, header and marker intact."""
    path = folder / "images.npy"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size - 100)
        f.write(b"\0" * 100)
    assert path.stat().st_size == size


def _marker_without_checksums(folder: Path) -> None:
    """A cache built before content checksums: nothing vouches for its content."""
    meta = json.loads((folder / cache.MARKER).read_text())
    del meta["checksums"]
    (folder / cache.MARKER).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _drop_marker,
        _other_shape,
        _foreign_array,
        _garbage_marker,
        _zeros_in_place,
        _marker_without_checksums,
    ],
)
def test_a_damaged_disk_cache_is_rebuilt_with_a_notice(tmp_path, damage, capsys):
    files = _labelled_images(tmp_path / "imgs")
    first, calls = _build(files)
    expected = np.array(first["images"])
    del first
    assert len(calls) == 4 and capsys.readouterr().err == ""
    (folder,) = [p for p in Path(os.environ["FCNLAB_CACHE"]).iterdir()]
    damage(folder)
    again, calls = _build(files)
    assert len(calls) == 4  # decoded again
    assert np.array_equal(np.asarray(again["images"]), expected)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"fcnlab: disk cache {folder} is damaged (")
    assert err[0].endswith("); rebuilding it")
    if damage is _zeros_in_place:
        assert "images.npy: content changed in bytes 0-16777215, which no longer match their checksum" in err[0]
    third, calls = _build(files)
    assert calls == [] and capsys.readouterr().err == ""  # the rebuilt cache is trusted
    assert _names(folder.parent) == [folder.name]


def test_a_full_disk_while_building_the_cache_is_one_line_and_leaves_nothing(full_disk, tmp_path, monkeypatch):
    """Before: the memory-mapped writes died of SIGBUS with no message and left a partial cache."""
    monkeypatch.setenv("FCNLAB_CACHE", str(full_disk / "cache"))
    files = _labelled_images(tmp_path / "imgs")
    decode, calls = _decode(files)
    with pytest.raises(OutputError) as e:
        load_or_build("test", files, {"images": (80, 3, 128, 128)}, decode, mode="disk")  # 3.8 MiB
    line = str(e.value)
    assert line.startswith(str(full_disk / "cache")) and "cannot build the disk cache (the disk is full)" in line
    assert "set FCNLAB_CACHE to another disk, or use --cache memory" in line
    assert calls == [] and _names(full_disk / "cache") == []  # refused before decoding, nothing left
    monkeypatch.setenv("FCNLAB_CACHE", str(tmp_path / "roomy"))
    assert _build(files)[1] == [0, 1, 2, 3]


def test_a_read_only_cache_folder_is_one_line(read_only_disk, tmp_path, monkeypatch):
    monkeypatch.setenv("FCNLAB_CACHE", str(read_only_disk))
    files = _labelled_images(tmp_path / "imgs")
    with pytest.raises(
        OutputError,
        match=r"cannot build the disk cache \(the file system is read-only\); .*"
        r"FCNLAB_CACHE",
    ):
        _build(files)


# ------------------------------------------------------------------------------- data that contradicts itself
def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("filename,label\n" + "\n".join(rows) + "\n")
    return path


def test_a_file_listed_twice_with_two_labels_is_refused_naming_both_lines(tmp_path):
    folder = tmp_path / "imgs"
    _labelled_images(folder)
    csv_path = _csv(tmp_path, ["0_0.png,0", "1_1.png,1", "0_2.png,0", "1_1.png,3"])
    with pytest.raises(DataError) as e:
        read_label_csv(csv_path, folder)
    assert str(e.value).startswith(f"{csv_path}:5: gives 1_1.png label 3, but line 3 gives it label 1; ")


def test_the_same_row_twice_is_accepted_once(tmp_path):
    folder = tmp_path / "imgs"
    _labelled_images(folder)
    csv_path = _csv(tmp_path, ["0_0.png,0", "1_1.png,1", "1_1.png,1"])
    assert read_label_csv(csv_path, folder) == {"0_0.png": 0, "1_1.png": 1}


def test_a_missing_csv_row_is_blamed_on_the_csv(tmp_path):
    folder = tmp_path / "imgs"
    _labelled_images(folder, n=2)
    Image.new("RGB", (8, 8)).save(folder / "unnamed.png")
    csv_path = _csv(tmp_path, ["0_0.png,0", "1_1.png,1"])
    with pytest.raises(DataError) as e:
        scan_folder(folder, csv_path=csv_path)
    assert str(e.value).startswith(f"{csv_path}: has no row for unnamed.png (in {folder})")
    assert "add a row 'unnamed.png,LABEL'" in str(e.value)


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_an_odd_sized_first_image_is_blamed_not_the_others(tmp_path, mode):
    folder = tmp_path / "imgs"
    files = _labelled_images(folder, n=5, size=8, first_size=12)
    with pytest.raises(DataError) as e:
        load_image_set(folder, cache=mode)
    assert str(e.value).startswith(f"{files[0]}: image is 12x12, but 4 of the 5 images are 8x8; ")
    assert not (tmp_path / "cache").exists() or _names(tmp_path / "cache") == []  # no cache of refused data


def test_an_odd_sized_later_image_is_blamed(tmp_path):
    folder = tmp_path / "imgs"
    files = _labelled_images(folder, n=5, size=8)
    Image.new("RGB", (9, 8)).save(files[3])
    with pytest.raises(DataError, match=rf"^{files[3]}: image is 9x8, but 4 of the 5 images are 8x8; "):
        load_image_set(folder, cache="memory")


def test_an_odd_sized_first_tile_is_blamed_not_the_others(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    for i, size in enumerate((24, 16, 16)):
        Image.new("RGB", (size, size), (0, 255, 255)).save(folder / f"{i:04d}_sat.jpg")
        Image.new("RGB", (size, size), (0, 255, 255)).save(folder / f"{i:04d}_mask.png")
    with pytest.raises(
        DataError,
        match=rf"^{folder / '0000_sat.jpg'}: tile is 24x24, but 2 of the 3 tiles are "
        rf"16x16; ",
    ):
        load_tile_set(folder, cache="memory")


def test_link_loops_and_broken_links_get_a_line_with_the_fix(tmp_path, capsys):
    loop, broken = tmp_path / "loop", tmp_path / "broken"
    loop.symlink_to(loop)
    broken.symlink_to(tmp_path / "gone")
    with pytest.raises(DataError, match=rf"^{loop}: is a symbolic link loop .*ln -sfn TARGET {loop}"):
        list_images(loop)
    with pytest.raises(
        DataError,
        match=rf"^{broken}: is a broken symbolic link to {tmp_path / 'gone'}, which "
        rf"does not exist; repoint it \(ln -sfn TARGET {broken}\)",
    ):
        list_images(broken)
    # inside a data folder: a looping and a broken image link are each named with the fix
    folder = tmp_path / "imgs"
    _labelled_images(folder, n=2)
    (folder / "1_7.png").symlink_to(folder / "1_7.png")
    with pytest.raises(DataError, match=r"1_7.png: is a symbolic link loop"):
        load_image_set(folder, cache="memory")
    (folder / "1_7.png").unlink()
    (folder / "1_8.png").symlink_to(tmp_path / "moved.png")
    with pytest.raises(DataError, match=r"1_8.png: is a broken symbolic link to .*moved.png"):
        load_image_set(folder, cache="memory")
    # a label CSV and a checkpoint behind a looping link
    with pytest.raises(DataError, match=rf"^{loop}: is a symbolic link loop"):
        read_label_csv(loop, folder)
    from fcnlab.checkpoint import load_checkpoint

    with pytest.raises(DataError, match=rf"^{broken}: is a broken symbolic link"):
        load_checkpoint(broken)
    # the command line: --data that is a loop was a RuntimeError traceback from Path.resolve
    code = main(
        [
            "classify",
            "train",
            "--data",
            str(loop),
            "--val",
            str(loop),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"fcnlab: error: {loop}: is a symbolic link loop")


# ------------------------------------------------------------------------------------------ run lock
_HOLDER = """
import sys, time
from fcnlab.runtime.lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()  # hold until told (or killed)
"""


def _holder(run: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _holder(run)
    try:
        assert lock_holder(run) == holder.pid
        with pytest.raises(RunLocked) as e:
            RunLock(run, what="resume").acquire()
        line = str(e.value)
        assert f"PID {holder.pid}" in line and "cannot resume it while that process runs" in line
        assert "delete" not in line and "remove" not in line  # a live run is never to be deleted
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock").exists() and lock_holder(run) is None  # the file stays, the lock is free (stale)
    with RunLock(run) as lock:
        assert lock.held and (run / ".lock").read_text().strip() == str(os.getpid())
        assert lock_holder(run) == os.getpid()
    assert lock_holder(run) is None and not (run / ".lock").exists()  # a normal release removes the file


def test_a_lock_is_released_on_normal_exit_and_taken_once_per_process(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _holder(run)
    holder.communicate("done\n")
    assert holder.returncode == 0 and lock_holder(run) is None
    lock = RunLock(run).acquire()
    assert lock.acquire() is lock  # taking it twice in one object is a no-op
    lock.release()
    lock.release()
    assert not lock.held


def test_a_lock_in_a_folder_that_cannot_hold_it_is_one_line(read_only_disk):
    with pytest.raises(OutputError, match=r"\.lock: cannot create the run lock \(Read-only file system\)"):
        RunLock(read_only_disk).acquire()
