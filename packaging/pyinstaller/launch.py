"""PyInstaller's entry script: the `dino-desktop-gui` entry point (gui.app.main).

No arguments open the app; the CLI's commands and options work as with
`dino-desktop` (on Windows and macOS the console-less bundle prints nowhere, so
use the pip-installed `dino-desktop` for the command line there).
"""

from dino_desktop.gui.app import main

if __name__ == "__main__":
    main()
