"""Keras' masks over sequence steps (kerascli.graph.masks): ``keep`` is 1 where a step is data and 0 where
it is padding, one value per sample and step ((batch, steps)) or per sample at one step ((batch,)), in the
model's dtype."""

from __future__ import annotations

import numpy as np


def mask_from_ids(ids, out):
    """Embedding's mask_zero: 1 where an id is not 0."""
    out[...] = ids != 0
    return out


def mask_from_values(x, mask_value, out):
    """Keras' Masking: 1 where a step of ``x`` (batch, steps, features) has a feature other than
    ``mask_value``."""
    out[...] = (x != mask_value).any(axis=-1)
    return out


def carry_masked(new, old, keep):
    """A recurrent step over a padded sample changes nothing: rows of ``new`` (batch, units) whose ``keep``
    is 0 take ``old``'s."""
    masked = keep == 0
    new[masked] = old[masked]


def hold_masked(grad, keep, through):
    """Backward through carry_masked: the rows of ``grad`` (the gradient of ``new``) whose ``keep`` is 0
    move to ``through`` (they pass straight to ``old``) and become 0 in ``grad`` (the step did nothing);
    other rows of ``through`` are 0."""
    masked = (keep == 0)[:, None]
    through[...] = np.where(masked, grad, 0)
    grad[...] = np.where(masked, 0, grad)


def zero_masked_steps(x, keep):
    """Padded steps of ``x`` (batch, steps, features) set to 0, in place."""
    x[keep == 0] = 0


def masked_step_mean(x, keep, out):
    """The mean over the kept steps of ``x`` (batch, steps, features) into ``out`` (batch, features); a
    sample with no kept step gives 0."""
    count = np.maximum(keep.sum(axis=1), 1)
    out[...] = np.where(keep[:, :, None] != 0, x, 0).sum(axis=1) / count[:, None]
    return out


def masked_step_mean_backward(dy, keep, dx):
    """The gradient of masked_step_mean: ``dy`` (batch, features) shared among the kept steps."""
    count = np.maximum(keep.sum(axis=1), 1)
    dx[...] = np.where(keep[:, :, None] != 0, dy[:, None, :] / count[:, None, None], 0)
    return dx
