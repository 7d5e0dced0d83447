"""What a shared library needs around the catalog: this computer's name in it
(`client_id`), a connection test for the GUI (`test_shared`), and the refusal of
the setup that loses catalogs, a SQLite library on a network filesystem
(`refuse_network_sqlite`)."""

from __future__ import annotations

import os
from pathlib import Path

from dino_desktop.core.records import LibraryError


def client_id(home: Path) -> str:
    """This computer's name in a shared library's journal: its host name and an id
    made once in its folder of that library (two users of one host are two clients)."""
    import socket
    import uuid

    path = home / "client-id"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    made = f"{socket.gethostname()}/{uuid.uuid4().hex}"
    tmp = path.with_name(f"client-id.{os.getpid()}.tmp")
    tmp.write_text(made, encoding="utf-8")
    try:
        os.link(tmp, path)  # never replaces one another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text(encoding="utf-8").strip()


def test_shared(url: str) -> str:
    """Reach a shared library's server without opening it (the GUI's connect dialog):
    one line on the server, pgvector and the library there, or a LibraryError that
    says in one line what is wrong (SharedLibraryError: unreachable, no database,
    password, pgvector; SchemaTooNew: a newer release's library)."""
    from dino_desktop.core.db import test_connection

    return test_connection(url)


def refuse_network_sqlite(home: Path) -> None:
    """A SQLite library on NFS or SMB is refused: their locks do not hold for SQLite
    (PhotoPrism's and digiKam's users lost catalogs that way). Photos on a share
    are fine; the catalog belongs on a local disk or on a server."""
    from dino_desktop.core.volumes import network_fstype

    fstype = network_fstype(str(home))
    if fstype is not None:
        raise LibraryError(
            f"the library folder {home} is on a network filesystem ({fstype}), where a "
            "SQLite catalog gets corrupted when two computers use it. Keep the library on "
            "this computer (its photo folders can stay on the share, --library DIR), or "
            "make it a shared library on a PostgreSQL server: --library "
            "postgresql://user@server/database (README: Shared library)"
        )
