"""Logging for rule scripts: everything the package says goes to the rule's log file."""
from __future__ import annotations

import contextlib
import logging
import os


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None, level: int = logging.INFO):
    """Send ``logging`` and Python warnings to ``path`` for the duration of a rule.

    An exception is written to the log with its traceback, then re-raised so
    Snakemake marks the job failed.
    """
    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="w") if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    try:
        yield logging.getLogger("rotdyn")
    except Exception:
        logging.getLogger("rotdyn").exception("failed")
        raise
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()
