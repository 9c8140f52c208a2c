"""The compiled library and the family registry: which op has a kernel for which device and dtype.

Importing this module loads ``lstm_ext._C``, whose static initializers register every op of
``csrc/ops.cpp`` with the dispatcher (``LOAD_ERROR`` holds the reason when it does not load).
Each cell family's package declares its ops and the dtypes its kernels run with
:func:`register_family`; :func:`has_kernel` answers from the dispatcher and that declaration,
and :func:`ops_without_kernel` tells CI which ops may lack a CUDA kernel. Nothing here names a
family: a new one registers itself from its own package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import torch

try:
    from . import _C  # noqa: F401  (importing registers the ops with the dispatcher)

    LOAD_ERROR: Optional[BaseException] = None
except ImportError as error:  # pragma: no cover - only without a build
    LOAD_ERROR = error

ops = torch.ops.lstm_ext

# The dtypes of the CPU and CUDA kernels of the LSTM and GRU families (float16 has no CPU kernel).
CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}


@dataclass(frozen=True)
class Family:
    """One cell family's ops and what its kernels run: dtypes per device type (None: any dtype;
    a device type absent from ``kernel_dtypes`` has no kernel of the family). ``kernel`` and
    ``supported`` word the error of ``backend="fused"`` without a kernel."""

    name: str
    ops: tuple[str, ...]
    kernel_dtypes: Mapping[str, Optional[tuple[torch.dtype, ...]]]
    kernel: str = "kernel"
    supported: str = ""


_FAMILIES: dict[str, Family] = {}
_FAMILY_OF_OP: dict[str, Family] = {}


def register_family(
    name: str,
    *,
    ops: tuple[str, ...],
    kernel_dtypes: Mapping[str, Optional[tuple[torch.dtype, ...]]],
    kernel: str = "kernel",
    supported: str = "",
) -> None:
    """Declare a family's ops (their names in ``csrc/ops.cpp``) and its kernels' dtypes per device
    type, e.g. ``register_family("gru", ops=("gru_layer", ...), kernel_dtypes={"cpu": CPU_DTYPES})``.
    ``kernel`` names the kernel in the error for a missing one ("no fused {kernel} for ..."), and
    ``supported``, when given, says what the kernels do run."""
    family = Family(name, tuple(ops), dict(kernel_dtypes), kernel, supported)
    for op in family.ops:
        owner = _FAMILY_OF_OP.get(op)
        if owner is not None and owner.name != name:
            raise ValueError(f"lstm_ext: op {op!r} is registered by families {owner.name!r} and {name!r}")
        _FAMILY_OF_OP[op] = family
    _FAMILIES[name] = family


def ops_without_kernel(device_type: str) -> tuple[str, ...]:
    """The ops of every registered family that has no kernel for ``device_type`` ("cuda": the ops
    with no CUDA kernel yet, which ``.ci/run`` allows). Import ``lstm_ext`` first, so that every
    family is registered."""
    return tuple(op for family in _FAMILIES.values() if device_type not in family.kernel_dtypes for op in family.ops)


def _op_name(op: str) -> tuple[str, str]:
    """``("lstm_layer", "lstm_ext::lstm_layer")`` for either spelling."""
    short = op.split("::", 1)[1] if "::" in op else op
    return short, f"lstm_ext::{short}"


_REGISTERED: dict[tuple[str, str], bool] = {}


@torch.compiler.assume_constant_result
def _registered(qualified_name: str, device_type: str) -> bool:
    """Whether the dispatcher holds a kernel of the op for this device type (or one for every
    device). Registrations happen at import, so the answer is cached; torch.compile takes it as a
    constant rather than tracing the dispatcher query."""
    answer = _REGISTERED.get((qualified_name, device_type))
    if answer is None:
        key = _DISPATCH_KEYS.get(device_type)
        has = torch._C._dispatch_has_kernel_for_dispatch_key
        try:
            answer = key is not None and (has(qualified_name, key) or has(qualified_name, "CompositeExplicitAutograd"))
        except RuntimeError:  # no such op
            answer = False
        _REGISTERED[(qualified_name, device_type)] = answer
    return answer


def has_kernel(op: str, device: Union[torch.device, str], dtype: torch.dtype) -> bool:
    """True when lstm_ext's compiled kernel of ``op`` runs tensors of this device and dtype.

    ``op`` is an op of ``csrc/ops.cpp``, with or without the ``lstm_ext::`` prefix (e.g.
    ``"lstm_layer"``, ``"gru_cell"``, ``"lstm_variant_layer"``). The answer comes from the
    dispatcher (is a kernel registered for the device type?) and from the op's family (does that
    kernel take the dtype?).
    """
    if LOAD_ERROR is not None:
        return False
    short, qualified = _op_name(op)
    device_type = torch.device(device).type
    family = _FAMILY_OF_OP.get(short)
    if family is None or device_type not in family.kernel_dtypes or not _registered(qualified, device_type):
        return False
    dtypes = family.kernel_dtypes[device_type]
    return dtypes is None or dtype in dtypes


def missing_kernel_message(device: torch.device, dtype: torch.dtype, op: str = "lstm_layer") -> str:
    """Why backend="fused" cannot run ``op`` on tensors of this device and dtype."""
    if LOAD_ERROR is not None:
        return (
            f"lstm_ext: the compiled kernels failed to load ({LOAD_ERROR}); "
            "reinstall with `pip install --no-build-isolation -e .`"
        )
    family = _FAMILY_OF_OP.get(_op_name(op)[0])
    kernel, supported = (family.kernel, family.supported) if family is not None else ("kernel", "")
    return (
        f"lstm_ext: no fused {kernel} for {device.type} tensors of dtype {dtype}; "
        f"{supported + '; ' if supported else ''}use backend='reference' or backend='auto'"
    )


__all__ = [
    "CPU_DTYPES", "CUDA_DTYPES", "LOAD_ERROR", "has_kernel", "missing_kernel_message", "ops", "ops_without_kernel",
    "register_family",
]
