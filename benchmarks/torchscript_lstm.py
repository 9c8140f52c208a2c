"""A TorchScript LSTM: a custom LSTM layer written in Python and compiled by ``torch.jit.script``.

The same idea as pytorch's ``benchmarks/fastrnns/custom_lstms.py`` (``script_lstm``), written
here from scratch: the input projection of all steps is one GEMM up front ("premul"), then a
scripted loop does one ``mm`` and the gate arithmetic per step. Layers, both directions and
``proj_size`` are supported; packed sequences are not. Parameters are built from an
``nn.LSTM`` state_dict and :func:`build` returns the name map back to ``nn.LSTM``'s names.

(No ``from __future__ import annotations`` here: TorchScript needs the real annotations.)
"""

import warnings
from typing import List

import torch
from torch import Tensor, nn


class ScriptLSTMDirection(nn.Module):
    """One layer, one direction; returns the output sequence ``[T, B, P]``."""

    has_proj: torch.jit.Final[bool]
    reverse: torch.jit.Final[bool]

    def __init__(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, w_hr, reverse: bool):
        super().__init__()
        self.weight_ih = nn.Parameter(w_ih.detach().clone())
        self.weight_hh = nn.Parameter(w_hh.detach().clone())
        self.bias_ih = nn.Parameter(b_ih.detach().clone())
        self.bias_hh = nn.Parameter(b_hh.detach().clone())
        self.has_proj = w_hr is not None
        # TorchScript wants a tensor either way; the empty one is never used without a projection.
        self.weight_hr = nn.Parameter(w_hr.detach().clone() if w_hr is not None else w_ih.new_empty(0))
        self.reverse = reverse
        self.hidden_size = w_hh.shape[0] // 4
        self.out_size = w_hh.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        steps = x.size(0)
        batch = x.size(1)
        premul = torch.matmul(x, self.weight_ih.t()) + (self.bias_ih + self.bias_hh)  # [T, B, 4H]
        h = x.new_zeros(batch, self.out_size)
        c = x.new_zeros(batch, self.hidden_size)
        w_hh_t = self.weight_hh.t()
        outputs = torch.jit.annotate(List[Tensor], [])
        for step in range(steps):
            t = steps - 1 - step if self.reverse else step
            gates = premul[t] + torch.mm(h, w_hh_t)
            i, f, g, o = gates.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if self.has_proj:
                h = torch.mm(h, self.weight_hr.t())
            outputs.append(h)
        if self.reverse:
            outputs.reverse()
        return torch.stack(outputs)


class ScriptLSTMLayer(nn.Module):
    bidirectional: torch.jit.Final[bool]

    def __init__(self, forward_dir: ScriptLSTMDirection, reverse_dir):
        super().__init__()
        self.fwd = forward_dir
        self.bidirectional = reverse_dir is not None
        # A module attribute must exist for TorchScript; reuse the forward one when unidirectional.
        self.rev = reverse_dir if reverse_dir is not None else forward_dir

    def forward(self, x: Tensor) -> Tensor:
        if self.bidirectional:
            return torch.cat([self.fwd(x), self.rev(x)], dim=-1)
        return self.fwd(x)


class ScriptLSTM(nn.Module):
    def __init__(self, layers: List[ScriptLSTMLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def build(state_dict: dict, layers: int, bidirectional: bool):
    """``(scripted module, {nn.LSTM parameter name: parameter})`` holding copies of the weights."""
    built: List[ScriptLSTMLayer] = []
    names: dict = {}
    for layer in range(layers):
        dirs = []
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            key = lambda w: f"{w}_l{layer}{suffix}"  # noqa: E731
            direction = ScriptLSTMDirection(
                state_dict[key("weight_ih")], state_dict[key("weight_hh")],
                state_dict[key("bias_ih")], state_dict[key("bias_hh")],
                state_dict.get(key("weight_hr")), reverse=bool(suffix),
            )
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + (("weight_hr",) if direction.has_proj else ()):
                names[key(w)] = f"layers.{layer}.{'rev' if suffix else 'fwd'}.{w}"
            dirs.append(direction)
        built.append(ScriptLSTMLayer(dirs[0], dirs[1] if bidirectional else None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated as of torch 2.1x
        scripted = torch.jit.script(ScriptLSTM(built))
    params = dict(scripted.named_parameters())
    return scripted, {name: params[path] for name, path in names.items()}
