"""One time step of the recurrent cells, around the products a layer forms with BLAS (``Ops.gemm``).

Shapes: a batch of B samples, H units. ``xw`` is the step's input projection with the input bias
(x_t @ kernel + bias), ``rec`` the recurrent one (h_{t-1} @ recurrent_kernel, plus the recurrent bias
where a GRU has one). Gates are kept activated, in Keras' order: LSTM i, f, c, o; GRU z, r, h. ``act`` and
``rec_act`` are activation codes (kerascli.ops.contract) whose gradient comes from their output.
"""

from __future__ import annotations

from kerascli.ops.contract import activation


def _value(z, act):
    return activation(act).forward(z)


def _grad(dy, y, act):
    return activation(act).backward(dy, y)


def lstm_step_forward(xw, rec, c_prev, act, rec_act, gates, c, h):
    """gates = [rec_act(i), rec_act(f), act(g), rec_act(o)] of xw + rec; c = f * c_prev + i * g;
    h = o * act(c)."""
    units = c.shape[1]
    z = xw + rec
    for k, code in enumerate((rec_act, rec_act, act, rec_act)):
        gates[:, k * units:(k + 1) * units] = _value(z[:, k * units:(k + 1) * units], code)
    i, f, g, o = (gates[:, k * units:(k + 1) * units] for k in range(4))
    c[...] = f * c_prev + i * g
    h[...] = o * _value(c, act)


def lstm_step_backward(dh, dc_next, gates, c_prev, c, act, rec_act, dz, dc_prev):
    """From the gradients of h_t (``dh``) and c_t (``dc_next``, from the step after): the gradient of the
    pre-activations (``dz``, B x 4H) and of c_{t-1} (``dc_prev``)."""
    units = c.shape[1]
    i, f, g, o = (gates[:, k * units:(k + 1) * units] for k in range(4))
    ac = _value(c, act)
    dc = dc_next + _grad(dh * o, ac, act)
    for k, (d, y, code) in enumerate(((dc * g, i, rec_act), (dc * c_prev, f, rec_act), (dc * i, g, act),
                                      (dh * ac, o, rec_act))):
        dz[:, k * units:(k + 1) * units] = _grad(d, y, code)
    dc_prev[...] = dc * f


def gru_gates_forward(xw, rec, h_prev, rec_act, reset_after, gates, rh):
    """z and r = rec_act(xw + rec) over the first 2H columns, into gates[:, :2H]. Then the candidate's
    recurrent input ``rh``: with ``reset_after`` r * rec[:, 2H:] (rec[:, 2H:] kept in gates[:, 3H:] for the
    gradient), else r * h_prev (the layer multiplies it by the candidate's recurrent kernel)."""
    units = h_prev.shape[1]
    gates[:, :2 * units] = _value(xw[:, :2 * units] + rec[:, :2 * units], rec_act)
    r = gates[:, units:2 * units]
    if reset_after:
        gates[:, 3 * units:] = rec[:, 2 * units:3 * units]
        rh[...] = r * rec[:, 2 * units:3 * units]
    else:
        rh[...] = r * h_prev


def gru_output_forward(xw, rec_h, h_prev, act, gates, h):
    """The candidate act(xw[:, 2H:] + rec_h) into gates[:, 2H:3H]; h = z * h_prev + (1 - z) * candidate."""
    units = h_prev.shape[1]
    candidate = _value(xw[:, 2 * units:3 * units] + rec_h, act)
    gates[:, 2 * units:3 * units] = candidate
    z = gates[:, :units]
    h[...] = z * h_prev + (1 - z) * candidate


def gru_output_backward(dh, gates, h_prev, act, rec_act, dxw, dh_prev):
    """dxw[:, 0:H] (update gate) and dxw[:, 2H:3H] (candidate) from dh; dh_prev = dh * z (the direct path).
    The candidate's gradient is also the gradient of its recurrent input ``rec_h``."""
    units = h_prev.shape[1]
    z, candidate = gates[:, :units], gates[:, 2 * units:3 * units]
    dxw[:, :units] = _grad(dh * (h_prev - candidate), z, rec_act)
    dxw[:, 2 * units:3 * units] = _grad(dh * (1 - z), candidate, act)
    dh_prev[...] = dh * z


def gru_gates_backward(d_rh, gates, h_prev, rec_act, reset_after, dxw, drec, dh_prev):
    """From ``d_rh``, the gradient of gru_gates_forward's ``rh``: the reset gate's into dxw[:, H:2H] and the
    gradients of the recurrent products into ``drec`` (B x 3H: z, r, then the candidate's: r * d_rh with
    ``reset_after``, else its pre-activation gradient dxw[:, 2H:]); with ``reset_after`` off, r * d_rh is
    added to ``dh_prev``."""
    units = h_prev.shape[1]
    r = gates[:, units:2 * units]
    if reset_after:
        dxw[:, units:2 * units] = _grad(d_rh * gates[:, 3 * units:], r, rec_act)
        drec[:, 2 * units:3 * units] = d_rh * r
    else:
        dxw[:, units:2 * units] = _grad(d_rh * h_prev, r, rec_act)
        drec[:, 2 * units:3 * units] = dxw[:, 2 * units:3 * units]
        dh_prev += d_rh * r
    drec[:, :2 * units] = dxw[:, :2 * units]


def simple_rnn_step_forward(xw, rec, act, h):
    """h = act(xw + rec)."""
    h[...] = _value(xw + rec, act)
