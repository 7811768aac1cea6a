"""Optimizer steps over the flat parameter buffer, split across threads."""

from __future__ import annotations


def sgd_step(ops, params, grads, velocity, lr, momentum, nesterov):
    ops.parallel(lambda i, lo, hi: ops.sgd_update(params[lo:hi], grads[lo:hi], velocity[lo:hi], lr, momentum,
                                                  nesterov), params.size, params.size)


def adam_step(ops, params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    ops.parallel(lambda i, lo, hi: ops.adam_update(params[lo:hi], grads[lo:hi], m[lo:hi], v[lo:hi], alpha,
                                                   one_minus_beta_1, one_minus_beta_2, epsilon),
                 params.size, params.size)
