"""A lock that holds across every instance sharing the models folder, so a model is downloaded once.

Written by hand because no library does this on a NAS: `flock`/`fcntl` locks are not reliable across NFS
clients (FC's NAS is NFS) and die with nothing to resume, and a lock in the task store would not be where the
file is. Creating a file with O_EXCL is atomic on NFS v3 and later. The holder touches it every `heartbeat`
seconds; a waiter that sees its modification time unchanged for `stale` seconds of its own clock (so no two
machines' clocks are compared) takes it over: it renames the lock aside (only one rename succeeds), checks it
moved the lock it judged and not a newer one, and creates its own. A holder that finds its token gone (it was
frozen, then thawed) stops writing.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

HEARTBEAT = 2.0
STALE = 30.0  # seconds unchanged: far above a heartbeat, so only a killed or frozen holder's lock looks stale


class FolderLock:
    def __init__(self, path: Path, *, stale: float = STALE) -> None:
        self.path = path
        self.stale = stale
        self.token = uuid.uuid4().hex
        self._seen: tuple[int, str] | None = None  # the other holder's lock: its mtime and token
        self._seen_since = 0.0

    def try_acquire(self) -> bool:
        """Take the lock if it is free or its holder is gone; blocking file work, for a worker thread."""
        if self._create():
            return True
        if self._holder_gone():
            self._take_over()
            return self._create()
        return False

    def _create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as file:
            file.write(self.token)
        return True

    def _holder_gone(self) -> bool:
        """Whether the lock stayed as it is (mtime and token) for `stale` seconds of this instance's clock."""
        try:
            state = (self.path.stat().st_mtime_ns, self.path.read_text())
        except FileNotFoundError:
            return True
        now = time.monotonic()
        if state != self._seen:
            self._seen, self._seen_since = state, now
            return False
        return now - self._seen_since >= self.stale

    def _take_over(self) -> None:
        aside = self.path.with_name(f"{self.path.name}.{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # released, or taken over by another waiter
        with contextlib.suppress(FileNotFoundError):
            if self._seen is not None and aside.read_text() != self._seen[1]:  # a new holder's: put it back
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
            aside.unlink()
        self._seen = None

    def holds(self) -> bool:
        try:
            return self.path.read_text() == self.token
        except FileNotFoundError:
            return False

    def beat(self) -> bool:
        """Touch the lock while holding it; False once it is no longer this holder's."""
        if not self.holds():
            return False
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)
        return True

    def release(self) -> None:
        if self.holds():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
