"""Whether a folder is on a local disk: file work there runs on the event loop, elsewhere (a NAS) in threads.

A network file system may stall for seconds, which must not stop the event loop; a local disk answers in a
fraction of a millisecond, less than a thread hop costs under load.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "ramfs", "overlay",
                                "vfat", "exfat"})


def on_local_disk(directory: str, mounts: str = "/proc/mounts") -> bool:
    """Whether the folder's file system is a local one; anything unknown (NFS, SMB, FUSE, no /proc) is not."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return False
    path = os.path.realpath(directory)
    deepest, fs_type = "", ""
    for fields in map(str.split, lines):
        if len(fields) < 3:
            continue
        point, kind = fields[1], fields[2]
        # the deepest mount point holding the folder; of two on one point, the later one covers the earlier
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(deepest):
            deepest, fs_type = point, kind
    return fs_type in LOCAL_FILE_SYSTEMS
