
# --- FMW Windows lane (Wine only, never a real install): appended to psutil/_pswindows.py ---
# Wine gap: Wine 8's NtQuerySystemInformation lacks SystemProcessIdInformation, so
# psutil's cext.proc_exe fails with [WinError 87] for every process (Process.exe(),
# process_iter(["exe"]), FMW's look-up of a running postgres.exe). Fall back to
# QueryFullProcessImageNameW, which is what psutil itself used before 5.9.
def _wine_install_proc_exe_fallback():
    import ctypes
    from ctypes import wintypes
    _orig = cext.proc_exe
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    k32.OpenProcess.restype = wintypes.HANDLE
    k32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    k32.QueryFullProcessImageNameW.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.LPWSTR, ctypes.POINTER(wintypes.DWORD)]
    k32.CloseHandle.argtypes = [wintypes.HANDLE]
    def proc_exe(pid):
        try:
            return _orig(pid)
        except OSError as e:
            if getattr(e, "winerror", None) != 87:
                raise
        h = k32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not h:
            raise PermissionError(13, "access denied (wine fallback)")
        try:
            buf = ctypes.create_unicode_buffer(32768); n = wintypes.DWORD(32768)
            if not k32.QueryFullProcessImageNameW(h, 0, buf, ctypes.byref(n)):
                raise PermissionError(13, "access denied (wine fallback)")
            return buf.value
        finally:
            k32.CloseHandle(h)
    cext.proc_exe = proc_exe
_wine_install_proc_exe_fallback()
