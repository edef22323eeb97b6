"""Logging for processes without a console (Windows services): a size-rotated file with one
event per line, and child-process output pumped into it line by line.

A Windows service has no usable stdout/stderr. `log_to_file` sends every log record (and
warnings, uncaught thread exceptions, prints) to `<log_dir>/<name>.log`, rolled at 10 MB with 8
old files kept, the same limits the WinSW backend uses. A record's line breaks (a traceback, a
multi-line message) are written as a literal ``\\n`` so that one line is one event for
`findstr`, `Select-String` and log shippers.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 8
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: Control characters (and Unicode line breaks) as the escapes a log line shows instead: a
#: request path with CR/LF/NUL can never start a line of its own, i.e. never forge an event.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c != 0x09}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x00: "\\0", 0x85: "\\x85",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """`text` with every line break and control character escaped (tab kept)."""
    return text.replace("\r\n", "\n").translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """The usual format, with the record's line breaks and control characters escaped (one
    event per line, whatever a client put in a path or header)."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


def log_to_console(level: int = logging.INFO) -> logging.Handler:
    """Log to stderr with `OneLineFormatter` (the console counterpart of `log_to_file`)."""
    return _install(logging.StreamHandler(sys.stderr), level)


def _install(handler: logging.Handler, level: int) -> Any:
    """Make `handler` (with the one-line format) the root logger's only handler."""
    handler.setFormatter(OneLineFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class LogStream(io.TextIOBase):
    """A text stream whose lines become log records (for sys.stdout/stderr of a service)."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        with self._lock:
            rest, self._buffer = self._buffer, ""
        if rest.strip():
            self._logger.log(self._level, "%s", rest.rstrip())


def log_to_file(path: Path, level: int = logging.INFO) -> RotatingFileHandler:
    """Send all logging to `path` (rotated at 10 MB, 8 kept), replacing other root handlers.

    Also routes warnings, exceptions of threads and whatever is written to sys.stdout and
    sys.stderr (a service has none, or NUL) into the same file.

    Returns:
        The handler (close it, or call logging.shutdown, to release the file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: RotatingFileHandler = _install(
        RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
                            encoding="utf-8"), level)
    for noisy in ("apscheduler", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)

    def thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger("fmw.thread").error(
            "uncaught exception in thread %s", name,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))

    threading.excepthook = thread_exception
    sys.stdout = LogStream(logging.getLogger("stdout"), logging.INFO)
    sys.stderr = LogStream(logging.getLogger("stderr"), logging.WARNING)
    return handler


def pump_lines(stream: IO[Any], logger: logging.Logger, level: int = logging.INFO
               ) -> threading.Thread:
    """Log each line a child process writes to `stream` (a pipe), in a daemon thread.

    Bytes are decoded as UTF-8 with replacement: a child's odd byte never stops the pump.
    """
    def pump() -> None:
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if line.strip():
                    logger.log(level, "%s", line.rstrip())
        except (OSError, ValueError):  # the pipe was closed under us: the child is gone
            pass
        finally:
            stream.close()

    t = threading.Thread(target=pump, name=f"pump-{logger.name}", daemon=True)
    t.start()
    return t
