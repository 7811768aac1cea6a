"""What the cpu Ops computes differently from kerascli/ops/algorithms/: the recurrent layers' loops over
time steps as one Numba kernel each (kerascli/ops/cpu/sequences.py). Each function takes the Ops as
``self``, has its definition's name and arguments, and is bound as a method of the cpu Ops."""

from __future__ import annotations

import numpy as np

from kerascli.ops.cpu import blas, sequences


def _present(a, dtype, dims):
    """An optional array as the kernels take it: an empty one for None."""
    return np.zeros((0,) * dims, dtype) if a is None else a


def _transposed(kernel, ws):
    """The recurrent kernel's transpose, contiguous (see kerascli.ops.cpu.sequences._state_gradient)."""
    out = ws("kernel_t", kernel.shape[::-1])
    out[...] = kernel.T
    return out


def _over_samples(ops, loop, n: int, steps: int, units: int, gates: int) -> None:
    """Run ``loop(lo, hi)`` over parts of the batch's n samples on the Ops' threads (in the batch-parallel
    regime: one BLAS thread each). Each part's loop is one kernel, its rows contiguous in every array: cut
    into row ranges of strided views instead, the same loops ran slower on two threads than whole on one."""
    ops.parallel(lambda i, lo, hi: loop(lo, hi), n, steps * n * units * gates * units)


def simple_rnn_sequence_forward(ops, xw, kernel, h, keep, state_mask, act, ws):
    steps, (n, units) = xw.shape[0], h.shape[1:]
    args = (blas.handle(), xw, kernel, h, _present(keep, h.dtype, 2), _present(state_mask, h.dtype, 2), act,
            ws("rec", (n, units)), ws("masked_state", (n, units)))
    _over_samples(ops, lambda lo, hi: sequences.simple_rnn_sequence_forward(*args, lo, hi), n, steps, units, 1)


def simple_rnn_sequence_backward(ops, arriving, dh, kernel, h, keep, state_mask, act, dz, ws):
    steps, (n, units) = dz.shape[0], dh.shape
    args = (blas.handle(), arriving, dh, _transposed(kernel, ws), h, _present(keep, h.dtype, 2),
            _present(state_mask, h.dtype, 2), act, dz, ws("held0", dh.shape), ws("state_step", dh.shape))
    _over_samples(ops, lambda lo, hi: sequences.simple_rnn_sequence_backward(*args, lo, hi), n, steps, units, 1)


def lstm_sequence_forward(ops, xw, kernel, h, c, gates, keep, state_mask, act, rec_act, ws):
    steps, (n, units) = xw.shape[0], h.shape[1:]
    args = (blas.handle(), xw, kernel, h, c, gates, _present(keep, h.dtype, 2), _present(state_mask, h.dtype, 2),
            act, rec_act, ws("rec", (n, 4 * units)), ws("masked_state", (n, units)))
    _over_samples(ops, lambda lo, hi: sequences.lstm_sequence_forward(*args, lo, hi), n, steps, units, 4)


def lstm_sequence_backward(ops, arriving, dh, dc, kernel, gates, c, keep, state_mask, act, rec_act, dz, ws):
    steps, (n, units) = dz.shape[0], dh.shape
    args = (blas.handle(), arriving, dh, dc, _transposed(kernel, ws), gates, c, _present(keep, dh.dtype, 2),
            _present(state_mask, dh.dtype, 2), act, rec_act, dz, ws("dc_prev", dc.shape), ws("held0", dh.shape),
            ws("held1", dc.shape), ws("state_step", dh.shape))
    _over_samples(ops, lambda lo, hi: sequences.lstm_sequence_backward(*args, lo, hi), n, steps, units, 4)


def gru_sequence_forward(ops, xw, kernel, recurrent_bias, h, gates, rh, keep, state_mask, act, rec_act,
                         reset_after, ws):
    steps, (n, units) = xw.shape[0], h.shape[1:]
    args = (blas.handle(), xw, kernel, _present(recurrent_bias, h.dtype, 1), h, gates, rh,
            _present(keep, h.dtype, 2), _present(state_mask, h.dtype, 2), act, rec_act, reset_after,
            ws("rec", (n, (3 if reset_after else 2) * units)), ws("rec_h", (n, units)), ws("masked_state", (n, units)))
    _over_samples(ops, lambda lo, hi: sequences.gru_sequence_forward(*args, lo, hi), n, steps, units, 3)


def gru_sequence_backward(ops, arriving, dh, kernel, gates, h, keep, state_mask, act, rec_act, reset_after,
                          dxw, drec, ws):
    steps, (n, units) = dxw.shape[0], dh.shape
    args = (blas.handle(), arriving, dh, _transposed(kernel, ws), gates, h, _present(keep, dh.dtype, 2),
            _present(state_mask, dh.dtype, 2), act, rec_act, reset_after, dxw, drec, ws("dh_prev", dh.shape),
            ws("d_rh", dh.shape), ws("held0", dh.shape), ws("state_step", dh.shape))
    _over_samples(ops, lambda lo, hi: sequences.gru_sequence_backward(*args, lo, hi), n, steps, units, 3)
