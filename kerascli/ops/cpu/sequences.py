"""The recurrent layers' loops over time steps, each one Numba kernel per direction: every step's recurrent
product (cblas through kerascli.ops.cpu.blas) and its cell update (the row functions of
kerascli.ops.cpu.recurrent) without returning to Python. Same arguments and results as
kerascli/ops/algorithms/recurrent.py, their definition, except that a missing ``keep`` or ``state_mask`` is
an empty array (Numba compiles one kernel for both cases) and workspaces are passed in.

Each step calls the cell kernels of kerascli.ops.cpu.recurrent, which fold Keras' default activations into
constants themselves; inlining the whole loop once per activation pair instead cost over a minute of
compiling per kernel for no measurable speed.
"""

from __future__ import annotations

from numba import njit

from kerascli.ops.cpu.blas import gemm
from kerascli.ops.cpu.jit import opts
from kerascli.ops.cpu.masks import carry_masked, hold_masked
from kerascli.ops.cpu.recurrent import (
    _activation_gradient,
    gru_gates_backward,
    gru_gates_forward,
    gru_output_backward,
    gru_output_forward,
    lstm_step_backward,
    lstm_step_forward,
    simple_rnn_step_forward,
)


@njit(inline="always", **opts)
def _state_in(h, state_mask, masked):
    """The state the recurrent product takes: h, or h * state_mask written into ``masked``."""
    if state_mask.shape[0] == 0:
        return h
    for b in range(h.shape[0]):
        for j in range(h.shape[1]):
            masked[b, j] = h[b, j] * state_mask[b, j]
    return masked


@njit(inline="always", **opts)
def _carry(new, old, keep, t, lo, hi):
    """Padded samples keep their state through step t (``keep`` empty: no mask)."""
    if keep.shape[0] != 0:
        carry_masked(new, old, keep[t][lo:hi])


@njit(inline="always", **opts)
def _arrive(dh, arriving, t, steps, lo, hi):
    if arriving.shape[0] == steps:
        dh += arriving[t][lo:hi]
    elif t == steps - 1:
        dh += arriving[0][lo:hi]


@njit(inline="always", **opts)
def _hold(grad, keep, t, held, lo, hi):
    """Padded samples' gradients at step t moved into ``held`` (they pass over the step), zero in grad."""
    if keep.shape[0] != 0:
        hold_masked(grad, keep[t][lo:hi], held)


@njit(inline="always", **opts)
def _release(grad, keep, held):
    """The held gradients go on to the state before the step (``held`` is zero for the other samples)."""
    if keep.shape[0] != 0:
        grad += held


@njit(inline="always", **opts)
def _state_gradient(blas, drec, kernel_t, state_mask, dh_prev, accumulate, step):
    """dh_prev (+)= drec @ kernel_t, through recurrent dropout's mask (``step``: a workspace). ``kernel_t``
    is the recurrent kernel's transpose, contiguous: BLAS multiplies by it faster than by a transposed view
    (42 against 50 us for an LSTM(128) step of 64 samples)."""
    if state_mask.shape[0] == 0:
        gemm(blas, drec, kernel_t, dh_prev, False, 1.0 if accumulate else 0.0)
        return
    gemm(blas, drec, kernel_t, step, False, 0.0)
    for b in range(dh_prev.shape[0]):
        for j in range(dh_prev.shape[1]):
            v = step[b, j] * state_mask[b, j]
            dh_prev[b, j] = dh_prev[b, j] + v if accumulate else v


@njit(**opts)
def _through_activation(dy, y, act, dz):
    """dz = the gradient through ``act`` from its output y."""
    for b in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            dz[b, j] = _activation_gradient(dy[b, j], y[b, j], act)


# Each loop runs over the samples [lo, hi) of the batch (threads take parts of it: the samples' loops are
# independent): the per-sample arrays are cut to those rows step by step, where the cut stays contiguous.

# ---------------------------------------------------------------- SimpleRNN
@njit(**opts)
def simple_rnn_sequence_forward(blas, xw, kernel, h, keep, state_mask, act, rec, masked, lo, hi):
    state_mask, rec, masked = state_mask[lo:hi], rec[lo:hi], masked[lo:hi]
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t][lo:hi], state_mask, masked), kernel, rec, False, 0.0)
        simple_rnn_step_forward(xw[t][lo:hi], rec, act, h[t + 1][lo:hi])
        _carry(h[t + 1][lo:hi], h[t][lo:hi], keep, t, lo, hi)


@njit(**opts)
def simple_rnn_sequence_backward(blas, arriving, dh, kernel_t, h, keep, state_mask, act, dz, held, step, lo, hi):
    steps = dz.shape[0]
    dh, state_mask, held, step = dh[lo:hi], state_mask[lo:hi], held[lo:hi], step[lo:hi]
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps, lo, hi)
        _hold(dh, keep, t, held, lo, hi)
        _through_activation(dh, h[t + 1][lo:hi], act, dz[t][lo:hi])
        _state_gradient(blas, dz[t][lo:hi], kernel_t, state_mask, dh, False, step)
        _release(dh, keep, held)


# ---------------------------------------------------------------- LSTM
@njit(**opts)
def lstm_sequence_forward(blas, xw, kernel, h, c, gates, keep, state_mask, act, rec_act, rec, masked, lo, hi):
    state_mask, rec, masked = state_mask[lo:hi], rec[lo:hi], masked[lo:hi]
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t][lo:hi], state_mask, masked), kernel, rec, False, 0.0)
        lstm_step_forward(xw[t][lo:hi], rec, c[t][lo:hi], act, rec_act, gates[t][lo:hi], c[t + 1][lo:hi],
                          h[t + 1][lo:hi])
        _carry(c[t + 1][lo:hi], c[t][lo:hi], keep, t, lo, hi)
        _carry(h[t + 1][lo:hi], h[t][lo:hi], keep, t, lo, hi)


@njit(**opts)
def lstm_sequence_backward(blas, arriving, dh, dc, kernel_t, gates, c, keep, state_mask, act, rec_act, dz, dc_prev,
                           held_h, held_c, step, lo, hi):
    steps = dz.shape[0]
    dh, dc, dc_prev, state_mask = dh[lo:hi], dc[lo:hi], dc_prev[lo:hi], state_mask[lo:hi]
    held_h, held_c, step = held_h[lo:hi], held_c[lo:hi], step[lo:hi]
    dc_in = dc
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps, lo, hi)
        _hold(dh, keep, t, held_h, lo, hi)
        _hold(dc, keep, t, held_c, lo, hi)
        lstm_step_backward(dh, dc, gates[t][lo:hi], c[t][lo:hi], c[t + 1][lo:hi], act, rec_act, dz[t][lo:hi],
                           dc_prev)
        dc, dc_prev = dc_prev, dc
        _state_gradient(blas, dz[t][lo:hi], kernel_t, state_mask, dh, False, step)
        _release(dh, keep, held_h)
        _release(dc, keep, held_c)
    if steps % 2 == 1:
        dc_in[...] = dc


# ---------------------------------------------------------------- GRU
@njit(**opts)
def gru_sequence_forward(blas, xw, kernel, recurrent_bias, h, gates, rh, keep, state_mask, act, rec_act,
                         reset_after, rec, rec_h, masked, lo, hi):
    units = h.shape[2]
    width = 3 * units if reset_after else 2 * units
    state_mask, rec, rec_h, masked = state_mask[lo:hi], rec[lo:hi], rec_h[lo:hi], masked[lo:hi]
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t][lo:hi], state_mask, masked), kernel[:, :width], rec, False, 0.0)
        if recurrent_bias.shape[0] != 0:
            for b in range(rec.shape[0]):
                for j in range(width):
                    rec[b, j] += recurrent_bias[j]
        x_t, h_t, gates_t, rh_t = xw[t][lo:hi], h[t][lo:hi], gates[t][lo:hi], rh[t][lo:hi]
        gru_gates_forward(x_t, rec, h_t, rec_act, reset_after, gates_t, rh_t)
        if reset_after:
            gru_output_forward(x_t, rh_t, h_t, act, gates_t, h[t + 1][lo:hi])
        else:
            gemm(blas, rh_t, kernel[:, 2 * units:], rec_h, False, 0.0)
            gru_output_forward(x_t, rec_h, h_t, act, gates_t, h[t + 1][lo:hi])
        _carry(h[t + 1][lo:hi], h_t, keep, t, lo, hi)


@njit(**opts)
def gru_sequence_backward(blas, arriving, dh, kernel_t, gates, h, keep, state_mask, act, rec_act, reset_after, dxw,
                          drec, dh_prev, d_rh, held, step, lo, hi):
    steps, units = dxw.shape[0], dh.shape[1]
    width = 3 * units if reset_after else 2 * units
    dh, dh_prev, d_rh, state_mask = dh[lo:hi], dh_prev[lo:hi], d_rh[lo:hi], state_mask[lo:hi]
    held, step = held[lo:hi], step[lo:hi]
    dh_in = dh
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps, lo, hi)
        _hold(dh, keep, t, held, lo, hi)
        dxw_t, gates_t, h_t, drec_t = dxw[t][lo:hi], gates[t][lo:hi], h[t][lo:hi], drec[t][lo:hi]
        gru_output_backward(dh, gates_t, h_t, act, rec_act, dxw_t, dh_prev)
        if reset_after:
            d_rh[...] = dxw_t[:, 2 * units:]
        else:
            gemm(blas, dxw_t[:, 2 * units:], kernel_t[2 * units:], d_rh, False, 0.0)
        gru_gates_backward(d_rh, gates_t, h_t, rec_act, reset_after, dxw_t, drec_t, dh_prev)
        dh, dh_prev = dh_prev, dh
        _state_gradient(blas, drec_t[:, :width], kernel_t[:width], state_mask, dh, True, step)
        _release(dh, keep, held)
    if steps % 2 == 1:
        dh_in[...] = dh
