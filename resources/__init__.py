"""Package data (icons, view icons, palettes), loaded with importlib.resources.

This folder is the top-level resources/ of the repository, installed as the
package dino_desktop.resources (pyproject.toml's package-dir mapping).
"""
