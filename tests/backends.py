"""The Ops instances tests run against: cpu and reference always, cuda where a GPU (or the CUDA simulator,
NUMBA_ENABLE_CUDASIM=1) is usable, through :class:`HostArrays` so a test body written for host arrays runs
on device arrays unchanged."""

from __future__ import annotations

import numpy as np

from kerascli.ops import _gpu_likely, cuda_unusable, get_ops

# backends whose arrays are host arrays: tests that drive layers, losses and optimizers directly run on these
# (tests/test_cuda.py runs the same on device arrays against the cpu results)
HOST_BACKENDS = ("cpu", "reference")


def cuda_usable() -> bool:
    """Whether the cuda backend can run here (asks numba.cuda only where a GPU or the simulator is likely)."""
    return _gpu_likely() and cuda_unusable() is None


def backend_names(include_reference: bool = True) -> list[str]:
    names = ["cpu"] + (["reference"] if include_reference else [])
    return names + (["cuda"] if cuda_usable() else [])


def ops_for_test(name: str):
    ops = get_ops(name)
    return HostArrays(ops) if name == "cuda" else ops


class HostArrays:
    """A device Ops with host arrays in and out: every array argument goes up, the call runs on the device,
    each argument comes back into the host array it came from (kernels write their outputs in place), and
    results come back as host arrays (an argument returned is returned as its host original)."""

    def __init__(self, ops):
        self.ops = ops
        self.name = ops.name
        self.kernel_package = type(ops).kernel_package

    def __getattr__(self, name):
        target = getattr(self.ops, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            uploaded = {}  # one device array per host array, so an array passed twice is one array there

            def up(a):
                if not isinstance(a, np.ndarray):
                    return a
                if id(a) not in uploaded:
                    uploaded[id(a)] = self.ops.to_device(a)
                return uploaded[id(a)]

            device = [up(a) for a in args]
            dkw = {k: up(v) for k, v in kwargs.items()}
            result = target(*device, **dkw)
            back = {}
            for host, dev in list(zip(args, device)) + [(kwargs[k], dkw[k]) for k in kwargs]:
                if isinstance(host, np.ndarray):
                    if host.flags.writeable:
                        host[...] = dev.copy_to_host()
                    back[id(dev)] = host
            return self._down(result, back)

        return call

    def _down(self, value, back):
        if isinstance(value, tuple):
            return tuple(self._down(v, back) for v in value)
        if isinstance(value, list):
            return [self._down(v, back) for v in value]
        if id(value) in back:
            return back[id(value)]
        if hasattr(value, "copy_to_host"):
            return value.copy_to_host()
        if hasattr(value, "read") and hasattr(value, "add_to"):  # a sum kept on the device
            return float(value)
        return value
