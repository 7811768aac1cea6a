"""Numba twins of kerascli.ops.reference.recurrent: same names, signatures and results.

tanh and sigmoid dominate a recurrent step (five per LSTM unit per step), and libm's tanh does not
vectorise (11 ns a value here). In float32 they are computed with a rational approximation of tanh
(pure arithmetic, so LLVM vectorises it; 0.4 ns a value, within 2.4e-7 of tanh); in float64 with libm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from kerascli.ops import scalar
from kerascli.ops.contract import SIGMOID, TANH
from kerascli.ops.cpu.jit import opts

_activation_value = njit(inline="always", **opts)(scalar.activation_value)
_activation_gradient = njit(inline="always", **opts)(scalar.activation_gradient)

# The minimax rational fit of tanh on [-7.9, 7.9] that Eigen's float tanh uses (tanh is +-1 in float32
# beyond): x * P(x^2) / Q(x^2)
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _tanh(x):
    return math.tanh(x)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _rational_tanh():
    """tanh for float32 scalars, every constant float32 (a float64 one would make the arithmetic float64)."""
    p0, p1, p2, p3, p4, p5, p6 = (np.float32(c) for c in _TANH_P)
    q0, q1, q2, q3 = (np.float32(c) for c in _TANH_Q)
    clamp = np.float32(_TANH_CLAMP)

    @njit(inline="always", **opts)
    def rational(x):
        x = min(max(x, -clamp), clamp)
        x2 = x * x
        p = x * ((((((p0 * x2 + p1) * x2 + p2) * x2 + p3) * x2 + p4) * x2 + p5) * x2 + p6)
        return p / (((q0 * x2 + q1) * x2 + q2) * x2 + q3)

    return rational


_tanh32 = _rational_tanh()
_HALF = np.float32(0.5)


@overload(_tanh, jit_options=opts, inline="always")
def _tanh_for(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: math.tanh(x)


@overload(_sigmoid, jit_options=opts, inline="always")
def _sigmoid_for(x):
    if x == types.float32:
        return lambda x: _HALF * _tanh32(_HALF * x) + _HALF
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@njit(inline="always", **opts)
def _value(v, act):
    """act(v), with the fast tanh and sigmoid."""
    if act == TANH:
        return _tanh(v)
    if act == SIGMOID:
        return _sigmoid(v)
    return _activation_value(v, act)


# Each kernel runs its rows through an inlined row function. With Keras' default activations the kernel
# passes them as constants, so that after inlining the branches on the codes fold away and each row's loop
# vectorises (an LSTM step of 64 x 128 units: 11 us; with the codes left as variables: 250 us).
@njit(inline="always", **opts)
def _part(row, k, units):
    return row[k * units:(k + 1) * units]


@njit(inline="always", **opts)
def _lstm_forward(xw, rec, c_prev, act, rec_act, gates, c, h):
    units = c.shape[1]
    for b in range(c.shape[0]):
        x, r, g = xw[b], rec[b], gates[b]
        xi, xf, xg, xo = _part(x, 0, units), _part(x, 1, units), _part(x, 2, units), _part(x, 3, units)
        ri, rf, rg, ro = _part(r, 0, units), _part(r, 1, units), _part(r, 2, units), _part(r, 3, units)
        gi, gf, gg, go = _part(g, 0, units), _part(g, 1, units), _part(g, 2, units), _part(g, 3, units)
        cp, cb, hb = c_prev[b], c[b], h[b]
        for j in range(units):
            i = _value(xi[j] + ri[j], rec_act)
            f = _value(xf[j] + rf[j], rec_act)
            gate = _value(xg[j] + rg[j], act)
            o = _value(xo[j] + ro[j], rec_act)
            gi[j], gf[j], gg[j], go[j] = i, f, gate, o
            cell = f * cp[j] + i * gate
            cb[j] = cell
            hb[j] = o * _value(cell, act)


@njit(**opts)
def lstm_step_forward(xw, rec, c_prev, act, rec_act, gates, c, h):
    if act == TANH and rec_act == SIGMOID:
        _lstm_forward(xw, rec, c_prev, TANH, SIGMOID, gates, c, h)
    else:
        _lstm_forward(xw, rec, c_prev, act, rec_act, gates, c, h)


@njit(inline="always", **opts)
def _lstm_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev):
    units = c.shape[1]
    for b in range(c.shape[0]):
        g, d = gates[b], dz[b]
        gi, gf, gg, go = _part(g, 0, units), _part(g, 1, units), _part(g, 2, units), _part(g, 3, units)
        di, df, dg, do = _part(d, 0, units), _part(d, 1, units), _part(d, 2, units), _part(d, 3, units)
        dhb, dcn, cp, cb, dcp = dh[b], dc_next[b], c_prev[b], c[b], dc_prev[b]
        for j in range(units):
            i, f, gate, o = gi[j], gf[j], gg[j], go[j]
            ac = _value(cb[j], act)
            dc = dcn[j] + _activation_gradient(dhb[j] * o, ac, act)
            di[j] = _activation_gradient(dc * gate, i, rec_act)
            df[j] = _activation_gradient(dc * cp[j], f, rec_act)
            dg[j] = _activation_gradient(dc * i, gate, act)
            do[j] = _activation_gradient(dhb[j] * ac, o, rec_act)
            dcp[j] = dc * f


@njit(**opts)
def lstm_step_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev):
    if act == TANH and rec_act == SIGMOID:
        _lstm_backward(dh, dc_next, gates, c_prev, c, TANH, SIGMOID, dz, dc_prev)
    else:
        _lstm_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev)


@njit(inline="always", **opts)
def _gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh):
    units = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        x, r, g = xw[b], rec[b], gates[b]
        for j in range(2 * units):
            g[j] = _value(x[j] + r[j], rec_act)
        reset, rh_b, hp = _part(g, 1, units), rh[b], h_prev[b]
        if reset_after:
            rec_h, kept = _part(r, 2, units), _part(g, 3, units)
            for j in range(units):
                kept[j] = rec_h[j]
                rh_b[j] = reset[j] * rec_h[j]
        else:
            for j in range(units):
                rh_b[j] = reset[j] * hp[j]


@njit(**opts)
def gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh):
    if rec_act == SIGMOID:
        _gru_gates_forward(xw, rec, h_prev, SIGMOID, reset_after, gates, rh)
    else:
        _gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh)


@njit(inline="always", **opts)
def _gru_output_forward(xw, rec_h, h_prev, act, gates, h):
    units = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        xh, rh_b, z, cand, hp, hb = _part(xw[b], 2, units), rec_h[b], _part(gates[b], 0, units), \
            _part(gates[b], 2, units), h_prev[b], h[b]
        for j in range(units):
            candidate = _value(xh[j] + rh_b[j], act)
            cand[j] = candidate
            hb[j] = z[j] * hp[j] + (1 - z[j]) * candidate


@njit(**opts)
def gru_output_forward(xw, rec_h, h_prev, act, gates, h):
    if act == TANH:
        _gru_output_forward(xw, rec_h, h_prev, TANH, gates, h)
    else:
        _gru_output_forward(xw, rec_h, h_prev, act, gates, h)


@njit(inline="always", **opts)
def _gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev):
    units = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        z, cand = _part(gates[b], 0, units), _part(gates[b], 2, units)
        dz, dcand = _part(dxw[b], 0, units), _part(dxw[b], 2, units)
        dhb, hp, dhp = dh[b], h_prev[b], dh_prev[b]
        for j in range(units):
            d = dhb[j]
            dz[j] = _activation_gradient(d * (hp[j] - cand[j]), z[j], rec_act)
            dcand[j] = _activation_gradient(d * (1 - z[j]), cand[j], act)
            dhp[j] = d * z[j]


@njit(**opts)
def gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev):
    if act == TANH and rec_act == SIGMOID:
        _gru_output_backward(dh, gates, h_prev, TANH, SIGMOID, dxw, dh_prev)
    else:
        _gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev)


@njit(inline="always", **opts)
def _gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev):
    units = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        g, dx, dr = gates[b], dxw[b], drec[b]
        reset, dreset, drec_h, d, hp, dhp = _part(g, 1, units), _part(dx, 1, units), _part(dr, 2, units), \
            d_rh[b], h_prev[b], dh_prev[b]
        if reset_after:
            kept = _part(g, 3, units)
            for j in range(units):
                dreset[j] = _activation_gradient(d[j] * kept[j], reset[j], rec_act)
                drec_h[j] = d[j] * reset[j]
        else:
            dcand = _part(dx, 2, units)
            for j in range(units):
                dreset[j] = _activation_gradient(d[j] * hp[j], reset[j], rec_act)
                drec_h[j] = dcand[j]
                dhp[j] += d[j] * reset[j]
        for j in range(2 * units):
            dr[j] = dx[j]


@njit(**opts)
def gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev):
    if rec_act == SIGMOID:
        _gru_gates_backward(d_rh, gates, h_prev, SIGMOID, reset_after, dxw, drec, dh_prev)
    else:
        _gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev)


@njit(inline="always", **opts)
def _simple_rnn_forward(xw, rec, act, h):
    for b in range(h.shape[0]):
        x, r, hb = xw[b], rec[b], h[b]
        for j in range(h.shape[1]):
            hb[j] = _value(x[j] + r[j], act)


@njit(**opts)
def simple_rnn_step_forward(xw, rec, act, h):
    if act == TANH:
        _simple_rnn_forward(xw, rec, TANH, h)
    else:
        _simple_rnn_forward(xw, rec, act, h)
