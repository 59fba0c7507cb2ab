"""Which device computes: the one place that reads a device name, and the rules that follow from it.

A device is named ``auto`` (CUDA where PyTorch finds it, else the CPU; never Apple's mps, which is
not measured), ``cpu``, ``cuda`` (the current CUDA device), ``cuda:N`` or ``mps``. Everything a
step, an evaluation or a prediction creates then lives on the device of its inputs.
"""

from __future__ import annotations

import os

import torch

from memn2n_cli.configs import DEVICES
from memn2n_cli.errors import ArgumentError


def resolve_device(name: str | torch.device, argument: str = "device") -> torch.device:
    """The device ``name`` stands for, checked to exist here; a one-line ArgumentError otherwise,
    naming the argument as the caller wrote it (``device=`` in Python, ``--device`` on the
    command line)."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps") or (device.type != "cuda" and device.index):
        raise ArgumentError(argument, f"{{}} is {DEVICES}, not {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(argument, f"{{}} {name}: PyTorch finds no CUDA device here "
                            f"({'a CPU-only build' if torch.version.cuda is None else 'CUDA ' + torch.version.cuda})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ArgumentError(argument, f"{{}} {name}: there is no such device; this machine has {count} "
                            f"(cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(argument, f"{{}} {name}: Apple's Metal (mps) is not available here")
    return torch.device(device.type, device.index) if device.type == "cuda" else torch.device(device.type)


def sums_device(device: torch.device) -> torch.device:
    """Where float64 sums of losses live: on the device, except mps, which has no float64, where
    they are kept on the host."""
    return torch.device("cpu") if device.type == "mps" else device


def under_torchrun() -> bool:
    """Whether this process is one of several that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_device(name: str | torch.device) -> torch.device:
    """This process's device: ``name`` resolved, and under torchrun a CUDA device without an index
    (``auto`` or ``cuda`` on a GPU host) becomes ``cuda:LOCAL_RANK``, one GPU per process."""
    device = resolve_device(name)
    if under_torchrun() and device.type == "cuda" and device.index is None:
        device = resolve_device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
    return device


def backend_for(device: torch.device) -> str:
    """torch.distributed's backend for processes computing on ``device``: NCCL for CUDA, else gloo."""
    return "nccl" if device.type == "cuda" else "gloo"


def worker_devices(device: torch.device) -> list[torch.device]:
    """The devices a pool of workers shares out: each CUDA device for ``cuda`` without an index
    (one worker each), else ``device`` alone."""
    if device.type == "cuda" and device.index is None:
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [device]
