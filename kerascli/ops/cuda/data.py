"""Batches on the GPU: a split is copied up once when it fits (then each batch is gathered there by index,
one small upload of the epoch's order per epoch), else each batch goes up from page-locked host memory."""

from __future__ import annotations

import numpy as np
from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, device_empty
from kerascli.ops.tuning import CUDA_RESIDENT_FRACTION


@kernel
def _gather_rows(src, index, start, out):
    i = cuda.grid(1)
    rows, cols = out.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = src[index[start + r], c]


def _rows(a):
    return a.reshape(len(a), a.size // max(len(a), 1))


def _arrays(value) -> dict:
    return dict(value) if isinstance(value, dict) else {None: value}


def _rebuild(arrays: dict):
    return arrays[None] if list(arrays) == [None] else arrays


def free_bytes() -> int:
    try:
        free, _ = cuda.current_context().get_memory_info()
        return int(free)
    except Exception:  # the simulator has no memory to report
        return 1 << 40


def upload_batches(host_batches):
    """Host (x, y, sample weights or None) batches (arrays, or dicts of them by name) copied to the device
    one by one."""
    for x, y, w in host_batches:
        up = tuple(_rebuild({k: cuda.to_device(np.ascontiguousarray(a)) for k, a in _arrays(v).items()})
                   for v in (x, y))
        yield up + (None if w is None else cuda.to_device(np.ascontiguousarray(w)),)


class DeviceBatches:
    """Batches of one split, on the device. The gathered batch lives in buffers reused for the next one."""

    def __init__(self, split):
        self.split = split
        arrays = {("x", k): v for k, v in _arrays(split.x).items()}
        arrays.update({("y", k): v for k, v in _arrays(split.y).items()})
        if split.w is not None:
            arrays[("w", None)] = split.w
        self.host = arrays
        need = sum(a.nbytes for a in arrays.values())
        self.resident = need <= CUDA_RESIDENT_FRACTION * free_bytes()
        # each array on the device as rows (samples) of its values, ready to gather from
        self.device = {k: _rows(cuda.to_device(np.ascontiguousarray(a))) for k, a in arrays.items()} \
            if self.resident else {}
        self.buffers: dict = {}
        self.staging: dict = {}

    def _buffer(self, key, rows):
        src = self.host[key]
        have = self.buffers.get(key)
        if have is None or len(have) < rows:
            have = device_empty((rows,) + src.shape[1:], src.dtype)
            self.buffers[key] = have
        return have[:rows]

    def __call__(self, batch_size: int, order=None):
        n = len(self.split) if order is None else len(order)
        index = np.arange(n) if order is None else np.asarray(order)
        device_index = cuda.to_device(index.astype(np.int64)) if self.resident else None
        for start in range(0, n, batch_size):
            rows = min(batch_size, n - start)
            parts = {}
            for key, src in self.host.items():
                out = self._buffer(key, rows)
                if self.resident:
                    flat = _rows(out)
                    if flat.size:
                        _gather_rows[blocks(flat.size)](self.device[key], device_index, start, flat)
                else:
                    stage = self.staging.get(key)
                    if stage is None or len(stage) < rows:
                        stage = cuda.pinned_array((batch_size,) + src.shape[1:], src.dtype)
                        self.staging[key] = stage
                    np.take(src, index[start:start + rows], axis=0, out=stage[:rows])
                    out.copy_to_device(stage[:rows])
                parts[key] = out
            x = _rebuild({k: v for (side, k), v in parts.items() if side == "x"})
            y = _rebuild({k: v for (side, k), v in parts.items() if side == "y"})
            yield x, y, parts.get(("w", None))
