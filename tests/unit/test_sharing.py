"""core/sharing.py: this computer's name in a shared library's journal."""

from __future__ import annotations

import socket
from pathlib import Path

from dino_desktop.core.sharing import client_id


def test_a_computer_keeps_its_name_and_two_folders_are_two_clients(tmp_path: Path) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir()
    other.mkdir()
    first = client_id(one)
    assert first.startswith(socket.gethostname() + "/")
    assert client_id(one) == first  # read back, not made again
    assert client_id(other) != first
    assert sorted(p.name for p in one.iterdir()) == ["client-id"]  # no temporary file left
