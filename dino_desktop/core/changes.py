"""What other clients change in a shared library, heard within a second (LISTEN/NOTIFY).

Every statement that writes one of the catalog's tables sends a notice naming
the table (Alembic revision 0003's triggers), delivered when its transaction
commits. `Changes` is a thread with a connection of its own that LISTENs for
them and calls ``on_change(tables)`` with the tables changed, gathered over
`settle` seconds, so a burst of commits (a scan, a worker's jobs) is one call,
not hundreds. The call comes from the thread: a GUI hands it to its own
thread (a queued Qt signal). Its own client's writes are heard too: a refresh
they cause is harmless, and telling them apart would need every pooled
connection's backend id.

A lost connection (the server restarted, the network away) is retried every
`RETRY_S`; once back, ``on_change`` is called with every table, since what
changed meanwhile was not heard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

RETRY_S: Final = 5.0
CHANNEL: Final = "dino_desktop_changes"  # as revision 0003 names it (frozen there)
TABLES: Final = frozenset(
    {
        "folders",
        "images",
        "companions",
        "embeddings",
        "cluster_runs",
        "clusters",
        "cluster_members",
        "cluster_exclusions",
        "sort_labels",
        "sort_examples",
        "dupe_dismissals",
        "journal",
    }
)
"""The tables whose writes are announced (revision 0003; a later revision that
announces more adds them here)."""


class Changes(threading.Thread):
    """Listens for a shared library's changes until `stop`."""

    def __init__(
        self,
        conninfo: str,
        on_change: Callable[[frozenset[str]], None],
        *,
        settle: float = 0.3,
    ) -> None:
        super().__init__(name="library-changes", daemon=True)
        self._conninfo = conninfo
        self._on_change = on_change
        self._settle = settle
        self._stopping = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is in place

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        missed = False
        while not self._stopping.is_set():
            try:
                self._listen(missed)
            except Exception as exc:  # the server away: try again, say it once a time
                log.warning("not hearing other clients' changes (%s); retrying", exc)
            self.listening.clear()
            missed = True
            self._stopping.wait(RETRY_S)

    def _listen(self, missed: bool) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute("LISTEN dino_desktop_changes")  # CHANNEL, spelled out: no SQL from values
            self.listening.set()
            log.info("hearing other clients' changes")
            if missed:
                self._on_change(TABLES)
            heard: set[str] = set()
            first = 0.0
            while not self._stopping.is_set():
                wait = self._settle if heard else 1.0
                for notice in conn.notifies(timeout=wait, stop_after=256):
                    if not heard:
                        first = time.monotonic()
                    heard.add(notice.payload)
                if heard and time.monotonic() - first >= self._settle:
                    tables, heard = frozenset(heard), set()
                    try:
                        self._on_change(tables)
                    except Exception:  # the listener's bug must not stop the hearing
                        log.exception("a change handler failed")
