"""A device that is not the CPU, on a machine with the CPU alone: for checking that every tensor a
step, an evaluation or a prediction creates lives on the device of its inputs.

PyTorch's own FakeTensorMode cannot run this code: its tensors hold no values, so every
data-dependent step (``int(size.max())``, ``torch.unique``, ``.tolist()``, of which a training
step has several) raises, and on a CPU-only build any backward over "cuda" tensors aborts the
process (the autograd engine asks for a CUDA device guard, torch 2.13). So the device here is a
stand-in: ``OnDevice`` tensors report the ``meta`` device (the one non-CPU device whose autograd
a CPU-only build supports), hold real CPU values, and compute on the CPU; every operation on them
refuses what CUDA refuses: a CPU tensor of one element or more beside a device tensor (a CPU
scalar, 0-dim, is allowed, as CUDA allows it; copies move between the two; CPU index tensors
index device tensors, as CUDA allows, counted as a wait below), and a CPU random generator
drawing device tensors. Code under test sees ``x.device.type == "meta"``: the CUDA-only branches
(pinned memory, ``torch.cuda.synchronize``) are not taken, and the compiled CPU kernels are not
usable, so the plain PyTorch path runs, as it does on CUDA.

``waits`` counts what makes the host wait for a GPU: reading a value (``.item()``, ``int()``,
``.tolist()``), a copy to the host, ``nonzero``, ``unique``, boolean-mask indexing, and CPU
indices used on device tensors (a copy from pageable memory).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten
DEVICE = torch.device("meta")
COPIES = {aten._to_copy.default, aten.copy_.default}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}
DATA_DEPENDENT = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
                  aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default}
waits: Counter = Counter()  # operation name -> how many times it made the host wait


class OnDevice(torch.Tensor):
    """A tensor on the stand-in device, holding ``value``, a CPU tensor."""

    @staticmethod
    def __new__(cls, value: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(cls, value.shape, strides=value.stride(), dtype=value.dtype,
                                                   storage_offset=value.storage_offset(), device=DEVICE,
                                                   requires_grad=value.requires_grad)

    def __init__(self, value: torch.Tensor):
        self.value = value

    def __repr__(self) -> str:
        return f"OnDevice({self.value!r})"

    def tolist(self):  # Tensor.tolist reads the data directly, not through the dispatcher
        waits["tolist"] += 1
        return self.value.tolist()

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _on(t) -> bool:
    return isinstance(t, OnDevice)


def _here(device) -> bool:
    return device is not None and torch.device(device) == DEVICE


def _run(func, args, kwargs):
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    made = _here(kwargs.get("device"))  # a factory, or a copy, onto the device
    to_host = func is aten._to_copy.default and kwargs.get("device") is not None and not made
    generator = kwargs.get("generator")
    if made and generator is not None and generator.device.type == "cpu":
        raise RuntimeError(f"{func}: a CPU random generator drawing device tensors")
    on_device = any(_on(t) for t in tensors)
    if on_device and func not in COPIES:
        cpu = [t for t in tensors if not _on(t) and not (t.device.type == "cpu" and t.dim() == 0)]
        if func in INDEXING and cpu and all(t is not args[0] for t in cpu):
            waits["cpu index"] += 1  # CUDA copies the indices over
            cpu = []
        if cpu:
            raise RuntimeError(f"{func} mixes the device with the CPU: CPU tensors of shapes "
                               f"{[tuple(t.shape) for t in cpu]} beside device tensors")
    if on_device:
        if func in DATA_DEPENDENT:
            waits[func.__name__] += 1
        elif func in INDEXING and any(t.dtype == torch.bool for t in tensors[1:]):
            waits["boolean mask"] += 1
        elif to_host or (func is aten.copy_.default and not _on(args[0])):
            waits["to host"] += 1
    args, kwargs = tree_map(lambda t: t.value if _on(t) else t, (args, kwargs))
    if made:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*args, **kwargs)
    if func is aten.copy_.default:  # into its destination, wherever that is
        return tensors[0]
    wrap = made or (on_device and not to_host)
    return tree_map(lambda t: OnDevice(t) if wrap and isinstance(t, torch.Tensor) else t, out)


class _Dispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class _Function(TorchFunctionMode):
    """``torch.tensor(..., device=)`` builds its tensor below the dispatcher: here, on the CPU, then moved."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and _here(kwargs.get("device")):
            return OnDevice(func(*args, **{**kwargs, "device": "cpu"}))
        return func(*args, **kwargs)


class on_device:
    """``with on_device():`` tensors put on ``DEVICE`` (``.to(DEVICE)``, ``device=DEVICE``) are
    ``OnDevice``; ``waits`` starts from zero."""

    def __enter__(self):
        waits.clear()
        self.modes = [_Dispatch(), _Function()]
        for mode in self.modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self.modes):
            mode.__exit__(*exc)
