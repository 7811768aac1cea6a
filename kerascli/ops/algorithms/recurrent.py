"""The loops over time steps of SimpleRNN, LSTM and GRU, over an Ops' step kernels and its ``gemm``.

This is the definition; the cpu Ops runs each loop as one Numba kernel (kerascli/ops/cpu/sequences.py),
with no return to Python between steps.

Shapes: T steps, n samples, u units, time-major. ``xw`` (T, n, gates * u) holds every step's input
projection with the input bias; ``h`` (T + 1, n, u) the states, h[0] the initial one (zeros, or a layer's
``initial_state``), h[t + 1] the state after step t (an LSTM's cell states likewise in ``c``).
``keep`` (T, n) is 1 where a step of a sample is data and 0 where it is padding (the sample's states carry
over that step unchanged, as in Keras), or None; ``state_mask`` (n, u) is recurrent dropout's mask,
applied to the state entering each recurrent product, or None.

Backward, ``arriving`` (T or 1, n, u) is the gradient reaching each step's output (one row: the last
step's alone); ``dh`` (and an LSTM's ``dc``) hold on entry the gradient of the final states (a layer's
``return_state`` outputs, or zeros) and on return that of the initial states. Workspaces come from
``ws(name, shape)``.
"""

from __future__ import annotations

import numpy as np

from kerascli.ops.contract import LINEAR


def _state_in(ops, h, state_mask, ws):
    """The state as the recurrent product takes it: through recurrent dropout's mask where there is one."""
    return h if state_mask is None else np.multiply(h, state_mask, out=ws("masked_state", h.shape))


def _arrive(dh, arriving, t, steps):
    if len(arriving) == steps:
        dh += arriving[t]
    elif t == steps - 1:
        dh += arriving[0]


def _hold(ops, keep, t, grads, ws):
    """The gradients of padded samples at step t set aside (they pass over the step) and zeroed in
    ``grads`` (the step's own computation passes nothing back for them)."""
    if keep is None:
        return ()
    held = []
    for i, grad in enumerate(grads):
        through = ws(f"held{i}", grad.shape)
        ops.hold_masked(grad, keep[t], through)
        held.append(through)
    return held


def _release(held, grads):
    for grad, through in zip(grads, held):
        grad += through


def _state_gradient(ops, drec, kernel, state_mask, dh_prev, accumulate, ws):
    """dh_prev (+)= (drec @ kernel.T), through recurrent dropout's mask."""
    if state_mask is None:
        ops.gemm(drec, kernel, out=dh_prev, trans_b=True, accumulate=accumulate)
        return
    step = ops.gemm(drec, kernel, out=ws("state_step", dh_prev.shape), trans_b=True)
    step *= state_mask
    if accumulate:
        dh_prev += step
    else:
        dh_prev[...] = step


def _into(result, buffer):
    """Results of a loop that swaps buffers end in the caller's."""
    if result is not buffer:
        buffer[...] = result


# ---------------------------------------------------------------- SimpleRNN
def simple_rnn_sequence_forward(ops, xw, kernel, h, keep, state_mask, act, ws):
    """h[t + 1] = act(xw[t] + state_in(h[t]) @ kernel)."""
    rec = ws("rec", h.shape[1:])
    for t in range(len(xw)):
        ops.gemm(_state_in(ops, h[t], state_mask, ws), kernel, out=rec)
        ops.simple_rnn_step_forward(xw[t], rec, act, h[t + 1])
        if keep is not None:
            ops.carry_masked(h[t + 1], h[t], keep[t])


def simple_rnn_sequence_backward(ops, arriving, dh, kernel, h, keep, state_mask, act, dz, ws):
    """dz (T, n, u): the pre-activation gradient of every step."""
    steps = len(dz)
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        held = _hold(ops, keep, t, (dh,), ws)
        ops.bias_activation_backward(dh, h[t + 1], act, dz[t])
        _state_gradient(ops, dz[t], kernel, state_mask, dh, False, ws)
        _release(held, (dh,))


# ---------------------------------------------------------------- LSTM
def lstm_sequence_forward(ops, xw, kernel, h, c, gates, keep, state_mask, act, rec_act, ws):
    """Keras' LSTM steps; ``gates`` (T, n, 4u) receives the activated gates i, f, c, o."""
    rec = ws("rec", (h.shape[1], 4 * h.shape[2]))
    for t in range(len(xw)):
        ops.gemm(_state_in(ops, h[t], state_mask, ws), kernel, out=rec)
        ops.lstm_step_forward(xw[t], rec, c[t], act, rec_act, gates[t], c[t + 1], h[t + 1])
        if keep is not None:
            ops.carry_masked(c[t + 1], c[t], keep[t])
            ops.carry_masked(h[t + 1], h[t], keep[t])


def lstm_sequence_backward(ops, arriving, dh, dc, kernel, gates, c, keep, state_mask, act, rec_act, dz, ws):
    """dz (T, n, 4u): the gates' pre-activation gradients."""
    steps = len(dz)
    dh_in, dc_in = dh, dc
    dc_prev = ws("dc_prev", dc.shape)
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        held = _hold(ops, keep, t, (dh, dc), ws)
        ops.lstm_step_backward(dh, dc, gates[t], c[t], c[t + 1], act, rec_act, dz[t], dc_prev)
        dc, dc_prev = dc_prev, dc
        _state_gradient(ops, dz[t], kernel, state_mask, dh, False, ws)
        _release(held, (dh, dc))
    _into(dc, dc_in)
    _into(dh, dh_in)


# ---------------------------------------------------------------- GRU
def gru_sequence_forward(ops, xw, kernel, recurrent_bias, h, gates, rh, keep, state_mask, act, rec_act,
                         reset_after, ws):
    """Keras' GRU steps (gates z, r, h). ``recurrent_bias`` (3u) is the second bias row of ``reset_after``,
    or None; ``gates`` (T, n, 4u) and ``rh`` (T, n, u) receive what the backward pass needs."""
    n, units = h.shape[1], h.shape[2]
    width = 3 * units if reset_after else 2 * units
    rec = ws("rec", (n, width))
    for t in range(len(xw)):
        ops.gemm(_state_in(ops, h[t], state_mask, ws), kernel[:, :width], out=rec)
        if recurrent_bias is not None:
            ops.bias_activation_inplace(rec, recurrent_bias, LINEAR)
        ops.gru_gates_forward(xw[t], rec, h[t], rec_act, reset_after, gates[t], rh[t])
        reset_state = rh[t] if reset_after else ops.gemm(rh[t], kernel[:, 2 * units:], out=ws("rec_h", (n, units)))
        ops.gru_output_forward(xw[t], reset_state, h[t], act, gates[t], h[t + 1])
        if keep is not None:
            ops.carry_masked(h[t + 1], h[t], keep[t])


def gru_sequence_backward(ops, arriving, dh, kernel, gates, h, keep, state_mask, act, rec_act, reset_after,
                          dxw, drec, ws):
    """dxw (T, n, 3u): the input projections' gradients; drec (T, n, 3u): the recurrent products' (without
    ``reset_after``, drec[..., 2u:] is the candidate's, whose product took r * h)."""
    steps, units = len(dxw), dh.shape[1]
    dh_in = dh
    dh_prev, d_rh = ws("dh_prev", dh.shape), ws("d_rh", dh.shape)
    width = 3 * units if reset_after else 2 * units
    for t in range(steps - 1, -1, -1):
        _arrive(dh, arriving, t, steps)
        held = _hold(ops, keep, t, (dh,), ws)
        ops.gru_output_backward(dh, gates[t], h[t], act, rec_act, dxw[t], dh_prev)
        if reset_after:
            d_rh[...] = dxw[t][:, 2 * units:]
        else:
            ops.gemm(dxw[t][:, 2 * units:], kernel[:, 2 * units:], out=d_rh, trans_b=True)
        ops.gru_gates_backward(d_rh, gates[t], h[t], rec_act, reset_after, dxw[t], drec[t], dh_prev)
        dh, dh_prev = dh_prev, dh
        _state_gradient(ops, drec[t][:, :width], kernel[:, :width], state_mask, dh, True, ws)
        _release(held, (dh,))
    _into(dh, dh_in)
