"""Store generations on disk: a rebuild fills a fresh directory or file, then swaps it in.

The configured path (``settings.analytics_path``, the CRM's SQLite file) becomes a
symbolic link naming the live generation, ``NAME.gens/<generation>`` beside it. Readers
and writers open the configured path, so they follow the link when they open; a swap
replaces the link atomically (``rename(2)`` of a new link over it). A path that is still
a plain directory or file (a store from before generations) is swapped with
``renameat2(RENAME_EXCHANGE)``, which exchanges the two names atomically, and the old
store becomes an ordinary generation to remove.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import time
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def generations_dir(path: Path) -> Path:
    return path.parent / f"{path.name}.gens"


def new_generation(path: Path, suffix: str = "") -> Path:
    """A fresh, not yet existing path for the next generation of ``path``."""
    folder = generations_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for n in range(1000):
        candidate = folder / f"g{stamp}-{n}{suffix}"
        if not candidate.exists():
            return candidate
    raise RuntimeError(f"no free generation name under {folder}")


def live_generation(path: Path) -> Path | None:
    """What ``path`` names now (the target of the link, or the plain store itself)."""
    if path.is_symlink():
        return path.parent / os.readlink(path)
    return path if path.exists() else None


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    result = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"renameat2 exchange {a} <-> {b}: {os.strerror(errno)}")


def swap_in(path: Path, generation: Path) -> Path | None:
    """Make ``path`` name ``generation`` in one atomic step; returns the generation it
    named before (None if it named nothing), now no longer reachable through ``path``."""
    link = path.parent / f".{path.name}.swap"
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(generation, path.parent))
    if path.is_symlink() or not path.exists():
        old = live_generation(path)
        os.replace(link, path)  # rename(2) over a link: atomic
        return old
    # A plain store: exchange it with the link, then park it as an old generation.
    _exchange(link, path)
    parked = new_generation(path, "-previous")
    os.rename(link, parked)
    return parked


def remove_generation(old: Path) -> None:
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink(missing_ok=True)
