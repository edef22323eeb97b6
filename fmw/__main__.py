from fmw.cli import main

raise SystemExit(main())
