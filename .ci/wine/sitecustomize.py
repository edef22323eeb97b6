"""FMW Windows lane under Wine: shims for Windows APIs Wine 8 lacks.

Installed into the lane's copy of the Windows Python only (site-packages/sitecustomize.py),
never into a real install: on real Windows these APIs exist and Python uses them.
"""

import _winapi
import os as _os

# Wine gap: kernel32.CopyFile2 is missing in Wine 8. Python 3.12's shutil.copy2/copyfile use
# _winapi.CopyFile2 when present; without it they take their portable read/write path.
if hasattr(_winapi, "CopyFile2"):
    del _winapi.CopyFile2


# Wine gap: kernel32.PssCaptureSnapshot is missing in Wine 8; Python 3.12's os.getppid()
# uses it and fails. Read the parent pid from NtQueryInformationProcess(ProcessBasicInformation).
def _wine_getppid() -> int:
    import ctypes
    from ctypes import wintypes

    class _PBI(ctypes.Structure):  # PROCESS_BASIC_INFORMATION (x64: six 8-byte fields)
        _fields_ = [(n, ctypes.c_void_p) for n in ("exit", "peb", "affinity", "prio", "pid", "ppid")]

    pbi = _PBI()
    ctypes.WinDLL("ntdll").NtQueryInformationProcess(
        wintypes.HANDLE(-1), 0, ctypes.byref(pbi), ctypes.sizeof(pbi), None)
    return int(pbi.ppid or 0)


_os.getppid = _wine_getppid


# Wine gap: when the byte range is locked by another process, Wine 8's CRT _locking() fails
# without setting errno, so msvcrt.locking raises OSError(0, 'Error'); real Windows sets EACCES
# (LK_NBLCK) and callers such as fasteners (pgserver's start-up lock) wait and retry on EACCES,
# but give up at once on errno 0 ("Unable to acquire lock ... due to [Errno 0] Error").
def _install_locking_errno() -> None:
    import errno
    import msvcrt

    original = msvcrt.locking

    def locking(fd: int, mode: int, nbytes: int) -> None:
        try:
            return original(fd, mode, nbytes)
        except OSError as exc:
            if exc.errno:
                raise
            raise OSError(errno.EACCES, "Permission denied") from None

    msvcrt.locking = locking


_install_locking_errno()


# Wine gaps in renaming folders, both of which FMW relies on (ledger/pgzones.py puts a folder
# onto a name another process may have filled; lake/retention.py retires a snapshot version in
# one folder rename that Windows refuses while a reader has a file in it open):
#  - Wine 8's MoveFileEx(MOVEFILE_REPLACE_EXISTING) replaces an existing file or empty folder
#    with a folder, POSIX style; Windows refuses ("This value cannot be used if lpNewFileName or
#    lpExistingFileName names a directory"): os.replace(folder, existing) -> [WinError 5].
#  - Wine 8 renames a folder while a file inside it is open in some process; Windows refuses
#    ("the folder or a file in it is open in another program"): [WinError 5].
# Emulated for os.rename/os.replace of folders: the files below the folder are probed with an
# exclusive open (share mode 0), which fails while any process holds one of them open. Caveat:
# for the instant of the probe, another process opening one of those files would itself get a
# sharing violation (real Windows has no such window).
def _install_folder_rename_rules() -> None:
    import ctypes
    from ctypes import wintypes

    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    k32.CreateFileW.restype = wintypes.HANDLE
    k32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                                wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
    k32.CloseHandle.argtypes = [wintypes.HANDLE]
    invalid = wintypes.HANDLE(-1).value
    generic_read, open_existing, sharing_violation = 0x80000000, 3, 32

    def open_elsewhere(path: str) -> bool:
        h = k32.CreateFileW(path, generic_read, 0, None, open_existing, 0, None)
        if h == invalid or h is None:
            return ctypes.get_last_error() == sharing_violation
        k32.CloseHandle(h)
        return False

    def refuse(src, dst) -> OSError:
        return OSError(0, "Access is denied", _os.fsdecode(src), 5, _os.fsdecode(dst))

    def check(src, dst, replacing: bool) -> None:
        if not _os.path.isdir(src) or _os.path.islink(src):
            return
        if replacing and _os.path.lexists(dst):
            raise refuse(src, dst)
        for root, _dirs, files in _os.walk(src):
            for name in files:
                if open_elsewhere(_os.path.join(root, name)):
                    raise refuse(src, dst)

    original_rename, original_replace = _os.rename, _os.replace

    def rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if src_dir_fd is None and dst_dir_fd is None:
            check(src, dst, replacing=False)
        return original_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if src_dir_fd is None and dst_dir_fd is None:
            check(src, dst, replacing=True)
        return original_replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    rename.__doc__, replace.__doc__ = original_rename.__doc__, original_replace.__doc__
    _os.rename, _os.replace = rename, replace


_install_folder_rename_rules()


# Not a Wine gap but one of the embeddable build: its python312._pth makes it ignore PYTHONPATH
# and leave out sys.path[0] (the current folder for -m/-c, the script's folder for a script),
# both of which the python.org installer's Python (what a server runs) has. Tests start helper
# processes (`python -m tests.ops.apiserver`) from the checkout, with PYTHONPATH set to it.
def _regular_sys_path() -> None:
    import sys

    first = []
    argv = list(getattr(sys, "orig_argv", []))[1:]
    for i, arg in enumerate(argv):
        if arg in ("-m", "-c") or (arg.startswith("-") and arg[1:2] in ("m", "c") and len(arg) > 2):
            first = [_os.getcwd()]
            break
        if arg in ("-X", "-W"):
            continue
        if not arg.startswith("-") and (i == 0 or argv[i - 1] not in ("-X", "-W")):
            first = [_os.path.dirname(_os.path.abspath(arg))]
            break
    extra = [p for p in _os.environ.get("PYTHONPATH", "").split(_os.pathsep) if p]
    for p in reversed(first + extra):
        if p not in sys.path:
            sys.path.insert(0, p)


_regular_sys_path()
