"""Package data: the application icon (loaded with importlib.resources)."""
