"""A minimal Linux inotify binding over ctypes, enough to watch a couple of directories.

Only what the config watcher needs: add and remove watches, and wait for events with a timeout
on the inotify descriptor plus one wake-up descriptor (so a stop is immediate). On systems
without inotify, `Inotify()` raises `InotifyUnavailable` and the watcher polls instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
from dataclasses import dataclass

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT_HEADER = struct.Struct("iIII")
_READ_SIZE = 64 * 1024


class InotifyUnavailable(OSError):
    """inotify cannot be used here (not Linux, no libc symbol, or a kernel limit reached)."""


@dataclass(frozen=True)
class Event:
    """One inotify event: the watch it belongs to, its mask, and the entry name (may be empty)."""

    wd: int
    mask: int
    cookie: int
    name: str


def _load_libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    if name is None:
        raise InotifyUnavailable("no C library found")
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        raise InotifyUnavailable("the C library has no inotify")
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


class Inotify:
    """One inotify instance; `wait(timeout, wake_fd)` returns the events that arrived."""

    def __init__(self) -> None:
        self._libc = _load_libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise InotifyUnavailable(code, f"inotify_init1 failed: {os.strerror(code)}")
        self._fd: int = fd

    def fileno(self) -> int:
        return self._fd

    def add_watch(self, path: str | os.PathLike[str], mask: int) -> int:
        """Watch `path`; raises `FileNotFoundError` when it does not exist."""
        wd: int = self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), os.fspath(path))
        return wd

    def remove_watch(self, wd: int) -> None:
        # A watch whose directory is gone was already removed by the kernel (EINVAL): fine.
        self._libc.inotify_rm_watch(self._fd, wd)

    def wait(self, timeout_seconds: float, wake_fd: int | None = None) -> list[Event]:
        """Events that arrive within `timeout_seconds`; empty on timeout or when woken."""
        watched = [self._fd] if wake_fd is None else [self._fd, wake_fd]
        ready, _, _ = select.select(watched, [], [], timeout_seconds)
        if self._fd not in ready:
            return []
        return self.read_pending()

    def read_pending(self) -> list[Event]:
        """Every event queued now, without blocking."""
        events: list[Event] = []
        while True:
            try:
                buffer = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return events
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                raise
            events.extend(_parse(buffer))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _parse(buffer: bytes) -> list[Event]:
    events = []
    offset = 0
    while offset + _EVENT_HEADER.size <= len(buffer):
        wd, mask, cookie, length = _EVENT_HEADER.unpack_from(buffer, offset)
        offset += _EVENT_HEADER.size
        raw = buffer[offset : offset + length].rstrip(b"\0")
        offset += length
        events.append(Event(wd, mask, cookie, os.fsdecode(raw)))
    return events
