"""``python -m harness SUBCOMMAND ...``: the ``harness`` console command without the installed script."""

from harness.cli import main

raise SystemExit(main())
