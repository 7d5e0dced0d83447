"""Entry point: `dino-desktop` (and `python -m dino_desktop`)."""

from __future__ import annotations

import sys

from dino_desktop.cli import main as _main


def main() -> None:
    sys.exit(_main())


if __name__ == "__main__":
    main()
