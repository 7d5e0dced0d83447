"""The value types of `core.records`: a leaf module, in step with the scanner's report."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from dino_desktop.core.records import ScanReport, ScanResult


def test_a_scan_result_is_a_scan_report_with_the_embedding_step() -> None:
    """Library.scan copies the scanner's ScanReport field by field into a ScanResult."""
    filled = ScanReport(added=2, failed=[("a", "b")], warnings=["w"], cancelled=True)
    copied = ScanResult(**{f.name: getattr(filled, f.name) for f in dataclasses.fields(filled)})
    assert isinstance(copied, ScanReport)
    assert (copied.added, copied.failed, copied.cancelled, copied.embedded) == (
        2,
        [("a", "b")],
        True,
        0,
    )


def test_records_import_no_database_or_numpy() -> None:
    """The GUI may import the value types without pulling in the storage layers."""
    code = (
        "import sys; import dino_desktop.core.records; "
        "heavy = ('sqlalchemy', 'numpy', 'dino_desktop.core.db'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
