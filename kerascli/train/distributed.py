"""Data-parallel training over MPI (mpi4py): every process of ``mpiexec -n P kerascli train ...`` (or
``srun``) runs the same command on its shard of every global batch.

* Each global batch (the 1-process run's, in its order) is cut into P consecutive parts, one per rank.
  A rank's gradient (its mean over its part) is weighted by its share of the batch and the weighted
  gradients are summed over the ranks with one buffer ``Allreduce`` on the flat gradient buffer: every
  rank then holds the global batch's mean gradient and takes the same optimizer step. Where every node
  runs as many ranks, the ranks of a node sum through memory they share instead, each its slice of the
  gradient, and each slice is summed between the nodes by the ranks at the same place on each node (an
  ``Allreduce`` per slice, side by side); with an elementwise optimizer each rank updates only its slice
  of the weights, which the ranks of its node share (``SharedSums``). The flat ``Allreduce`` may go in
  buckets sent during the backward pass, where a run measures that this pays (kerascli.train.buckets).
* With every step, one small ``Allreduce`` carries each rank's sample count, loss and metric sums and
  the signal it received (if any): the epoch's loss and metrics are over all ranks, a diverging loss is
  seen by every rank at the same step, and a signal to any rank stops all of them after the same step.
* BatchNormalization normalises by the statistics of each rank's part (Keras' default,
  ``synchronized: false``), or with ``synchronized: true`` by those of the whole batch (each rank's
  counts, sums and sums of squares added up in the forward pass, the sums of its backward pass likewise);
  the moving statistics are averaged over the ranks after each step, weighted by their parts, so every
  rank holds the same.
* Dropout and noise layers draw from a stream per rank: rank 0's is the 1-process run's (kept in
  checkpoints), rank r > 0 reseeds from (seed, layer, r, global step) before each step, so a resume on
  any number of ranks is reproducible without storing the other ranks' generators.
* Rank 0 alone writes the run directory, prints, and handles checkpoints and callbacks. After its
  callbacks at the start of training and at each epoch's end it sends the whole training state (weights,
  optimizer, position, learning rate, whether to stop) to the other ranks, which take it as if from a
  checkpoint: a resume, a NaN rollback or a callback's change reaches every rank, and ranks never drift.

``train.deterministic: true`` sums in rank order (an Allgather, then a fixed-order sum) so the same
command gives the same bits; without it, MPI's Allreduce order is MPI's.

mpi4py is imported only when a launcher started more than one process (PMI_SIZE, OMPI_COMM_WORLD_SIZE,
or a Slurm job step's SLURM_STEP_NUM_TASKS); rank and size then come from MPI itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time

import numpy as np

from kerascli.errors import ConfigError, KerascliError
from kerascli.train import buckets
from kerascli.train.loop import Totals, batch_length
from kerascli.train.node_memory import SharedSums
from kerascli.train.sharding import Padding

ABORT_GRACE = 0.5  # seconds between a rank's last words and ending the job
DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait for the other ranks (KERASCLI_MPI_TIMEOUT)
# what the start-of-training agreement can say for each rank (besides an exit code for a failure)
READY, NOTHING_TO_DO = 0, 1000
# after a diverged loss, what rank 0 decided (kerascli.commands.fit_with_rollback)
REFIT, TERMINATED, GIVE_UP = 0, 1, 2


def launched_processes() -> int:
    """How many processes a launcher says it started (1 when none did)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    # a Slurm job step (srun) has a numeric step id; the batch script itself runs as step "batch"
    if os.environ.get("SLURM_STEP_ID", "").isdigit() and os.environ.get("SLURM_STEP_NUM_TASKS", "").isdigit():
        return int(os.environ["SLURM_STEP_NUM_TASKS"])
    return 1


def updates_by_parts(spec) -> bool:
    """Whether the ranks of a node may share the weights and each update its part of them (SharedSums):
    a built-in optimizer whose update is elementwise (kerascli.optimizers.Optimizer.updates_by_parts)."""
    from kerascli.registry import OPTIMIZERS

    config = spec.compile["optimizer"]
    cls = OPTIMIZERS.get(config["type"])
    return cls.__module__ == "kerascli.optimizers" and cls.updates_by_parts(config)


_WORLD: "World | None" = None


def current() -> "World | None":
    """The world made by ``world()`` in this process, if any (error handling asks)."""
    return _WORLD


def world() -> "World | None":
    """The MPI world when a launcher started several processes, else None (and mpi4py is not imported)."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    launched = launched_processes()
    if launched <= 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(f"started as one of {launched} MPI processes, but mpi4py is not installed: "
                          "pip install 'kerascli[mpi]' (and an MPI library, e.g. pip install mpich)") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() <= 1:
        return None
    _WORLD = World(comm, MPI)
    if _WORLD.setup_error:
        raise ConfigError(_WORLD.setup_error)
    return _WORLD


class World:
    """This process's place among the ranks, and the collective operations training uses."""

    def __init__(self, comm, mpi):
        self.comm, self.MPI = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(mpi.COMM_TYPE_SHARED)
        self.local_size = node.Get_size()  # ranks on this node (they divide its cores among them)
        # the ranks this one shares memory with, and the ranks at its place in the other such groups
        self.setup_error: str | None = None  # said once every rank is ready to say it (``world``)
        self.node, self.across = self._memory_groups(node)
        # the flat gradient's buckets go over a communicator of their own (kerascli.train.buckets)
        self.overlap, self.bucket_bytes, error = buckets.parse_settings(os.environ)
        self.setup_error = self.setup_error or error
        self.buckets_comm = comm.Dup()
        self.buckets: buckets.OverlappedSums | None = None
        self.deterministic = False
        self.started = False  # past the start-of-training agreement: a failure now aborts every rank
        self.finished = False  # training over: what rank 0 does after it concerns no other rank
        self.pending_signal = lambda: 0  # the signal this rank received and has not acted on (GracefulStop)
        self.agreed_signal = 0  # the signal all ranks stop on after this step (0: none)
        self.allreduce_seconds = 0.0  # time in the gradient sums, for the summary
        self.steps = 0
        # a rank that dies is noticed by the launcher (mpiexec ends the job); one that hangs, or a launcher
        # that lets the others wait, is noticed here: no collective of training may take longer than this
        self.timeout = float(os.environ.get("KERASCLI_MPI_TIMEOUT", DEFAULT_TIMEOUT))
        self._waiting_since: float | None = None
        self.shared: SharedSums | None = None  # gradient sums through the node's shared memory
        # whether the ranks of a node each update only their part of the weights, which they share
        # (set from the config before the model is built: updates_by_parts)
        self.by_parts = False
        if self.timeout > 0:
            threading.Thread(target=self._watch, name="kerascli-mpi-watchdog", daemon=True).start()

    def _memory_groups(self, node):
        """(this rank's node, the ranks at its place on the other nodes) where every node runs as many ranks
        (more than one), else (None, None). KERASCLI_MPI_NODE_RANKS=N takes each N consecutive ranks of a
        node as a node of their own (one per socket, say, or several on one machine to try the multi-node
        path)."""
        per = os.environ.get("KERASCLI_MPI_NODE_RANKS", "")
        if per and (not per.isdigit() or int(per) < 1):
            self.setup_error = f"KERASCLI_MPI_NODE_RANKS must be a whole number of ranks (1 or more), got {per!r}"
        elif per:
            node = node.Split(node.Get_rank() // int(per), node.Get_rank())
        self.nodes = self.comm.allreduce(int(node.Get_rank() == 0))
        sizes = self.comm.allgather(node.Get_size())
        if min(sizes) != max(sizes) or sizes[0] == 1:
            return None, None
        return node, self.comm.Split(node.Get_rank(), self.rank)

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            since = self._waiting_since
            if since is not None and time.monotonic() - since > self.timeout:
                sys.stderr.write(f"error: rank {self.rank}: no word from the other ranks for {self.timeout:g} s (a rank "
                                 "died or hangs); ending the job (KERASCLI_MPI_TIMEOUT sets the limit)\n")
                self.abort(1)

    @contextlib.contextmanager
    def _waiting(self):
        self._waiting_since = time.monotonic()
        try:
            yield
        finally:
            self._waiting_since = None

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """For summary.json: the ranks, and the time per step spent summing gradients over them."""
        if self.shared is None:
            sums = "MPI Allreduce"
        else:
            sums = "shared memory" if self.nodes == 1 else "shared memory, then MPI Allreduce between nodes"
        return {"ranks": self.size, "nodes": self.nodes, "ranks_per_node": self.local_size,
                "deterministic": self.deterministic,
                "allreduce_ms_per_step": 1e3 * self.allreduce_seconds / max(self.steps, 1),
                "gradient_sums": sums,
                "gradient_buckets": None if self.buckets is None else self.buckets.describe(),
                "optimizer_step": "by parts" if self.shared is not None and self.shared.by_parts else "whole",
                "mpi": self.MPI.Get_library_version().splitlines()[0].strip()}

    # ------------------------------------------------------------- collectives
    def sum(self, buf: np.ndarray, comm=None) -> None:
        """Replace ``buf`` on every rank by its sum over the ranks (of ``comm``, default all; the same bits
        on each)."""
        comm = self.comm if comm is None else comm
        with self._waiting():
            if self.deterministic:  # every rank adds the ranks' parts in rank order
                gathered = np.empty((comm.Get_size(),) + buf.shape, buf.dtype)
                comm.Allgather(buf, gathered)
                buckets.add_in_rank_order(gathered, buf)
            else:
                comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def maximum(self, buf: np.ndarray) -> None:
        with self._waiting():
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX)

    def broadcast_bytes(self, data: bytes | None) -> bytes:
        """Rank 0's bytes, on every rank."""
        with self._waiting():
            size = np.array([len(data) if self.leader else 0], np.int64)
            self.comm.Bcast(size, root=0)
            buf = np.frombuffer(data, np.uint8).copy() if self.leader else np.empty(int(size[0]), np.uint8)
            self.comm.Bcast(buf, root=0)
        return buf.tobytes()

    def broadcast_code(self, code: int | None = None) -> int:
        value = np.array([code if self.leader else 0], np.int64)
        with self._waiting():
            self.comm.Bcast(value, root=0)
        return int(value[0])

    # the model's buffers (Model.allocate's storage): where every node runs as many ranks, in memory the
    # ranks of a node share (``SharedSums``), else the model's own (None)
    def _node_memory(self, size: int, dtype) -> "SharedSums | None":
        # KERASCLI_MPI_SHARED=0: Allreduce even on one node (where a site's shared memory misbehaves)
        if self.node is not None and self.shared is None and os.environ.get("KERASCLI_MPI_SHARED") != "0":
            self.shared = SharedSums(self, size, np.dtype(dtype), self.by_parts)
        return self.shared

    @property
    def initializes_parameters(self) -> bool:
        """Whether this rank writes the initial weights: where the ranks share them, rank 0 alone writes
        them (initialised, loaded or resumed) before training starts; the others take its state then."""
        return self.leader or self.shared is None or not self.shared.by_parts

    def parameters(self, size: int, dtype) -> np.ndarray | None:
        shared = self._node_memory(size, dtype)
        return shared.params if shared is not None and shared.by_parts else None

    def gradients(self, size: int, dtype) -> np.ndarray | None:
        shared = self._node_memory(size, dtype)
        return shared.mine if shared is not None else None

    # ------------------------------------------------------------- starting and failing
    def agree_to_start(self, code: int = READY) -> np.ndarray:
        """Every rank says whether it is ready (``code`` 0), has nothing to do (rank 0: the run is complete)
        or failed (its exit code); returns what each rank said."""
        said = np.zeros(self.size, np.int64)
        said[self.rank] = code
        # not watched: rank 0 may spend long on its setup (hashing large data files) before it says
        self.comm.Allreduce(self.MPI.IN_PLACE, said, op=self.MPI.SUM)
        self.started = True
        return said

    def fail(self, exit_code: int) -> bool:
        """This rank is failing with ``exit_code``: tell the others (before training started, through the
        start agreement; afterwards there is no waiting for them). Returns whether this rank should print its
        message (rank 0 always; another rank unless rank 0 failed too, which says the same thing)."""
        if self.started:
            return True
        said = self.agree_to_start(exit_code or 1)
        return self.leader or said[0] in (READY, NOTHING_TO_DO)

    def on_error(self, exc: BaseException, exit_code: int) -> tuple[bool, bool]:
        """How this rank ends on ``exc``: (print its message?, abort every rank?). Stopping on a signal or a
        diverged loss happens on every rank at the same step (rank 0 speaks for all); any other failure
        during training would leave the others waiting, so it ends the whole job."""
        from kerascli.callbacks import TrainingInterrupted
        from kerascli.train.loop import TrainingDiverged

        if isinstance(exc, FailedElsewhere):
            return False, False
        if not self.started:
            return self.fail(exit_code), False
        if self.finished:
            return True, False
        if isinstance(exc, (TrainingInterrupted, TrainingDiverged)):
            return self.leader, False
        return True, True

    def abort(self, exit_code: int) -> None:
        """End every rank of the job now (a rank failed while the others wait in a collective)."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)  # the launcher forwards this rank's output: let it arrive before the kill
        self.comm.Abort(exit_code)

    # ------------------------------------------------------------- batches
    def shard(self, split, training: bool):
        from kerascli.data.prefetch import PrefetchedSplit
        from kerascli.train.sharding import ShardedSplit

        if isinstance(split, PrefetchedSplit):  # cut under the prefetching, so workers make only this part
            return PrefetchedSplit(ShardedSplit(split.split, self.rank, self.size, training), split.depth,
                                   split.workers)
        return ShardedSplit(split, self.rank, self.size, training)


class DataParallel:
    """The training step of one rank (see the module's docstring); ``Trainer.train_step`` hands over to
    ``step`` when the trainer has one."""

    def __init__(self, world: World, model, objective, seed: int):
        self.world, self.model, self.objective, self.seed = world, model, objective, seed
        self.names = list(objective.names)
        self.vector_names = list(objective.results)
        self.vector_sizes: list[int] | None = None
        # the non-trainable weights a training step updates (BatchNormalization's moving statistics)
        self.moving = [view for key, view, spec in model.weight_items()
                       if not spec.trainable and spec.name.startswith("moving_")]
        self._moving_buf = np.zeros(sum(v.size for v in self.moving), model.dtype)
        self._stochastic = [(i, layer) for i, layer in enumerate(model.layers)
                            if layer.rng is not None and layer.draws_random]
        self.rows = 0  # this rank's samples in the step under way (0 for a stand-in): synchronized layers ask
        for layer in model.layers:
            if layer.config.get("synchronized"):  # BatchNormalization(synchronized=True): whole-batch statistics
                layer.sync = self
        if world.shared is not None:
            world.shared.ops = model.ops
        else:  # one Allreduce of the flat gradient: in buckets, during the backward pass where that pays
            world.buckets = buckets.OverlappedSums(world, model, world.overlap, world.bucket_bytes)
        self._slots_shared = False

    @staticmethod
    def _writes_gradients(trainer) -> bool:
        opt = trainer.optimizer
        built_in = type(opt).__module__ == "kerascli.optimizers"
        return bool(trainer.gradient_hooks) or not built_in or opt.changes_gradients

    def _reseed(self, global_step: int) -> None:
        for i, layer in self._stochastic:
            layer.rng.bit_generator.state = np.random.PCG64([self.seed, 1, i, self.world.rank, global_step]).state

    def pack(self, totals, rows: int) -> np.ndarray:
        """[rows, each rank's signal, sums by name, samples counted, vectors...] of a step or evaluation."""
        w = self.world
        sizes = self.vector_sizes or [len(totals.vectors[k]) for k in self.vector_names]
        vec = np.zeros(2 + w.size + len(self.names) + sum(sizes), np.float64)
        totals.flush()
        vec[0] = rows
        vec[1] = totals.count
        vec[2 + w.rank] = w.pending_signal() or 0
        at = 2 + w.size
        vec[at : at + len(self.names)] = [totals.sums[n] for n in self.names]
        at += len(self.names)
        for name, size in zip(self.vector_names, sizes):
            if name in totals.vectors:
                vec[at : at + size] = totals.vectors[name]
            at += size
        return vec

    def unpack_into(self, vec: np.ndarray, totals) -> None:
        """Add the summed step (or evaluation) to ``totals``."""
        at = 2 + self.world.size
        for name in self.names:
            totals.sums[name] += float(vec[at])
            at += 1
        for name, size in zip(self.vector_names, self.vector_sizes or []):
            totals.vectors[name] = totals.vectors.get(name, 0.0) + vec[at : at + size]
            at += size
        totals.count += int(vec[1])

    def step(self, trainer, x, t, totals, w) -> float:
        """One optimizer step on this rank's part of a global batch; returns the global batch's mean loss."""
        model, objective, ops, world = self.model, self.objective, trainer.ops, self.world
        padding = isinstance(w, Padding)
        if padding:
            w = None
        if world.rank and self._stochastic:
            self._reseed(trainer.global_step)
        n = batch_length(x)
        rows = self.rows = 0 if padding else n
        began = time.perf_counter()
        overlapped = world.buckets is not None and world.buckets.active
        if overlapped:
            world.buckets.begin(rows)
        local = Totals(self.names, objective.results)
        out = model.forward(x, training=True)
        _, pred = objective.forward(ops, out, t, local, training=True, weights=w)
        model.backward(objective.backward(ops, out, pred, t, 1.0 / n),
                       after_node=world.buckets.after_node if overlapped else None)
        if trainer.regularized:
            penalty = model.weight_penalty() + model.activity_penalty
            if not overlapped:  # else each went into its bucket before that was sent
                model.add_penalty_gradients()
            trainer._add_penalty(local, penalty, n)
        if self.vector_sizes is None:  # known once every rank ran a step with samples
            self.vector_sizes = [len(local.vectors[k]) for k in self.vector_names]
        vec = self.pack(local, rows) * (0.0 if padding else 1.0)
        vec[2 + world.rank] = world.pending_signal() or 0
        started = time.perf_counter()
        shared = world.shared
        if shared is not None and shared.by_parts:
            return self._step_by_parts(trainer, vec, rows, totals, started)
        if shared is not None:  # one node: through shared memory
            vec, grads = shared.reduce(vec)
            share = rows / vec[0]
            if self._writes_gradients(trainer):  # the sum is every rank's: change a copy of it
                np.copyto(model.grad_buffer, grads)
                grads = model.grad_buffer
        else:
            world.sum(vec)
            share = rows / vec[0]
            grads = model.grad_buffer
            if overlapped:
                world.buckets.finish()
            else:
                grads *= grads.dtype.type(share)
                world.sum(grads)
        self._average_moving(share)
        world.allreduce_seconds += time.perf_counter() - started
        world.steps += 1
        world.agreed_signal = int(vec[2 : 2 + world.size].max())
        for hook in trainer.gradient_hooks:
            hook(grads, model.state_buffer)
        trainer.optimizer.step(model.param_buffer, grads)
        model.apply_constraints()
        if world.buckets is not None:
            world.buckets.record(time.perf_counter() - began)
        return self._finish(vec, totals)

    def _step_by_parts(self, trainer, vec, rows, totals, started) -> float:
        """The end of a step where the ranks of the node share the weights: each updates its slice."""
        model, world, shared = self.model, self.world, self.world.shared
        if trainer.gradient_hooks:
            raise KerascliError("gradient hooks see whole gradients, which ranks updating their part of the "
                                "weights do not hold: run with KERASCLI_MPI_SHARED=0")
        if not self._slots_shared:  # the first step: every rank is here (their start was agreed)
            shared.share_slots(trainer.optimizer)
            self._slots_shared = True
        vec, part = shared.reduce_part(vec)
        self._average_moving(rows / vec[0])
        world.allreduce_seconds += time.perf_counter() - started
        world.agreed_signal = int(vec[2 : 2 + world.size].max())
        trainer.optimizer.step_part(model.param_buffer[shared.lo : shared.hi], part, shared.lo, shared.hi)
        waited = time.perf_counter()
        shared.barrier()  # every slice updated before any rank reads the weights
        if model.constrained:  # a constraint takes a whole weight: each rank projects some weights
            ranks = shared.node.Get_size()
            for k, (constraint, w) in enumerate(model.constrained):
                if k % ranks == shared.rank:
                    w[...] = constraint(w)
            shared.barrier()
        world.allreduce_seconds += time.perf_counter() - waited
        world.steps += 1
        return self._finish(vec, totals)

    def _average_moving(self, share: float) -> None:
        """Moving statistics: the parts' average, weighted by their sizes."""
        if not self.moving:
            return
        buf, at = self._moving_buf, 0
        for view in self.moving:
            buf[at : at + view.size] = view.ravel() * share
            at += view.size
        self.world.sum(buf)
        at = 0
        for view in self.moving:
            view[...] = buf[at : at + view.size].reshape(view.shape)
            at += view.size

    def _finish(self, vec, totals) -> float:
        """Add the summed step to ``totals``; returns the global batch's mean loss."""
        self.unpack_into(vec, totals)
        loss_at = 2 + self.world.size + self.names.index("loss")
        return float(vec[loss_at] / max(vec[1], 1.0))

    def reduce(self, totals) -> None:
        """Replace this rank's evaluation ``totals`` by their sum over the ranks (a rank without samples
        has no vectors yet: their sizes are agreed first)."""
        sizes = np.array([len(totals.vectors[k]) if k in totals.vectors else 0 for k in self.vector_names],
                         np.int64)
        self.world.maximum(sizes)
        self.vector_sizes = [int(s) for s in sizes]
        vec = self.pack(totals, 0)
        vec[2 + self.world.rank] = 0
        self.world.sum(vec)
        totals.sums = {name: 0.0 for name in self.names}
        totals.count, totals.vectors = 0, {}
        self.unpack_into(vec, totals)


# ----------------------------------------------------------------- the training state, from rank 0
def _state_bytes(trainer) -> bytes:
    from kerascli.runs.checkpoint import checkpoint_arrays

    arrays = checkpoint_arrays(trainer.model, trainer.optimizer, {}, trainer.epoch, trainer.snapshot())
    arrays["_sync"] = np.array(json.dumps({"stop_training": bool(trainer.stop_training)}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _take_state(trainer, data: bytes) -> None:
    from kerascli.runs.checkpoint import Checkpoint, apply_training_state, apply_weights

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("_rng/")}  # each rank keeps its own streams
    ckpt = Checkpoint("rank 0's training state", arrays)
    apply_weights(trainer.model, ckpt.weights(), ckpt.path)
    apply_training_state(trainer.model, trainer.optimizer, ckpt)
    trainer.restore(ckpt.state, [])
    trainer.stop_training = json.loads(str(arrays["_sync"]))["stop_training"]


class FailedElsewhere(KerascliError):
    """Another rank failed before training started; it printed why."""

    def __init__(self, exit_code: int, rank: int):
        super().__init__(f"rank {rank} failed before training started")
        self.exit_code = exit_code
        self.quiet = True


class NothingToDo(Exception):
    """Rank 0 found the run complete: the other ranks have nothing to train."""


def _check_start(said: np.ndarray) -> None:
    """Raise where a rank failed to start, or where rank 0 has nothing to do."""
    for r, code in enumerate(said):
        if code not in (READY, NOTHING_TO_DO):
            raise FailedElsewhere(int(code), r)
    if said[0] == NOTHING_TO_DO:
        raise NothingToDo()


class SyncFromLeader:
    """A callback of every rank: at the start of training (after the start agreement) and after each
    epoch's callbacks, rank 0 sends its training state and the others take it."""

    state_key = None

    def __init__(self, world: World):
        self.world = world
        self.trainer = None

    def _sync(self) -> None:
        w = self.world
        data = w.broadcast_bytes(_state_bytes(self.trainer) if w.leader else None)
        if not w.leader:
            _take_state(self.trainer, data)
        if w.shared is not None and w.shared.by_parts:
            # the weights are shared: no rank reads them while another still writes them (the same values)
            w.shared.barrier()

    def on_train_begin(self, trainer):
        self.trainer = trainer
        if not self.world.started:
            _check_start(self.world.agree_to_start(READY))
        self._sync()

    def on_epoch_begin(self, epoch, steps): ...
    def on_batch_end(self, step, logs): ...

    def on_epoch_end(self, epoch, logs):
        self._sync()

    def on_train_end(self, logs): ...

    def get_state(self):
        return None

    def set_state(self, state): ...


def local_threads() -> int | None:
    """Threads per rank under a launcher: this node's cores shared among its ranks (None: not launched)."""
    w = current()
    if w is None:
        return None
    from kerascli.ops.backend import available_cores

    cores = available_cores()
    if cores < (os.cpu_count() or cores):  # the launcher bound this rank to its own cores (srun, --bind-to)
        return cores
    return max(1, cores // w.local_size)
