"""A content-addressed cache for the stages every run shares (SFT, preference data, reward model).

An entry is a directory `<root>/<stage>/<key>/` whose key is a hash of exactly the
config that determines it. Building is safe under parallel jobs: a file lock per
key, the build written to a temporary directory, a manifest of SHA-256 checksums,
then one atomic rename. Every read verifies the checksums; a corrupt entry is moved
aside with a warning that names it and built again, never used.

On a cluster the cache sits on a shared file system, where a file lock may hold only within one
machine (NFSv3 without a lock daemon; NFSv4 and Lustre do hold `fcntl` locks across clients). So
the lock only saves duplicate work; the rename is what publishes an entry. Two machines the lock
did not keep apart both build, the first rename wins, and the other finds the entry already there,
drops its own build and reads the winner's, so every run of a sweep reads one and the same entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class CorruptEntry(RuntimeError):
    pass


def stage_key(spec: dict) -> str:
    """Hash of the JSON of a stage's determining config (key order does not matter)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def content_digest(manifest: dict) -> str:
    """One digest of a built entry's files (their SHA-256 checksums): two builds of one key that computed the
    same weights and data have the same, whichever machine or session built them."""
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def verify(entry: Path) -> dict:
    """The entry's manifest, after checking every file against its recorded checksum."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CorruptEntry(f"{entry}: unreadable manifest ({e})") from e
    recorded = manifest["files"]
    present = {str(p.relative_to(entry)) for p in _files(entry)}
    if present != set(recorded):
        raise CorruptEntry(f"{entry}: files {sorted(present ^ set(recorded))} missing or unexpected")
    for name, sha in recorded.items():
        if _sha256(entry / name) != sha:
            raise CorruptEntry(f"{entry}: checksum mismatch in {name}")
    return manifest


@contextlib.contextmanager
def held_lock(path: Path, what: str):
    """The file lock at `path`, with who holds it written beside it (`<lock>.holder`: pid, host, since), so that a
    job waiting for another's build says whom it waits for instead of waiting silently."""
    lock, holder = FileLock(str(path)), path.with_name(path.name + ".holder")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            who = json.loads(holder.read_text())
            by = f"pid {who['pid']} on {who['host']} since {who['since']}"
        except (OSError, ValueError, KeyError):
            by = "another process"
        log.warning("waiting for %s: %s holds its lock %s (building it; if that process is gone, delete the lock)", what, by, path)
        lock.acquire()
    try:
        holder.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


class StageCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{uuid.uuid4().hex}"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise PermissionError(f"cache_dir {self.root} is not writable ({e.strerror}); set cache_dir=... to a writable directory") from e

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path], dict]) -> tuple[Path, dict]:
        """Return (entry directory, manifest), building the entry once if it is missing or corrupt.

        `build(tmp_dir)` writes the stage's files into `tmp_dir` and returns a dict of
        facts to keep in the manifest (its metrics, its FLOPs).
        """
        key = stage_key(spec)
        entry = self.root / stage / key
        entry.parent.mkdir(parents=True, exist_ok=True)
        with held_lock(Path(str(entry) + ".lock"), f"{stage} {key}"):
            if entry.exists():
                try:
                    manifest = verify(entry)
                    log.info("cache hit: %s %s (reusing %s)", stage, key, entry)
                    return entry, manifest
                except CorruptEntry as e:
                    aside = entry.with_name(f"{key}.corrupt-{int(time.time())}")
                    log.warning("corrupt cache entry, rebuilding it: %s; moved to %s", e, aside)
                    os.replace(entry, aside)
            log.info("cache miss: building %s %s", stage, key)
            tmp = entry.with_name(f".{key}.tmp-{uuid.uuid4().hex}")
            tmp.mkdir()
            try:
                started = time.perf_counter()
                info = build(tmp)
                # a line a sweep's log keeps (the progress bar is drawn only on a terminal)
                log.info("built %s %s in %.0f s", stage, key, time.perf_counter() - started)
                manifest = {
                    "stage": stage,
                    "key": key,
                    "spec": spec,
                    "info": info,
                    "files": {str(p.relative_to(tmp)): _sha256(p) for p in _files(tmp)},
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
                try:
                    os.replace(tmp, entry)
                except OSError:
                    if not entry.is_dir():
                        raise
                    log.warning("%s %s was built elsewhere meanwhile (a lock that does not hold across machines): reading that one", stage, key)
                    return entry, verify(entry)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return entry, manifest
