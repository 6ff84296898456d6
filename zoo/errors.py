"""The few exception types zoo raises for problems a user can fix.

Every message is one line that names what is wrong and what to do; the CLI prints it as
``error: <message>`` and exits 1 (``ZOO_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class: a problem the user can act on."""


class UnknownNameError(ZooError, KeyError):
    """A model or dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(ZooError):
    """Two sources tried to register the same name."""


class WeightsError(ZooError):
    """Weights that cannot be found, downloaded, verified or loaded."""


class DownloadError(ZooError):
    """A download that failed or did not match its checksum."""


class DataError(ZooError):
    """A dataset that cannot be found, read or used."""


class TrainingError(ZooError):
    """Training that cannot start or cannot go on."""


class InUseError(TrainingError):
    """Another zoo process holds the folder (its lock)."""


class Interrupted(ZooError, KeyboardInterrupt):
    """Ctrl-C, with what was kept (still a KeyboardInterrupt for callers that catch that)."""

    exit_code = 130


class ExportError(ZooError):
    """An export that cannot be made or that failed its parity check."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean a, b?)' for close matches of name, or ''."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""
