"""CUDA twins of kerascli.ops.reference.recurrent: one thread per (sample, unit)."""

from __future__ import annotations

from numba import cuda

from kerascli.ops import scalar
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks

_value = cuda.jit(device=True)(scalar.activation_value)
_grad = cuda.jit(device=True)(scalar.activation_gradient)


@cuda.jit(device=True)
def _unit(i, units):
    """(sample, unit) of thread i."""
    return i // units, i % units


@kernel
def _lstm_forward(xw, rec, c_prev, act, rec_act, gates, c, h):
    i = cuda.grid(1)
    batch, units = c.shape
    if i < batch * units:
        b, j = _unit(i, units)
        ig = _value(xw[b, j] + rec[b, j], rec_act)
        fg = _value(xw[b, units + j] + rec[b, units + j], rec_act)
        gg = _value(xw[b, 2 * units + j] + rec[b, 2 * units + j], act)
        og = _value(xw[b, 3 * units + j] + rec[b, 3 * units + j], rec_act)
        gates[b, j], gates[b, units + j], gates[b, 2 * units + j], gates[b, 3 * units + j] = ig, fg, gg, og
        cell = fg * c_prev[b, j] + ig * gg
        c[b, j] = cell
        h[b, j] = og * _value(cell, act)


def lstm_step_forward(xw, rec, c_prev, act, rec_act, gates, c, h):
    if c.size:
        _lstm_forward[blocks(c.size)](xw, rec, c_prev, act, rec_act, gates, c, h)


@kernel
def _lstm_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev):
    i = cuda.grid(1)
    batch, units = c.shape
    if i < batch * units:
        b, j = _unit(i, units)
        ig, fg, gg, og = gates[b, j], gates[b, units + j], gates[b, 2 * units + j], gates[b, 3 * units + j]
        ac = _value(c[b, j], act)
        dc = dc_next[b, j] + _grad(dh[b, j] * og, ac, act)
        dz[b, j] = _grad(dc * gg, ig, rec_act)
        dz[b, units + j] = _grad(dc * c_prev[b, j], fg, rec_act)
        dz[b, 2 * units + j] = _grad(dc * ig, gg, act)
        dz[b, 3 * units + j] = _grad(dh[b, j] * ac, og, rec_act)
        dc_prev[b, j] = dc * fg


def lstm_step_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev):
    if c.size:
        _lstm_backward[blocks(c.size)](dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev)


@kernel
def _gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh):
    i = cuda.grid(1)
    batch, units = h_prev.shape
    if i < batch * units:
        b, j = _unit(i, units)
        gates[b, j] = _value(xw[b, j] + rec[b, j], rec_act)
        r = _value(xw[b, units + j] + rec[b, units + j], rec_act)
        gates[b, units + j] = r
        if reset_after:
            gates[b, 3 * units + j] = rec[b, 2 * units + j]
            rh[b, j] = r * rec[b, 2 * units + j]
        else:
            rh[b, j] = r * h_prev[b, j]


def gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh):
    if h_prev.size:
        _gru_gates_forward[blocks(h_prev.size)](xw, rec, h_prev, rec_act, reset_after, gates, rh)


@kernel
def _gru_output_forward(xw, rec_h, h_prev, act, gates, h):
    i = cuda.grid(1)
    batch, units = h_prev.shape
    if i < batch * units:
        b, j = _unit(i, units)
        candidate = _value(xw[b, 2 * units + j] + rec_h[b, j], act)
        gates[b, 2 * units + j] = candidate
        z = gates[b, j]
        h[b, j] = z * h_prev[b, j] + (1 - z) * candidate


def gru_output_forward(xw, rec_h, h_prev, act, gates, h):
    if h.size:
        _gru_output_forward[blocks(h.size)](xw, rec_h, h_prev, act, gates, h)


@kernel
def _gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev):
    i = cuda.grid(1)
    batch, units = h_prev.shape
    if i < batch * units:
        b, j = _unit(i, units)
        z, candidate, d = gates[b, j], gates[b, 2 * units + j], dh[b, j]
        dxw[b, j] = _grad(d * (h_prev[b, j] - candidate), z, rec_act)
        dxw[b, 2 * units + j] = _grad(d * (1 - z), candidate, act)
        dh_prev[b, j] = d * z


def gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev):
    if dh.size:
        _gru_output_backward[blocks(dh.size)](dh, gates, h_prev, act, rec_act, dxw, dh_prev)


@kernel
def _gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev):
    i = cuda.grid(1)
    batch, units = h_prev.shape
    if i < batch * units:
        b, j = _unit(i, units)
        r = gates[b, units + j]
        if reset_after:
            dxw[b, units + j] = _grad(d_rh[b, j] * gates[b, 3 * units + j], r, rec_act)
            drec[b, 2 * units + j] = d_rh[b, j] * r
        else:
            dxw[b, units + j] = _grad(d_rh[b, j] * h_prev[b, j], r, rec_act)
            drec[b, 2 * units + j] = dxw[b, 2 * units + j]
            dh_prev[b, j] += d_rh[b, j] * r
        drec[b, j] = dxw[b, j]
        drec[b, units + j] = dxw[b, units + j]


def gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev):
    if h_prev.size:
        _gru_gates_backward[blocks(h_prev.size)](d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev)


@kernel
def _simple_rnn_forward(xw, rec, act, h):
    i = cuda.grid(1)
    batch, units = h.shape
    if i < batch * units:
        b, j = _unit(i, units)
        h[b, j] = _value(xw[b, j] + rec[b, j], act)


def simple_rnn_step_forward(xw, rec, act, h):
    if h.size:
        _simple_rnn_forward[blocks(h.size)](xw, rec, act, h)
