"""Logging set-up: readable on a terminal, one line per record with priorities under journald.

With systemd-python installed (Debian: python3-systemd) records go to the journal with
structured fields; otherwise, when stderr is connected to the journal (``$JOURNAL_STREAM``), each
line starts with a ``<N>`` syslog priority that journald reads (``SyslogLevelPrefix=``).
"""

from __future__ import annotations

import logging
import os
import sys

# logging level -> syslog priority
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class SyslogPrefixFormatter(logging.Formatter):
    """``<N>message`` with newlines folded, so one record is one journal entry."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>" + super().format(record).replace("\n", " | ")


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected (``JOURNAL_STREAM=dev:ino``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(verbose: bool = False) -> None:
    """Route the ``edge_pose`` loggers to the journal or stderr."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    handler: logging.Handler
    if stderr_is_journal():
        try:
            from systemd.journal import JournalHandler  # type: ignore[import-not-found]

            handler = JournalHandler(SYSLOG_IDENTIFIER="edge-pose")
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(SyslogPrefixFormatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edge-pose: %(levelname)s: %(message)s"))
    root.addHandler(handler)
