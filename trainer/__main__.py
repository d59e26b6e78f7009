"""``python -m trainer`` is ``genre-train``."""

from trainer.cli import main

raise SystemExit(main())
