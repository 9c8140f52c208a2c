"""The variant options of ``lstm_ext.LSTM`` / ``lstm_ext.LSTMCell``: checking and naming.

Options (all off by default; with every option off the layer is exactly ``nn.LSTM``):

- ``recurrent_dropout=p``: DropConnect on ``W_hh`` (AWD-LSTM's weight drop), one mask per forward
  call, in training only;
- ``peephole=True``: diagonal weights from the cell state to the input, forget and output gates
  (Gers & Schmidhuber);
- ``zoneout=z`` or ``(z_h, z_c)``: each unit of h / c keeps its previous value with that
  probability in training (Krueger et al. 2016); in eval mode the expectation;
- ``layer_norm=True``: the layer-normalized LSTM of Ba, Kiros & Hinton (2016): layer norm on the
  input projection and on the recurrent projection separately, before the bias, and on the new
  cell state before the use gate's tanh; the un-normalized cell state is carried;
- ``use_gate="lesson"``: the use gate exactly as the lesson teaches it, ``h = U_t * V_t`` with
  ``U_t = tanh(W_u (LTM_{t-1} * f_t) + b_u)`` and ``V_t`` the standard output gate (the standard
  cell squashes the new cell state, ``tanh(c_t)``, with no weights of its own).

New parameters, per layer ``k`` (``_reverse`` added for the backward direction), after the
``nn.LSTM`` parameters of that layer-direction; ``LSTMCell`` uses the same names without ``_l{k}``:

- ``peephole_i_l{k}``, ``peephole_f_l{k}``, ``peephole_o_l{k}``: ``[hidden_size]`` each, initialised
  like the LSTM's weights (uniform in +-1/sqrt(hidden_size));
- ``layer_norm_ih_weight_l{k}``, ``layer_norm_ih_bias_l{k}``, ``layer_norm_hh_weight_l{k}``,
  ``layer_norm_hh_bias_l{k}``: ``[4 * hidden_size]``; ``layer_norm_c_weight_l{k}``,
  ``layer_norm_c_bias_l{k}``: ``[hidden_size]``; gains start at 1 and biases at 0 (as nn.LayerNorm);
- ``use_gate_weight_l{k}`` (W_u, ``[hidden_size, hidden_size]``) and, with ``bias=True``,
  ``use_gate_bias_l{k}`` (b_u, ``[hidden_size]``), initialised like the LSTM's weights.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping, Optional, TypedDict, Union

import torch
from torch import Tensor

Zoneout = Union[float, tuple[float, float]]


class VariantKwargs(TypedDict, total=False):
    """The variant options, the keyword arguments ``LSTM`` and ``LSTMCell`` add to ``nn``'s; all
    off by default (see the module docstring)."""

    recurrent_dropout: float
    peephole: bool
    zoneout: Zoneout
    layer_norm: bool
    use_gate: str


VARIANT_NAMES = tuple(VariantKwargs.__annotations__)

_PEEPHOLES = ("i", "f", "o")
USE_GATES = ("standard", "lesson")
# (what is normalized, its width in hidden units): the input projection, the recurrent one, the cell
LAYER_NORMS = (("ih", 4), ("hh", 4), ("c", 1))


def _probability(value: object, what: str) -> float:
    # bool is a number to Python; as a probability it is almost surely a mistake
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"lstm_ext: {what} must be a number in [0, 1], got {type(value).__name__}")
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"lstm_ext: {what} must be a probability in [0, 1], got {value}")
    return p


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"lstm_ext: {what} must be True or False, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class VariantOptions:
    recurrent_dropout: float = 0.0
    peephole: bool = False
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    layer_norm: bool = False
    use_gate: str = "standard"

    @staticmethod
    def parse(options: Mapping[str, object], owner: str) -> "VariantOptions":
        """The options of ``VariantKwargs`` (absent: off), each checked for type and range; raises
        TypeError / ValueError naming the option, and Python's TypeError for an unknown keyword
        argument of ``owner`` ("LSTMCell")."""
        for name in options:
            if name not in VARIANT_NAMES:
                raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}")
        recurrent_dropout = options.get("recurrent_dropout", 0.0)
        peephole, zoneout = options.get("peephole", False), options.get("zoneout", 0.0)
        layer_norm, use_gate = options.get("layer_norm", False), options.get("use_gate", "standard")
        if not isinstance(use_gate, str):
            raise TypeError(f"lstm_ext: use_gate must be a str ('standard' or 'lesson'), got {type(use_gate).__name__}")
        if use_gate not in USE_GATES:
            raise ValueError(f"lstm_ext: use_gate must be 'standard' or 'lesson', got {use_gate!r}")
        if isinstance(zoneout, (tuple, list)):
            if len(zoneout) != 2:
                raise ValueError(f"lstm_ext: zoneout must be one probability or a pair (z_h, z_c), got {zoneout!r}")
            z_h, z_c = (_probability(z, "zoneout") for z in zoneout)
        else:
            z_h = z_c = _probability(zoneout, "zoneout")
        return VariantOptions(
            recurrent_dropout=_probability(recurrent_dropout, "recurrent_dropout"),
            peephole=_flag(peephole, "peephole"),
            zoneout_h=z_h,
            zoneout_c=z_c,
            layer_norm=_flag(layer_norm, "layer_norm"),
            use_gate=use_gate,
        )

    @property
    def zoneout(self) -> bool:
        return self.zoneout_h > 0 or self.zoneout_c > 0

    @property
    def needs_variant_kernel(self) -> bool:
        """Whether the step's arithmetic differs from the plain LSTM's (recurrent dropout only
        changes the weight, and runs on the plain kernel)."""
        return self.peephole or self.zoneout or self.layer_norm or self.lesson

    @property
    def lesson(self) -> bool:
        return self.use_gate == "lesson"

    def check_combinations(self, proj_size: int) -> None:
        """Refuses, at construction, the combinations the variant kernel does not run."""
        self.check_proj_size(proj_size)
        if self.lesson and self.layer_norm:
            raise ValueError(
                "lstm_ext: use_gate='lesson' cannot be combined with layer_norm=True: layer norm normalizes the "
                "cell state before the use gate's tanh, but the lesson's use gate squashes W_u (LTM_{t-1} * f_t), "
                "not the cell state"
            )

    def check_proj_size(self, proj_size: int) -> None:
        """Refuses, at construction, the options the projected LSTM (LSTMP) does not support."""
        if proj_size <= 0:
            return
        for name, on in (("peephole", self.peephole), ("zoneout", self.zoneout), ("layer_norm", self.layer_norm),
                         ("use_gate='lesson'", self.lesson)):
            if on:
                raise ValueError(
                    f"lstm_ext: {name} cannot be combined with proj_size > 0: the fused variant kernel "
                    f"has no projection, and these variants of the projected LSTM (LSTMP) are not defined here"
                )

    def extra_repr(self) -> str:
        parts = []
        if self.recurrent_dropout:
            parts.append(f"recurrent_dropout={self.recurrent_dropout}")
        if self.peephole:
            parts.append("peephole=True")
        if self.zoneout:
            z = self.zoneout_h if self.zoneout_h == self.zoneout_c else (self.zoneout_h, self.zoneout_c)
            parts.append(f"zoneout={z}")
        if self.layer_norm:
            parts.append("layer_norm=True")
        if self.lesson:
            parts.append("use_gate='lesson'")
        return ", ".join(parts)

    def parameter_shapes(self, hidden_size: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
        """The new parameters of one layer-direction, by name without the layer suffix."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.peephole:
            for gate in _PEEPHOLES:
                shapes[f"peephole_{gate}"] = (hidden_size,)
        if self.layer_norm:
            for what, width in LAYER_NORMS:
                shapes[f"layer_norm_{what}_weight"] = (width * hidden_size,)
                shapes[f"layer_norm_{what}_bias"] = (width * hidden_size,)
        if self.lesson:
            shapes["use_gate_weight"] = (hidden_size, hidden_size)
            if bias:
                shapes["use_gate_bias"] = (hidden_size,)
        return shapes


def register_parameters(module: torch.nn.Module, options: VariantOptions, hidden_size: int, bias: bool,
                        suffixes: list[str], factory_kwargs: dict) -> list[list[str]]:
    """Registers the variant parameters of every layer-direction; returns their names per suffix."""
    names: list[list[str]] = []
    for suffix in suffixes:
        own = []
        for base, shape in options.parameter_shapes(hidden_size, bias).items():
            name = base + suffix
            module.register_parameter(name, torch.nn.Parameter(torch.empty(shape, **factory_kwargs)))
            own.append(name)
        names.append(own)
    return names


def _init_variant_parameters(module: torch.nn.Module, names: list[list[str]]) -> None:
    """Peephole weights start like every LSTM weight (uniform in +-1/sqrt(hidden_size)); layer-norm
    gains at 1 and biases at 0, as nn.LayerNorm's."""
    bound = 1.0 / module.hidden_size**0.5 if module.hidden_size > 0 else 0.0
    with torch.no_grad():
        for name in (name for group in names for name in group):
            param = getattr(module, name)
            if name.startswith(("peephole_", "use_gate_")):
                param.uniform_(-bound, bound)
            else:
                param.fill_(1.0 if "_weight" in name else 0.0)


def _peephole(module: torch.nn.Module, names: list[str]) -> Optional[Tensor]:
    """``[3H]`` = (p_i, p_f, p_o) of one layer-direction, or None without peepholes."""
    if not module.variant_options.peephole:
        return None
    return torch.cat([getattr(module, name) for name in names if name.startswith("peephole_")])


def _layer_norm(module: torch.nn.Module, names: list[str]) -> list[Tensor]:
    """The six layer-norm gains and biases of one layer-direction (ih, hh, c), or [] without."""
    return [getattr(module, name) for name in names if name.startswith("layer_norm_")]


def _lesson(module: torch.nn.Module, names: list[str]) -> list[Optional[Tensor]]:
    """``[W_u, b_u]`` of the lesson's use gate (b_u None without bias), or [] for the standard one."""
    if not module.variant_options.lesson:
        return []
    w_u, *b_u = [getattr(module, name) for name in names if name.startswith("use_gate_")]  # weight, then bias
    return [w_u, b_u[0] if b_u else None]


class _VariantChoice:
    """The LSTM layers' ``variant_options`` attribute: in repr when any is on, and restored as all
    off for modules pickled before they existed. Mixed in before ``_BackendChoice``."""

    variant_options: VariantOptions
    _variant_names: list[list[str]]

    def _add_variants(self, options: VariantOptions, suffixes: list[str]) -> None:
        """Sets ``variant_options`` and registers and initialises the variant parameters of every
        layer-direction, named with ``suffixes`` (``_l0``, ``_l0_reverse``, ...; ``[""]`` for a cell),
        on the device and in the dtype of the module's first weight."""
        module: torch.nn.Module = self  # type: ignore[assignment]
        self.variant_options = options
        first = next(module.parameters())
        factory = {"device": first.device, "dtype": first.dtype}
        self._variant_names = register_parameters(module, options, module.hidden_size, module.bias, suffixes, factory)
        _init_variant_parameters(module, self._variant_names)

    def extra_repr(self) -> str:
        s = super().extra_repr()  # type: ignore[misc]
        variants = self.variant_options.extra_repr()
        return f"{s}, {variants}" if variants else s

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        if "variant_options" not in self.__dict__:
            self.variant_options = VariantOptions()
            # no variant parameters in any layer-direction (LSTMCell: its one)
            self._variant_names = [[] for _ in getattr(self, "_all_weights", [None])]
