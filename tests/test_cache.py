"""The stage cache: one build under concurrent jobs (also where the lock does not hold), corrupt entries detected and rebuilt."""

import logging
import multiprocessing as mp
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from bench.cache import CorruptEntry, StageCache, held_lock, stage_key, verify

SPEC = {"task": "running_sum", "seed": 0}


def _build(out: Path, counter: Path) -> dict:
    with counter.open("a") as f:
        f.write("built\n")
    time.sleep(1.0)  # long enough that the second job arrives while the first is building
    (out / "weights.bin").write_bytes(b"x" * 4096)
    (out / "sub").mkdir()
    (out / "sub" / "config.json").write_text("{}")
    return {"flops": 1.0}


def _job(root: str, counter: str, queue) -> None:
    entry, manifest = StageCache(root).get_or_build("sft", SPEC, lambda out: _build(out, Path(counter)))
    queue.put((str(entry), manifest["key"], (entry / "weights.bin").stat().st_size))


def test_two_processes_build_one_entry(tmp_path):
    counter = tmp_path / "builds.txt"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=_job, args=(str(tmp_path / "cache"), str(counter), queue)) for _ in range(2)]
    for j in jobs:
        j.start()
    results = [queue.get(timeout=120) for _ in jobs]
    for j in jobs:
        j.join(timeout=60)
        assert j.exitcode == 0
    assert counter.read_text().count("built") == 1
    assert results[0] == results[1]
    assert results[0][2] == 4096  # the reader saw the whole file, never a partial one
    entries = [p for p in (tmp_path / "cache" / "sft").iterdir() if not p.name.endswith(".lock")]
    assert [p.name for p in entries] == [stage_key(SPEC)]  # no temporary directory left behind


def test_a_lock_that_does_not_hold_across_machines_still_publishes_one_entry(tmp_path, monkeypatch, caplog):
    """NFS without a lock daemon: both builders get the "lock" and build at once; the first rename publishes, the
    other drops its build and both read the same entry."""
    class NoLock:  # what such a lock gives: every process "acquires" it at once
        def __init__(self, path): ...
        def acquire(self, timeout=None): ...
        def release(self): ...

    monkeypatch.setattr("bench.cache.FileLock", NoLock)
    both_building = threading.Barrier(2)

    def build(out: Path, who: str) -> dict:
        both_building.wait(timeout=30)
        (out / "weights.bin").write_text(who)
        if who == "second":
            time.sleep(0.5)  # publishes after the first
        return {"built_by": who}

    results = {}
    jobs = [threading.Thread(target=lambda w=w: results.update({w: StageCache(tmp_path).get_or_build("sft", SPEC, lambda out: build(out, w))}))
            for w in ("first", "second")]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        for j in jobs:
            j.start()
        for j in jobs:
            j.join(timeout=60)
    (entry_a, manifest_a), (entry_b, manifest_b) = results["first"], results["second"]
    assert entry_a == entry_b and manifest_a == manifest_b and manifest_b["info"] == {"built_by": "first"}
    assert (entry_b / "weights.bin").read_text() == "first"
    assert "built elsewhere meanwhile" in caplog.text
    assert [p.name for p in (tmp_path / "sft").iterdir() if not p.name.endswith(".lock")] == [stage_key(SPEC)]


def test_truncated_file_is_detected_and_rebuilt(tmp_path, caplog):
    cache, counter = StageCache(tmp_path), tmp_path / "builds.txt"
    entry, _ = cache.get_or_build("sft", SPEC, lambda out: _build(out, counter))
    weights = entry / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:100])  # a crash mid-copy, a full disk...
    with pytest.raises(CorruptEntry, match="checksum mismatch in weights.bin"):
        verify(entry)
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        again, _ = cache.get_or_build("sft", SPEC, lambda out: _build(out, counter))
    assert again == entry
    assert counter.read_text().count("built") == 2
    assert any(str(entry) in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert weights.stat().st_size == 4096
    assert len(list(tmp_path.glob("sft/*.corrupt-*"))) == 1  # kept aside for inspection, never read


def test_missing_file_is_detected(tmp_path):
    entry, _ = StageCache(tmp_path).get_or_build("sft", SPEC, lambda out: _build(out, tmp_path / "c"))
    (entry / "sub" / "config.json").unlink()
    with pytest.raises(CorruptEntry, match="missing or unexpected"):
        verify(entry)


def test_key_ignores_order_and_changes_with_values():
    assert stage_key({"a": 1, "b": 2}) == stage_key({"b": 2, "a": 1})
    assert stage_key({"a": 1, "b": 2}) != stage_key({"a": 1, "b": 3})


def test_unwritable_cache_dir_says_so(tmp_path):
    blocked = tmp_path / "ro"
    blocked.write_text("a file where a directory should be")
    with pytest.raises(PermissionError, match="not writable"):
        StageCache(blocked / "cache")


def test_a_job_waiting_for_a_held_stage_lock_says_who_holds_it_and_since_when(tmp_path, caplog):
    """Another job is building the stage (it holds the lock for a second); this one says whom it waits for, then
    reads the entry that job built instead of waiting silently."""
    entry_lock = tmp_path / "sft" / f"{stage_key(SPEC)}.lock"
    entry_lock.parent.mkdir(parents=True)
    holding, done = threading.Event(), threading.Event()

    def other_job():
        with held_lock(entry_lock, "sft"):
            holding.set()
            done.wait(timeout=1.0)

    job = threading.Thread(target=other_job)
    job.start()
    holding.wait(timeout=30)
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        StageCache(tmp_path).get_or_build("sft", SPEC, lambda out: _build(out, tmp_path / "builds.txt"))
    job.join(timeout=30)
    assert f"waiting for sft {stage_key(SPEC)}: pid {os.getpid()} on {socket.gethostname()} since " in caplog.text
    assert not entry_lock.with_name(entry_lock.name + ".holder").exists()  # released with the lock
