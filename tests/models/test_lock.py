"""The models folder's lock between instances: one holder; a dead holder's lock taken over; a holder that lost
it knows."""

from __future__ import annotations

from pathlib import Path

from agent.models.lock import FolderLock


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = FolderLock(tmp_path / "m.lock"), FolderLock(tmp_path / "m.lock")
    assert first.try_acquire() and first.holds()
    assert not second.try_acquire() and not second.holds()
    first.release()
    assert second.try_acquire() and second.holds()
    first.release()  # not its lock any more: the holder's stays
    assert second.holds()


def test_a_lock_left_unchanged_is_taken_over_and_its_old_holder_learns_it(tmp_path: Path) -> None:
    dead, waiter = FolderLock(tmp_path / "m.lock"), FolderLock(tmp_path / "m.lock", stale=0.0)
    assert dead.try_acquire()
    assert not waiter.try_acquire()  # first sight of it: its age is counted from here
    assert waiter.try_acquire()
    assert waiter.holds() and not dead.holds()
    assert not dead.beat() and waiter.beat()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.lock"]


def test_a_beating_holder_is_not_taken_over(tmp_path: Path) -> None:
    holder, waiter = FolderLock(tmp_path / "m.lock"), FolderLock(tmp_path / "m.lock", stale=3600)
    assert holder.try_acquire()
    for _ in range(3):
        assert not waiter.try_acquire()
        assert holder.beat()
    assert holder.holds()


def test_a_takeover_that_moved_a_newer_lock_puts_it_back(tmp_path: Path) -> None:
    """Two waiters judged the same dead lock: the slower one's rename moves the faster one's new lock, sees a
    token it did not judge, and puts it back."""
    path = tmp_path / "m.lock"
    dead, fast, slow = FolderLock(path), FolderLock(path, stale=0.0), FolderLock(path, stale=0.0)
    assert dead.try_acquire()
    assert not fast.try_acquire() and not slow.try_acquire()  # both have seen the dead lock
    assert fast.try_acquire()
    slow._seen = (path.stat().st_mtime_ns, dead.token)  # as slow judged it before fast took it
    slow._take_over()
    assert fast.holds() and not slow.holds()
