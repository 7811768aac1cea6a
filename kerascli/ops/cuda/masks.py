"""CUDA twins of kerascli.ops.reference.masks: one thread per value written."""

from __future__ import annotations

from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import as2d, blocks


@kernel
def _mask_from_ids(ids, out):
    i = cuda.grid(1)
    rows, cols = out.shape
    if i < rows * cols:
        r, c = i // cols, i % cols
        out[r, c] = 1 if ids[r, c] != 0 else 0


def mask_from_ids(ids, out):
    if out.size:
        _mask_from_ids[blocks(out.size)](as2d(ids), as2d(out))
    return out


@kernel
def _mask_from_values(x, mask_value, out):
    i = cuda.grid(1)
    batch, steps, features = x.shape
    if i < batch * steps:
        b, t = i // steps, i % steps
        kept = 0
        for c in range(features):
            if x[b, t, c] != mask_value:
                kept = 1
        out[b, t] = kept


def mask_from_values(x, mask_value, out):
    if out.size:
        _mask_from_values[blocks(out.size)](x, mask_value, out)
    return out


@kernel
def _carry_masked(new, old, keep):
    i = cuda.grid(1)
    rows, cols = new.shape
    if i < rows * cols:
        r, c = i // cols, i % cols
        if keep[r] == 0:
            new[r, c] = old[r, c]


def carry_masked(new, old, keep):
    if new.size:
        _carry_masked[blocks(new.size)](new, old, keep)


@kernel
def _hold_masked(grad, keep, through):
    i = cuda.grid(1)
    rows, cols = grad.shape
    if i < rows * cols:
        r, c = i // cols, i % cols
        if keep[r] == 0:
            through[r, c] = grad[r, c]
            grad[r, c] = 0
        else:
            through[r, c] = 0


def hold_masked(grad, keep, through):
    if grad.size:
        _hold_masked[blocks(grad.size)](grad, keep, through)


@kernel
def _zero_masked_steps(x, keep):
    i = cuda.grid(1)
    batch, steps, features = x.shape
    if i < batch * steps * features:
        b, rest = i // (steps * features), i % (steps * features)
        t = rest // features
        if keep[b, t] == 0:
            x[b, t, rest % features] = 0


def zero_masked_steps(x, keep):
    if x.size:
        _zero_masked_steps[blocks(x.size)](x, keep)


@kernel
def _masked_step_mean(x, keep, out):
    i = cuda.grid(1)
    batch, steps, features = x.shape
    if i < batch * features:
        b, c = i // features, i % features
        count = 0.0
        s = 0.0
        for t in range(steps):
            if keep[b, t] != 0:
                count += 1
                s += x[b, t, c]
        out[b, c] = s / max(count, 1.0)


def masked_step_mean(x, keep, out):
    if out.size:
        _masked_step_mean[blocks(out.size)](x, keep, out)
    return out


@kernel
def _masked_step_mean_backward(dy, keep, dx):
    i = cuda.grid(1)
    batch, steps, features = dx.shape
    if i < batch * steps * features:
        b, rest = i // (steps * features), i % (steps * features)
        t, c = rest // features, rest % features
        count = 0.0
        for k in range(steps):
            if keep[b, k] != 0:
                count += 1
        dx[b, t, c] = dy[b, c] / max(count, 1.0) if keep[b, t] != 0 else 0


def masked_step_mean_backward(dy, keep, dx):
    if dx.size:
        _masked_step_mean_backward[blocks(dx.size)](dy, keep, dx)
    return dx
