"""The flat gradient's sum over the ranks in buckets, each sent as soon as the backward pass has finished
it, so that the last layers' sums travel while the first layers' gradients are computed (the buckets of
PyTorch's DistributedDataParallel, Horovod's tensor fusion).

The backward pass runs the nodes in reverse; after each node, the gradient from some offset to the end of
the buffer is final (a layer's weights lie in node order; a layer another one absorbed is final when its
absorber's backward ran). ``bucket_plan`` cuts that tail into buckets of at least ``cap`` bytes; each is
posted as a nonblocking ``Iallreduce`` (an ``Iallgather`` with ``train.deterministic``, summed in rank
order at the end: the same bits as the sum after the backward pass), and every later node's end tests the
requests, which is where MPI libraries progress them.

Whether that pays depends on the network and is measured, not assumed (``KERASCLI_MPI_OVERLAP=auto``):
where the bytes are moved and added by the cores that also compute (shared memory, TCP on loopback),
there is nothing to overlap with; where a network adapter moves them, the transfer time can hide behind
the backward pass. ``auto`` runs ``TRIALS`` steps each way (alternating, after ``WARMUP`` steps), adds the
ranks' median step times and overlaps only if that is at least ``MARGIN`` faster. ``on`` and ``off`` fix
the choice; ``KERASCLI_MPI_BUCKET_MB`` sets the bucket size.
"""

from __future__ import annotations

import numpy as np

WARMUP, TRIALS, MARGIN = 5, 8, 0.02
DEFAULT_BUCKET_MB = 0.25


def bucket_plan(model, cap_bytes: float) -> list[tuple[int, int, int]]:
    """(node index after whose backward the bucket is final, lo, hi) of each bucket of ``model``'s gradient
    buffer, in posting order: the buckets tile the buffer from its end to 0, each of at least ``cap_bytes``
    but the last, and each cut where a layer's weights start."""
    size = int(model.grad_buffer.size)
    if size == 0:
        return []
    index = {node.layer.name: i for i, node in enumerate(model.nodes)}
    layers = []  # (first offset, node after which its gradient is final) of each layer with trainable weights
    for i, node in enumerate(model.nodes):
        layer = node.layer
        spans = [model.slices[f"{layer.name}/{spec.name}"] for spec in layer.weight_specs if spec.trainable]
        if spans:
            absorber = layer.absorbed_by
            final = i if absorber is None else min(i, index[absorber.name])
            layers.append((min(s.start for s in spans), final))
    cap = max(1, int(cap_bytes // model.grad_buffer.itemsize))
    plan, hi = [], size
    for i in range(len(model.nodes) - 1, 0, -1):
        lo = hi
        for start, final in reversed(layers):  # the tail of layers all final after node i
            if final < i:
                break
            lo = min(lo, start)
        if hi - lo >= cap:
            plan.append((i, lo, hi))
            hi = lo
    if hi > 0:
        plan.append((0, 0, hi))  # after the first node every gradient is final
    return plan


def add_in_rank_order(parts: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the ranks' ``parts`` (one row each, as an Allgather leaves them) added in rank order: the
    deterministic sum, the same bits whether the buffer went whole or in buckets."""
    out[...] = parts[0]
    for part in parts[1:]:
        out += part


def parse_settings(environ) -> tuple[str, float, str | None]:
    """(overlap mode, bucket bytes, error message or None) from KERASCLI_MPI_OVERLAP and _BUCKET_MB."""
    mode = environ.get("KERASCLI_MPI_OVERLAP", "auto")
    if mode not in ("auto", "on", "off"):
        return "off", 0.0, f"KERASCLI_MPI_OVERLAP must be auto, on or off, got {mode!r}"
    text = environ.get("KERASCLI_MPI_BUCKET_MB", str(DEFAULT_BUCKET_MB))
    try:
        mb = float(text)
    except ValueError:
        mb = float("nan")
    if not (0 < mb < float("inf")):
        return mode, 0.0, f"KERASCLI_MPI_BUCKET_MB must be a positive number of MiB, got {text!r}"
    return mode, mb * 2**20, None


class OverlappedSums:
    """The gradient's sum over ``world``'s ranks, bucket by bucket during the backward pass (see the module's
    docstring). Per step: ``begin(rows)``, the model's backward with ``after_node`` called after each node,
    then ``finish()``; ``record(seconds)`` with the step's time drives the ``auto`` choice."""

    def __init__(self, world, model, mode: str, cap_bytes: float):
        self.world, self.model, self.mode, self.cap_bytes = world, model, mode, cap_bytes
        self.comm, self.MPI = world.buckets_comm, world.MPI
        self.plan = bucket_plan(model, cap_bytes)
        self.at = {node: k for k, (node, _, _) in enumerate(self.plan)}
        # each weight regularizer's gradient goes into its weight's bucket before that is sent
        base, itemsize = model.grad_buffer.ctypes.data, model.grad_buffer.itemsize
        self.penalties: list[list] = [[] for _ in self.plan]
        for reg, weight, grad in model.regularized:
            offset = (grad.ctypes.data - base) // itemsize
            k = next(k for k, (_, lo, hi) in enumerate(self.plan) if lo <= offset < hi)
            self.penalties[k].append((reg, weight, grad))
        size = world.comm.Get_size()
        self.gathered = [np.empty((size, hi - lo), model.grad_buffer.dtype) for _, lo, hi in self.plan] \
            if world.deterministic else None
        self.overlapped: bool | None = {"on": True, "off": False}.get(mode)
        if mode == "auto" and len(self.plan) < 2:
            self.overlapped = False  # one bucket: nothing would travel during the backward pass
        self.steps = 0
        self.times: dict[bool, list[float]] = {True: [], False: []}
        self.measured: tuple[float, float] | None = None  # ranks' mean of median step seconds: (on, off)
        self._rows = np.zeros(1, np.float64)
        self._requests: list = []

    @property
    def active(self) -> bool:
        """Whether this step sends its buckets during the backward pass."""
        if self.overlapped is not None:
            return self.overlapped
        return self.steps >= WARMUP and (self.steps - WARMUP) % 2 == 0

    def begin(self, rows: int) -> None:
        """A step with ``rows`` samples on this rank starts: the global count is summed while it runs (each
        rank's gradient is weighted by its share before it is sent)."""
        self.rows = rows
        self._rows[0] = rows
        self._share = None
        self._requests = [self.comm.Iallreduce(self.MPI.IN_PLACE, self._rows, op=self.MPI.SUM)]

    def after_node(self, node: int) -> None:
        k = self.at.get(node)
        if k is None:
            self.MPI.Request.Testall(self._requests)  # lets the library move what is under way
            return
        if self._share is None:
            with self.world._waiting():
                self._requests[0].Wait()
            self._share = self.rows / self._rows[0]
        _, lo, hi = self.plan[k]
        self.model.add_penalty_gradients(self.penalties[k])
        bucket = self.model.grad_buffer[lo:hi]
        bucket *= bucket.dtype.type(self._share)
        if self.gathered is not None:
            self._requests.append(self.comm.Iallgather(bucket, self.gathered[k]))
        else:
            self._requests.append(self.comm.Iallreduce(self.MPI.IN_PLACE, bucket, op=self.MPI.SUM))

    def finish(self) -> None:
        """Wait for every bucket's sum; with ``train.deterministic``, add the ranks' parts in rank order."""
        with self.world._waiting():
            self.MPI.Request.Waitall(self._requests)
        self._requests = []
        if self.gathered is not None:
            for (_, lo, hi), parts in zip(self.plan, self.gathered):
                add_in_rank_order(parts, self.model.grad_buffer[lo:hi])

    def record(self, seconds: float) -> None:
        """The time of the step that just ended (``auto``: after the trials, every rank takes the same
        choice from the ranks' summed medians)."""
        if self.overlapped is None and self.steps >= WARMUP:
            self.times[self.active].append(seconds)
            if len(self.times[True]) >= TRIALS and len(self.times[False]) >= TRIALS:
                medians = np.array([np.median(self.times[True]), np.median(self.times[False])])
                self.world.sum(medians)
                medians /= self.world.size
                self.measured = (float(medians[0]), float(medians[1]))
                self.overlapped = bool(medians[0] < medians[1] * (1 - MARGIN))
        self.steps += 1

    def describe(self) -> dict:
        """For summary.json."""
        out = {"overlap": self.mode, "buckets": len(self.plan), "bucket_mb": self.cap_bytes / 2**20,
               "overlapped": self.overlapped}
        if self.measured is not None:
            out["ms_per_step"] = {"overlapped": 1e3 * self.measured[0], "after_backward": 1e3 * self.measured[1]}
        return out
