"""Rows of a table by id, and the gradient back into the table."""

from __future__ import annotations

import numpy as np


def scatter_add_rows(grad, ids, dy):
    """``grad`` (rows, width) zeroed, then row k of ``dy`` (n, width) added into row ids[k] (ids: n ints)."""
    grad[...] = 0
    np.add.at(grad, ids, dy)
