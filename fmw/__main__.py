import sys

if sys.platform == "win32" and "--as-service" in sys.argv[1:]:
    # A Windows service must reach the service manager within 30 s of its start: connect
    # first, import the rest of FMW afterwards (scheduler/winservice.py).
    from scheduler.winservice import serve_command

    raise SystemExit(serve_command(sys.argv[1:]))

from fmw.cli import main

raise SystemExit(main())
