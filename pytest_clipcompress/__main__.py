"""``python -m pytest_clipcompress``: the command line for results files (see :mod:`.cli`)."""

from .cli import main

raise SystemExit(main())
