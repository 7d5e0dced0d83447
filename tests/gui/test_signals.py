"""Guard against a Qt binding that corrupts reference counts when Python emits signals.

PySide6 6.12.0 dropped a reference to True on every `Signal.emit()` from Python;
the app emits progress signals ~10 times a second, so a long scan aborted the
process ("bool_dealloc"). pyproject.toml excludes that release; this test fails
on any binding with the same fault.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(object)


def test_emitting_from_python_keeps_reference_counts() -> None:
    emitter = _Emitter()
    seen: list[object] = []
    emitter.changed.connect(seen.append)
    before = sys.getrefcount(True)
    for i in range(100):
        emitter.changed.emit(i)
    assert len(seen) == 100
    # A broken binding loses one reference per emit (-100 here); allow unrelated noise.
    assert abs(sys.getrefcount(True) - before) < 10
