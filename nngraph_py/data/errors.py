"""The errors of the data readers: a file that cannot be trusted or parsed is named, with why."""
from __future__ import annotations

from nngraph_py.errors import NNGraphError

__all__ = ["DataFormatError"]


class DataFormatError(NNGraphError, ValueError):
    """A data file (IDX, CSV, pickle, labels) is malformed; the message names the file and where.

    A ``ValueError`` too, so code that caught the readers' ``ValueError`` keeps working.
    """
