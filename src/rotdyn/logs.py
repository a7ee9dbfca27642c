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

    Parameters
    ----------
    path : str or os.PathLike or None
        The rule's log file (overwritten); None: standard error.
    level : int
        Lowest level written.

    Returns
    -------
    contextlib.AbstractContextManager
        Entering it yields the package's logger (see Yields).

    Yields
    ------
    logging.Logger
        The package's logger, ``rotdyn``.

    Examples
    --------
    >>> import os, tempfile, warnings
    >>> path = os.path.join(tempfile.mkdtemp(), "kde.log")
    >>> with log_to(path) as log:
    ...     log.info("densities of angle")
    ...     warnings.warn("a library warning")
    >>> text = open(path).read()
    >>> "INFO rotdyn: densities of angle" in text, "UserWarning: a library warning" in text
    (True, True)
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
