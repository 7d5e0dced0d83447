"""The main window's views: each is a QWidget over one `Library` (browse, search, duplicates…)."""
