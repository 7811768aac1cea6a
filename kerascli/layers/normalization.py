"""BatchNormalization (Keras' defaults and moving statistics; frozen, ``trainable: false``, it runs in inference
mode in training too, as Keras' does), LayerNormalization, GroupNormalization, UnitNormalization, and the
preprocessing Normalization (statistics given or adapted to the training split)."""

from __future__ import annotations

from kerascli.config.params import Param, constraint_param, regularizer_param
from kerascli.graph.layer import AxesToEnd, Layer, ShapeError
from kerascli.registry import INITIALIZERS


def _scale_and_shift_params() -> dict:
    return {
        "center": Param("bool", True),
        "scale": Param("bool", True),
        "beta_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "gamma_initializer": Param("typed", "ones", choices=INITIALIZERS),
        "beta_regularizer": regularizer_param(),
        "gamma_regularizer": regularizer_param(),
        "beta_constraint": constraint_param(),
        "gamma_constraint": constraint_param(),
    }


class BatchNormalization(Layer):
    """Training: normalise by batch statistics and update moving ones; inference: use the moving ones."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {
        "axis": Param("int", -1, min=-64, max=64, doc="the feature axis (-1: the last)"),
        "momentum": Param("float", 0.99, min=0.0, max=1.0),
        "epsilon": Param("float", 0.001, min=0.0, exclusive_min=True),
        **_scale_and_shift_params(),
        "moving_mean_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "moving_variance_initializer": Param("typed", "ones", choices=INITIALIZERS),
        "synchronized": Param("bool", False, doc="data-parallel training: the batch statistics of the whole "
                              "batch, over every rank's part (PyTorch's SyncBatchNorm); one process: no effect"),
    }
    # set by data-parallel training (kerascli.train.distributed.DataParallel) where synchronized is on
    sync = None

    def build(self, input_shape):
        c = self.config
        self._axes = AxesToEnd(c["axis"], input_shape)
        self.host_only = self._axes.moves  # moving the feature axis last is a host copy
        self.channels = self._axes.size
        if c["scale"]:
            self.add_weight("gamma", (self.channels,), c["gamma_initializer"], regularizer=c["gamma_regularizer"],
                            constraint=c["gamma_constraint"])
        if c["center"]:
            self.add_weight("beta", (self.channels,), c["beta_initializer"], regularizer=c["beta_regularizer"],
                            constraint=c["beta_constraint"])
        self.add_weight("moving_mean", (self.channels,), c["moving_mean_initializer"], trainable=False)
        self.add_weight("moving_variance", (self.channels,), c["moving_variance_initializer"], trainable=False)
        return tuple(input_shape)

    def forward(self, x, training):
        x2, self._moved = self._axes.rows(self.ops, x)
        gamma, beta = _gamma_beta(self, self.channels, x.dtype)
        eps = self.config["epsilon"]
        self._frozen = training and not self.trainable
        self._gamma = gamma
        if not training or not self.trainable:  # a frozen layer runs in inference mode, as in Keras
            y = self.ops.batch_norm_inference(
                x2, self.params["moving_mean"], self.params["moving_variance"], gamma, beta, eps
            )
            return self._axes.restore(self.ops, y, self._moved)
        self._synced = self.sync if self.config["synchronized"] else None
        if self._synced is not None:
            y, mean, var, self._xhat, self._inv_std = self._synchronized_forward(x2, gamma, beta, eps)
        else:
            y, mean, var, self._xhat, self._inv_std = self.ops.batch_norm_forward_train(x2, gamma, beta, eps)
        momentum = self.config["momentum"]
        self.ops.moving_average_update(self.params["moving_mean"], mean, momentum)
        self.ops.moving_average_update(self.params["moving_variance"], var, momentum)
        return self._axes.restore(self.ops, y, self._moved)

    def backward(self, dy):
        dy2, _ = self._axes.rows(self.ops, dy)
        if self._frozen:  # y = (x - mean) * gamma / sqrt(var + eps) + beta with fixed statistics
            zeros = _constant(self, "zeros", 0, self.channels, dy.dtype)
            dx = self.ops.batch_norm_inference(dy2, zeros, self.params["moving_variance"], self._gamma, zeros,
                                               self.config["epsilon"])
            return self._axes.restore(self.ops, dx, self._moved)
        if self._synced is not None:
            dx, dgamma, dbeta = self._synchronized_backward(dy2)
        else:
            dx, dgamma, dbeta = self.ops.batch_norm_backward(dy2, self._xhat, self._gamma, self._inv_std)
        _store_scale_shift_grads(self, dgamma, dbeta)
        return self._axes.restore(self.ops, dx, self._moved)

    # With synchronized on, under data-parallel training (host arrays: the backends that train so), the
    # statistics are those of the whole batch: each rank adds its part's count, sum and sum of squares to the
    # others'. A rank's loss gradient is its part's mean (1 / n of its samples), and its parameter gradients
    # are weighted by n / N when summed; so its backward pass takes the whole batch's sums of dy and dy * xhat
    # in that scale (each rank's weighted by n / N) and returns dx in its own (see the module docstring of
    # kerascli.train.distributed).
    def _synchronized_forward(self, x2, gamma, beta, eps):
        import numpy as np

        sync, c = self._synced, self.channels
        n = sync.rows  # 0 for a stand-in batch: it counts for nothing
        x = np.asarray(x2, np.float64)
        sums = np.concatenate([[n], n * x.mean(axis=0), n * (x * x).mean(axis=0)])
        sync.world.sum(sums)
        total = sums[0]
        mean = sums[1 : c + 1] / total
        var = np.maximum(sums[c + 1 :] / total - mean * mean, 0.0)
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = (x - mean) * inv_std
        dt = x2.dtype
        self._rows = (n, total)
        return ((xhat * gamma + beta).astype(dt), mean.astype(dt), var.astype(dt), xhat.astype(dt),
                inv_std.astype(dt))

    def _synchronized_backward(self, dy2):
        import numpy as np

        n, total = self._rows
        dy, xhat = np.asarray(dy2, np.float64), np.asarray(self._xhat, np.float64)
        dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
        sums = np.concatenate([dbeta, dgamma]) * (n / total)
        self._synced.world.sum(sums)
        c, m = self.channels, max(n, 1)
        dx = (np.asarray(self._gamma, np.float64) * self._inv_std) * (dy - sums[:c] / m - xhat * (sums[c:] / m))
        dt = dy2.dtype
        return dx.astype(dt), dgamma.astype(dt), dbeta.astype(dt)


def _constant(layer, name, value, size, dtype):
    """A constant vector standing in for a weight the layer does not have (made once)."""
    have = layer._workspace.get(name)
    if have is None or have.dtype != dtype:
        have = layer._workspace[name] = layer.ops.full((size,), value, dtype)
    return have


def _gamma_beta(layer, size, dtype):
    """The layer's gamma and beta as flat vectors (ones and zeros for those it does not have)."""
    gamma, beta = layer.params.get("gamma"), layer.params.get("beta")
    gamma = _constant(layer, "ones", 1, size, dtype) if gamma is None else gamma.reshape(size)
    beta = _constant(layer, "zeros", 0, size, dtype) if beta is None else beta.reshape(size)
    return gamma, beta


def _store_scale_shift_grads(layer, dgamma, dbeta):
    if "gamma" in layer.grads:
        layer.ops.assign(layer.grads["gamma"], dgamma.reshape(layer.grads["gamma"].shape))
    if "beta" in layer.grads:
        layer.ops.assign(layer.grads["beta"], dbeta.reshape(layer.grads["beta"].shape))


class LayerNormalization(Layer):
    """Each sample normalised by its own mean and variance over ``axis`` (one axis or several), then scaled
    by ``gamma`` and shifted by ``beta``, which have the shape of those axes."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {
        "axis": Param("int_list", -1, doc="axis or axes normalised over (-1: the last)"),
        "epsilon": Param("float", 0.001, min=0.0, exclusive_min=True),
        **_scale_and_shift_params(),
    }

    def build(self, input_shape):
        c = self.config
        self._axes = AxesToEnd(c["axis"], input_shape)
        self.host_only = self._axes.moves
        shape = self._axes.shape
        if c["scale"]:
            self.add_weight("gamma", shape, c["gamma_initializer"], regularizer=c["gamma_regularizer"],
                            constraint=c["gamma_constraint"])
        if c["center"]:
            self.add_weight("beta", shape, c["beta_initializer"], regularizer=c["beta_regularizer"],
                            constraint=c["beta_constraint"])
        return tuple(input_shape)

    def forward(self, x, training):
        x2, self._moved = self._axes.rows(self.ops, x)
        self._gamma, beta = _gamma_beta(self, self._axes.size, x.dtype)
        y, self._xhat, self._inv_std = self.ops.layer_norm_forward(x2, self._gamma, beta, self.config["epsilon"])
        return self._axes.restore(self.ops, y, self._moved)

    def backward(self, dy):
        dy2, _ = self._axes.rows(self.ops, dy)
        dx, dgamma, dbeta = self.ops.layer_norm_backward(dy2, self._xhat, self._gamma, self._inv_std)
        _store_scale_shift_grads(self, dgamma, dbeta)
        return self._axes.restore(self.ops, dx, self._moved)


class GroupNormalization(Layer):
    """The channels (``axis``) in ``groups`` groups; each sample's group normalised over every position and
    its channels, then scaled and shifted per channel."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {
        "groups": Param("int", 32, min=1),
        "axis": Param("int", -1, min=-64, max=64, doc="the channel axis (-1: the last)"),
        "epsilon": Param("float", 0.001, min=0.0, exclusive_min=True),
        **_scale_and_shift_params(),
    }
    host_only = True

    def build(self, input_shape):
        c = self.config
        self._axes = AxesToEnd(c["axis"], input_shape)
        channels = self._axes.size
        if channels % c["groups"]:
            raise ShapeError(f"{channels} channels cannot be split into {c['groups']} groups of equal size")
        if c["scale"]:
            self.add_weight("gamma", (channels,), c["gamma_initializer"], regularizer=c["gamma_regularizer"],
                            constraint=c["gamma_constraint"])
        if c["center"]:
            self.add_weight("beta", (channels,), c["beta_initializer"], regularizer=c["beta_regularizer"],
                            constraint=c["beta_constraint"])
        return tuple(input_shape)

    def _samples(self, x):
        rows, moved = self._axes.rows(self.ops, x)
        return rows.reshape(len(x), -1, self._axes.size), moved

    def forward(self, x, training):
        x3, self._moved = self._samples(x)
        self._gamma, beta = _gamma_beta(self, self._axes.size, x.dtype)
        y, self._xhat, self._inv_std = self.ops.group_norm_forward(x3, self.config["groups"], self._gamma, beta,
                                                                   self.config["epsilon"])
        return self._axes.restore(self.ops, y, self._moved)

    def backward(self, dy):
        dy3, _ = self._samples(dy)
        dx, dgamma, dbeta = self.ops.group_norm_backward(dy3, self._xhat, self._inv_std, self._gamma)
        _store_scale_shift_grads(self, dgamma, dbeta)
        return self._axes.restore(self.ops, dx, self._moved)


class UnitNormalization(Layer):
    """Each sample divided by its L2 norm over ``axis`` (one or several)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {"axis": Param("int_list", -1, doc="axis or axes of the norm (-1: the last)")}
    host_only = True
    EPSILON = 1e-12  # Keras': the largest factor is 1 / epsilon

    def build(self, input_shape):
        self._axes = AxesToEnd(self.config["axis"], input_shape)
        return tuple(input_shape)

    def forward(self, x, training):
        x2, self._moved = self._axes.rows(self.ops, x)
        self._y, self._factor, self._capped = self.ops.unit_normalize(x2, self.EPSILON)
        return self._axes.restore(self.ops, self._y, self._moved)

    def backward(self, dy):
        dy2, _ = self._axes.rows(self.ops, dy)
        dx = self.ops.unit_normalize_backward(dy2, self._y, self._factor, self._capped)
        return self._axes.restore(self.ops, dx, self._moved)


class Normalization(Layer):
    """Keras' Normalization: (x - mean) / sqrt(variance) per feature along ``axis`` (a list for several, null
    for one mean over everything), from the given ``mean`` and ``variance`` or, without them, statistics
    adapted to the training split before the first epoch and stored in the run as the non-trainable weights
    ``mean`` and ``variance``; ``invert`` applies the inverse. Host numpy (refused on the cuda backend)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    host_only = True
    EPSILON = 1e-7  # Keras' backend epsilon: the smallest scale divided by
    PARAMS = {
        "axis": Param("int_list", -1, nullable=True, doc="the axes kept (counted with the batch axis, as Keras')"),
        "mean": Param("floats", None, nullable=True),
        "variance": Param("floats", None, min=0.0, nullable=True),
        "invert": Param("bool", False),
    }

    def build(self, input_shape):
        c = self.config
        full = (None,) + tuple(input_shape)
        ndim = len(full)
        axes = () if c["axis"] is None else (c["axis"],) if isinstance(c["axis"], int) else tuple(c["axis"])
        if any(not -ndim <= a < ndim for a in axes):
            raise ShapeError(f"axis {c['axis']} outside [{-ndim}, {ndim}) for inputs of rank {ndim} (with the batch)")
        keep = tuple(sorted({a % ndim for a in axes}))
        if 0 in keep:
            raise ShapeError("axis 0 is the batch axis, whose size is not known: keep per-sample axes only")
        self._reduce = tuple(d for d in range(ndim) if d not in keep)  # with the batch axis
        self._broadcast = tuple(full[d] if d in keep else 1 for d in range(1, ndim))
        stats_shape = tuple(full[d] for d in keep)
        if (c["mean"] is None) != (c["variance"] is None):
            raise ShapeError("give both mean and variance, or neither (then they are adapted to the training data)")
        if isinstance(c["mean"], list) != isinstance(c["variance"], list) or (
                isinstance(c["mean"], list) and len(c["mean"]) != len(c["variance"])):
            raise ShapeError(f"mean {c['mean']} and variance {c['variance']} must have the same shape (as in Keras)")
        self.needs_adapt = c["mean"] is None
        self._arrays = None
        if self.needs_adapt:
            self.add_weight("mean", stats_shape, "zeros", trainable=False)
            self.add_weight("variance", stats_shape, "ones", trainable=False)
            self._given = None
        else:
            self._given = [self._align(name, c[name], keep, full) for name in ("mean", "variance")]
        return tuple(input_shape)

    def _align(self, name, value, keep, full):
        """(values, the broadcast axis they run along or None) of a given mean or variance: a number
        everywhere, else a list along the last kept axis (one value, or one per entry), as Keras aligns
        them from the right."""
        if not isinstance(value, list):
            return [value], None
        if not keep:
            raise ShapeError(f"{name} is a list but axis keeps no axis; give one number")
        size = full[keep[-1]]
        if len(value) not in (1, size):
            raise ShapeError(f"{name} has {len(value)} values, the last kept axis has {size}")
        return value, keep[-1] - 1

    def _statistics(self):
        if self.needs_adapt:
            return self.params["mean"].reshape(self._broadcast), self.params["variance"].reshape(self._broadcast)
        if self._arrays is None:
            self._arrays = tuple(self.ops.statistic_array(values, self._broadcast, axis) for values, axis in self._given)
        return self._arrays

    def adapt(self, batches) -> int:
        """Set mean and variance from ``batches`` (this layer's inputs, the training split batch by batch);
        the number of samples seen."""
        state = (0, 0.0, 0.0)
        for x in batches:
            state = self.ops.moments_update(state, x, self._reduce)
        count, mean, m2 = state
        if count == 0:
            raise ShapeError("no training samples to adapt mean and variance to")
        self.params["mean"][...] = mean
        self.params["variance"][...] = m2 / count
        return count

    def forward(self, x, training):
        mean, variance = self._statistics()
        return self.ops.standardize(x, mean, variance, self.config["invert"], self.EPSILON)

    def backward(self, dy):
        return self.ops.standardize_backward(dy, self._statistics()[1], self.config["invert"], self.EPSILON)
