"""Is a stream a person's terminal? `isatty()` is not enough on Windows, where NUL (what a
service, a scheduled task or `< NUL` gives a process) is a character device and so a "tty"."""

from __future__ import annotations

import sys
from typing import TextIO


def is_console(stream: TextIO | None) -> bool:
    """True when `stream` is an interactive console or terminal, not a file, pipe or NUL."""
    if stream is None:
        return False
    try:
        if not stream.isatty():
            return False
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or replaced by a non-file object
        return False
    if sys.platform != "win32":
        return True
    import ctypes
    import msvcrt
    from ctypes import wintypes
    mode = wintypes.DWORD()
    try:
        handle = msvcrt.get_osfhandle(fd)
    except OSError:
        return False
    # Only a console handle has a console mode; NUL and other devices fail this call.
    return bool(ctypes.windll.kernel32.GetConsoleMode(wintypes.HANDLE(handle), ctypes.byref(mode)))
