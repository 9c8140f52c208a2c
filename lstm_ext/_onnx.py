"""ONNX export of lstm_ext's layers: what torch's two exporters need for the project's ops.

``torch.onnx.export`` meets ``lstm_ext::lstm_layer`` and its siblings in the traced graph. Each
family module (``lstm/onnx_export.py``, ``gru/onnx_export.py``, ``lstm_variants/onnx_export.py``)
writes one translation per op, once, against :class:`Builder`; this module runs it for both
exporters:

- ``dynamo=True``: as a traced onnxscript function in onnxscript's torch_lib registry, which the
  exporter reads at the start of every translation;
- ``dynamo=False``: as a symbolic of the TorchScript exporter (``register_custom_op_symbolic``).

The TorchScript symbolics are registered by :func:`prepare_export`, which every layer's forward
calls while an export traces it (``torch.onnx.is_in_onnx_export()``); that exporter looks them up
after tracing. The dynamo exporter builds its registry before it traces, so the onnxscript
functions are registered the moment onnxscript's torch_lib registry is imported (an import hook
:func:`install` sets up), or at once where it already is. So importing lstm_ext never imports the
onnx packages (about 2 s), and a user writes nothing extra. :func:`register` does it all by hand.

An option without an ONNX form is refused by :func:`refuse` with the option's name: by the
translation of the op that carries it, and for packed input and random masks already while the
forward is traced (the dynamo exporter wraps either refusal in its own error, whose text carries it).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import itertools
import sys
import warnings
from typing import Any, Callable, Optional, Sequence

import torch

# Unsqueeze and Squeeze with axes as an input (13), LSTM's layout attribute (14).
MIN_OPSET = 14

# Every op's translation: "lstm_ext::name" -> translate(builder, *op_args). Filled by the family modules.
_TRANSLATIONS: dict[str, Callable[..., Any]] = {}
# A non-tensor argument's type in an op's schema, as the Python type the exporters pass it as.
_ATTRIBUTE_TYPES = {"bool": bool, "int": int, "float": float, "List[int]": Sequence[int]}
# How the TorchScript exporter's symbolic_helper reads a constant of a type a translation reads;
# other attributes reach the translation as the graph's values.
_CONSTANT_KIND = {bool: "b"}
_registered = {"torchscript": False, "dynamo": False}


class ExportRefused(torch.onnx.OnnxExporterError):
    """An lstm_ext layer option that has no ONNX form."""


def refuse(what: str, instead: str) -> None:
    """Raise the refusal of ``what``, naming what to do ``instead``."""
    raise ExportRefused(f"lstm_ext: {what} cannot be exported to ONNX; {instead}")


class Builder:
    """The graph an op's translation writes to, for either exporter. Tensors are the exporter's
    graph values; ``None`` stands for an omitted optional input."""

    opset = MIN_OPSET  # the default domain's opset of the graph being written

    def op(self, name: str, *inputs: Any, outputs: int = 1, **attributes: Any) -> Any:
        """One ONNX node of the default domain; a tuple of values where ``outputs > 1``."""
        raise NotImplementedError

    def ints(self, values: Sequence[int]) -> Any:
        """A constant int64 vector."""
        raise NotImplementedError

    def shape(self, value: Any) -> tuple[int, ...]:
        """The static shape of a parameter (a weight)."""
        raise NotImplementedError

    def full(self, shape: Sequence[int], fill: float, like: Any) -> Any:
        """A constant of ``shape`` filled with ``fill``, in the dtype of ``like`` (a weight)."""
        raise NotImplementedError

    def loop(self, count: Any, carried: Sequence[Any], stacked: int, body: Callable[..., Any]) -> tuple[Any, ...]:
        """ONNX ``Loop``: ``count`` (an int64 scalar) runs of ``body(step, t, *carried)``, where
        ``step`` is the builder of the loop's body and ``t`` the iteration (an int64 scalar). The
        body returns ``(carried', per_step)``: what the next iteration starts from, one value per
        ``carried``, and ``stacked`` values of this iteration. It may read any value built outside
        it (the weights). Returns the last iteration's carried values, then each per-step value
        stacked over the iterations, ``[count, ...]``."""
        raise NotImplementedError


def _without_trailing(inputs: Sequence[Any]) -> list[Any]:
    """A node's inputs without its omitted trailing optional ones, which ONNX lets a node leave out
    (ONNX Runtime 1.32 crashed loading a LayerNormalization in a loop body given an empty bias)."""
    values = list(inputs)
    while values and values[-1] is None:
        values.pop()
    return values


class _TorchScriptBuilder(Builder):
    def __init__(self, g: Any) -> None:
        self.g = g
        self.opset = g.opset

    def op(self, name, *inputs, outputs=1, **attributes):
        from torch.onnx._internal.torchscript_exporter import symbolic_opset9

        # TorchScript's g.op names each attribute with its type: hidden_size_i, direction_s, perm_i
        suffix = {int: "i", float: "f", str: "s", list: "i"}
        typed = {f"{key}_{suffix[type(value)]}": value for key, value in attributes.items()}
        values = [symbolic_opset9.unused(self.g) if value is None else value for value in _without_trailing(inputs)]
        return self.g.op(name, *values, outputs=outputs, **typed)

    def ints(self, values):
        return self.g.op("Constant", value_t=torch.tensor(list(values), dtype=torch.int64))

    def shape(self, value):
        from torch.onnx._internal.torchscript_exporter import symbolic_helper

        return tuple(symbolic_helper._get_tensor_sizes(value))

    def full(self, shape, fill, like):
        from torch.onnx._internal.torchscript_exporter import _type_utils

        dtype = _type_utils.JitScalarType.from_value(like).dtype()
        return self.g.op("Constant", value_t=torch.full(tuple(shape), fill, dtype=dtype))

    def loop(self, count, carried, stacked, body):
        from torch.onnx._internal.torchscript_exporter import jit_utils, utils

        keep_going = self.g.op("Constant", value_t=torch.tensor(True))
        outputs, (context,), _ = jit_utils.add_op_with_blocks(
            self.g, "Loop", count, keep_going, *carried, outputs=len(carried) + stacked, n_blocks=1)
        block = context.block
        t = utils._add_input_to_block(block)
        condition = utils._add_input_to_block(block)
        inner = [utils._add_input_to_block(block) for _ in carried]
        new, per_step = body(_TorchScriptBuilder(context), t, *inner)
        for value in (context.op("Identity", condition), *new, *per_step):
            utils._add_output_to_block(block, value)
        return tuple(outputs) if isinstance(outputs, Sequence) else (outputs,)


class _IrBuilder(Builder):
    """What the dynamo exporter's two builders share: onnx_ir values, the opset of onnxscript's
    torch_lib."""

    opset = 18

    def shape(self, value):
        return tuple(int(d) for d in value.shape)


# Numbers the dynamo exporter's loops in this process, for unique names in their body graphs.
_loop_numbers = itertools.count(1)


class _OnnxScriptBuilder(_IrBuilder):
    def __init__(self) -> None:
        from onnxscript import opset18

        self.ops = opset18

    def op(self, name, *inputs, outputs=1, **attributes):
        # onnxscript returns every output the schema declares; the translation asks for its first few
        result = getattr(self.ops, name)(*inputs, **attributes)
        if not isinstance(result, (tuple, list)):
            return result
        return result[0] if outputs == 1 else tuple(result)[:outputs]

    def ints(self, values):
        return self.ops.Constant(value_ints=list(values))

    def full(self, shape, fill, like):
        import numpy
        from onnxscript import ir

        return self.ops.Constant(value=ir.tensor(numpy.full(tuple(shape), fill, dtype=like.dtype.numpy())))

    def loop(self, count, carried, stacked, body):
        from onnxscript import ir
        # the exporter's own way to add a node with a graph attribute and variadic outputs
        from torch.onnx._internal.exporter._torchlib.ops.hop import call_op

        prefix = f"lstm_ext_loop{next(_loop_numbers)}"
        t = ir.Value(name=f"{prefix}_t", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([]))
        condition = ir.Value(name=f"{prefix}_cond", type=ir.TensorType(ir.DataType.BOOL), shape=ir.Shape([]))
        inner = [ir.Value(name=f"{prefix}_carried{k}", type=value.type, shape=value.shape)
                 for k, value in enumerate(carried)]
        step = _IrBodyBuilder(prefix)
        new, per_step = body(step, t, *inner)
        outputs = [step.op("Identity", condition), *new, *per_step]
        graph = ir.Graph([t, condition, *inner], outputs, nodes=step.nodes, name=f"{prefix}_body")
        keep_going = self.ops.Constant(value=ir.tensor(True))
        return tuple(call_op("Loop", count, keep_going, *carried, _num_outputs=len(carried) + stacked, body=graph))


class _IrBodyBuilder(_IrBuilder):
    """The body of a ``Loop`` for the dynamo exporter: nodes of a subgraph, not of the traced graph."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []

    def op(self, name, *inputs, outputs=1, **attributes):
        from onnxscript import ir

        node = ir.Node("", name, _without_trailing(inputs), attributes=ir.convenience.convert_attributes(attributes),
                       num_outputs=outputs)
        # named here: the exporter names the values of the graph it traced, and would reuse its
        # names inside the body, which ONNX's single assignment forbids
        for k, value in enumerate(node.outputs):
            value.name = f"{self.prefix}_{len(self.nodes)}_{k}"
        self.nodes.append(node)
        return node.outputs[0] if outputs == 1 else tuple(node.outputs)

    def ints(self, values):
        return self.op("Constant", value_ints=list(values))


def translation(name: str) -> Callable:
    """Decorator: ``translate(builder, *op_args)`` is the ONNX form of op ``lstm_ext::name``; it
    takes the op's arguments in schema order (``csrc/ops.cpp``), tensors as graph values (None
    where omitted) and the others as Python values."""

    def register_translation(translate: Callable[..., Any]) -> Callable[..., Any]:
        _TRANSLATIONS[f"lstm_ext::{name}"] = translate
        return translate

    return register_translation


def signature(name: str) -> tuple[tuple[str, ...], dict[str, type]]:
    """Op ``lstm_ext::name``'s argument names in schema order, and its non-tensor arguments' Python
    types, read from the registered schema."""
    schema = getattr(torch.ops.lstm_ext, name.split("::")[-1]).default._schema
    attributes = {}
    for argument in schema.arguments:
        kind = str(argument.type)
        if "Tensor" not in kind:
            if kind not in _ATTRIBUTE_TYPES:
                raise TypeError(f"lstm_ext: op {name}'s argument {argument.name} has type {kind}, which its ONNX "
                                f"translation cannot take yet (known: {', '.join(_ATTRIBUTE_TYPES)})")
            attributes[argument.name] = _ATTRIBUTE_TYPES[kind]
    return tuple(argument.name for argument in schema.arguments), attributes


def _ops_with_translations() -> list[tuple[str, Callable[..., Any], tuple[str, ...], dict[str, type]]]:
    """Every translated op the loaded library holds (none where it failed to load: the layers then
    run the reference, whose export needs no translation)."""
    found = []
    for name, translate in _TRANSLATIONS.items():
        if hasattr(torch.ops.lstm_ext, name.split("::")[-1]):
            found.append((name, translate, *signature(name)))
    return found


def _torchscript_symbolic(translate: Callable[..., Any], arguments: tuple[str, ...], attributes: dict[str, type]):
    def symbolic(g: Any, *args: Any) -> Any:
        from torch.onnx._internal.torchscript_exporter import symbolic_helper

        values = []
        for name, value in zip(arguments, args):
            if symbolic_helper._is_none(value):
                values.append(None)
            elif attributes.get(name) in _CONSTANT_KIND:
                values.append(symbolic_helper._maybe_get_const(value, _CONSTANT_KIND[attributes[name]]))
            else:
                values.append(value)
        return translate(_TorchScriptBuilder(g), *values)

    return symbolic


def _register_torchscript() -> None:
    if _registered["torchscript"]:
        return
    for name, translate, arguments, attributes in _ops_with_translations():
        torch.onnx.register_custom_op_symbolic(name, _torchscript_symbolic(translate, arguments, attributes),
                                               MIN_OPSET)
    _registered["torchscript"] = True


def _onnxscript_function(translate: Callable[..., Any], arguments: tuple[str, ...], attributes: dict[str, type]):
    """A traced onnxscript function with the op's signature (tensors typed as floats, attributes
    with their Python types), which the dynamo exporter matches against the op's schema."""
    from onnxscript.function_libs.torch_lib.tensor_typing import TFloat

    def traced(*args: Any, **kwargs: Any) -> Any:
        values = list(args) + [kwargs[name] for name in arguments[len(args):]]
        return translate(_OnnxScriptBuilder(), *values)

    parameters = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=attributes.get(name, Optional[TFloat]),
                          default=inspect.Parameter.empty)
        for name in arguments
    ]
    traced.__signature__ = inspect.Signature(parameters)
    traced.__annotations__ = {p.name: p.annotation for p in parameters}
    return traced


def register() -> None:
    """Register every op's translation with both exporters (needs onnxscript for the dynamo one).
    Idempotent."""
    _register_torchscript()
    if _registered["dynamo"]:
        return
    from onnxscript.function_libs.torch_lib.registration import torch_op

    for name, translate, arguments, attributes in _ops_with_translations():
        function = _onnxscript_function(translate, arguments, attributes)
        function.__name__ = function.__qualname__ = name.replace("::", "_")
        torch_op(name, trace_only=True)(function)
    _registered["dynamo"] = True


def prepare_export() -> None:
    """Called by a layer's forward while ``torch.onnx.export`` traces it."""
    _register_torchscript()


# The module whose import means an export with dynamo=True is starting.
_TORCHLIB_REGISTRY = "onnxscript.function_libs.torch_lib.registration"


def _register_dynamo_quietly() -> None:
    try:
        register()
    except Exception as error:  # noqa: BLE001 - never break the exporter's own import
        warnings.warn(f"lstm_ext could not register its ONNX translations with onnxscript ({error!r}); "
                      "torch.onnx.export(..., dynamo=True) of lstm_ext's layers will fail", stacklevel=2)


class _RegisterAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds onnxscript's torch_lib registry as Python would, and registers lstm_ext's translations
    right after it runs. Fires once."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TORCHLIB_REGISTRY:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            self._inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        _register_dynamo_quietly()


def install() -> None:
    """At import: the dynamo translations now where onnxscript's registry is loaded, else the
    moment it is."""
    if _TORCHLIB_REGISTRY in sys.modules:
        _register_dynamo_quietly()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


__all__ = ["Builder", "ExportRefused", "install", "prepare_export", "refuse", "register", "translation"]
