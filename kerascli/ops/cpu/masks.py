"""Numba twins of kerascli.ops.reference.masks."""

from __future__ import annotations

from numba import njit

from kerascli.ops.cpu.jit import opts


@njit(**opts)
def mask_from_ids(ids, out):
    flat_ids, flat = ids.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        flat[i] = 1 if flat_ids[i] != 0 else 0
    return out


@njit(**opts)
def mask_from_values(x, mask_value, out):
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            kept = 0
            for c in range(x.shape[2]):
                if x[b, t, c] != mask_value:
                    kept = 1
                    break
            out[b, t] = kept
    return out


@njit(**opts)
def carry_masked(new, old, keep):
    for b in range(new.shape[0]):
        if keep[b] == 0:
            new[b] = old[b]


@njit(**opts)
def hold_masked(grad, keep, through):
    for b in range(grad.shape[0]):
        if keep[b] == 0:
            for j in range(grad.shape[1]):
                through[b, j] = grad[b, j]
                grad[b, j] = 0
        else:
            through[b] = 0


@njit(**opts)
def zero_masked_steps(x, keep):
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if keep[b, t] == 0:
                x[b, t] = 0


@njit(**opts)
def masked_step_mean(x, keep, out):
    for b in range(x.shape[0]):
        count = 0.0
        out[b] = 0
        for t in range(x.shape[1]):
            if keep[b, t] != 0:
                count += 1
                for c in range(x.shape[2]):
                    out[b, c] += x[b, t, c]
        for c in range(x.shape[2]):
            out[b, c] /= max(count, 1.0)
    return out


@njit(**opts)
def masked_step_mean_backward(dy, keep, dx):
    for b in range(dx.shape[0]):
        count = 0.0
        for t in range(dx.shape[1]):
            if keep[b, t] != 0:
                count += 1
        for t in range(dx.shape[1]):
            for c in range(dx.shape[2]):
                dx[b, t, c] = dy[b, c] / max(count, 1.0) if keep[b, t] != 0 else 0
    return dx
