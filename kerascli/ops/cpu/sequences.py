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
def _carry(new, old, keep, t):
    """Padded samples keep their state through step t (``keep`` empty: no mask)."""
    if keep.shape[0] != 0:
        carry_masked(new, old, keep[t])


@njit(inline="always", **opts)
def _arrive(dh, arriving, t, steps):
    if arriving.shape[0] == steps:
        dh += arriving[t]
    elif t == steps - 1:
        dh += arriving[0]


@njit(inline="always", **opts)
def _hold(grad, keep, t, held):
    """Padded samples' gradients at step t moved into ``held`` (they pass over the step), zero in grad."""
    if keep.shape[0] != 0:
        hold_masked(grad, keep[t], held)


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


# ---------------------------------------------------------------- SimpleRNN
@njit(**opts)
def simple_rnn_sequence_forward(blas, xw, kernel, h, keep, state_mask, act, rec, masked):
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t], state_mask, masked), kernel, rec, False, 0.0)
        simple_rnn_step_forward(xw[t], rec, act, h[t + 1])
        _carry(h[t + 1], h[t], keep, t)


@njit(**opts)
def simple_rnn_sequence_backward(blas, arriving, dh, kernel_t, h, keep, state_mask, act, dz, held, step):
    steps = dz.shape[0]
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        _hold(dh, keep, t, held)
        _through_activation(dh, h[t + 1], act, dz[t])
        _state_gradient(blas, dz[t], kernel_t, state_mask, dh, False, step)
        _release(dh, keep, held)


# ---------------------------------------------------------------- LSTM
@njit(**opts)
def lstm_sequence_forward(blas, xw, kernel, h, c, gates, keep, state_mask, act, rec_act, rec, masked):
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t], state_mask, masked), kernel, rec, False, 0.0)
        lstm_step_forward(xw[t], rec, c[t], act, rec_act, gates[t], c[t + 1], h[t + 1])
        _carry(c[t + 1], c[t], keep, t)
        _carry(h[t + 1], h[t], keep, t)


@njit(**opts)
def lstm_sequence_backward(blas, arriving, dh, dc, kernel_t, gates, c, keep, state_mask, act, rec_act, dz, dc_prev,
                           held_h, held_c, step):
    steps = dz.shape[0]
    dc_in = dc
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        _hold(dh, keep, t, held_h)
        _hold(dc, keep, t, held_c)
        lstm_step_backward(dh, dc, gates[t], c[t], c[t + 1], act, rec_act, dz[t], dc_prev)
        dc, dc_prev = dc_prev, dc
        _state_gradient(blas, dz[t], kernel_t, state_mask, dh, False, step)
        _release(dh, keep, held_h)
        _release(dc, keep, held_c)
    if steps % 2 == 1:
        dc_in[...] = dc


# ---------------------------------------------------------------- GRU
@njit(**opts)
def gru_sequence_forward(blas, xw, kernel, recurrent_bias, h, gates, rh, keep, state_mask, act, rec_act,
                         reset_after, rec, rec_h, masked):
    units = h.shape[2]
    width = 3 * units if reset_after else 2 * units
    for t in range(xw.shape[0]):
        gemm(blas, _state_in(h[t], state_mask, masked), kernel[:, :width], rec, False, 0.0)
        if recurrent_bias.shape[0] != 0:
            for b in range(rec.shape[0]):
                for j in range(width):
                    rec[b, j] += recurrent_bias[j]
        gru_gates_forward(xw[t], rec, h[t], rec_act, reset_after, gates[t], rh[t])
        if reset_after:
            gru_output_forward(xw[t], rh[t], h[t], act, gates[t], h[t + 1])
        else:
            gemm(blas, rh[t], kernel[:, 2 * units:], rec_h, False, 0.0)
            gru_output_forward(xw[t], rec_h, h[t], act, gates[t], h[t + 1])
        _carry(h[t + 1], h[t], keep, t)


@njit(**opts)
def gru_sequence_backward(blas, arriving, dh, kernel_t, gates, h, keep, state_mask, act, rec_act, reset_after, dxw,
                          drec, dh_prev, d_rh, held, step):
    steps, units = dxw.shape[0], dh.shape[1]
    width = 3 * units if reset_after else 2 * units
    dh_in = dh
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        _hold(dh, keep, t, held)
        gru_output_backward(dh, gates[t], h[t], act, rec_act, dxw[t], dh_prev)
        if reset_after:
            d_rh[...] = dxw[t][:, 2 * units:]
        else:
            gemm(blas, dxw[t][:, 2 * units:], kernel_t[2 * units:], d_rh, False, 0.0)
        gru_gates_backward(d_rh, gates[t], h[t], rec_act, reset_after, dxw[t], drec[t], dh_prev)
        dh, dh_prev = dh_prev, dh
        _state_gradient(blas, drec[t][:, :width], kernel_t[:width], state_mask, dh, True, step)
        _release(dh, keep, held)
    if steps % 2 == 1:
        dh_in[...] = dh
