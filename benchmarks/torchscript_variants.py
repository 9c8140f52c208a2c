"""TorchScript versions of the LSTM variants: what a user writes today when ``nn.LSTM`` lacks one.

One layer, one direction, zero initial state: the input projection of all steps is one GEMM
up front (with layer norm, one ``layer_norm`` too), then a scripted loop does one ``mm`` and the
variant's gate arithmetic per step.
Recurrent dropout drops ``W_hh`` once per call (lstm_ext's mask); zoneout draws its masks for all
steps at once. The random draws come in the same order as ``lstm_ext.LSTM``'s (``W_hh``'s mask,
then zoneout's h masks, then c masks), so with one seed both see the same masks.

(No ``from __future__ import annotations`` here: TorchScript needs the real annotations.)
"""

import warnings
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ScriptVariantLSTM(nn.Module):
    peephole: torch.jit.Final[bool]
    layer_norm: torch.jit.Final[bool]
    lesson: torch.jit.Final[bool]
    recurrent_dropout: torch.jit.Final[float]
    zoneout_h: torch.jit.Final[float]
    zoneout_c: torch.jit.Final[float]

    def __init__(self, params: dict, recurrent_dropout: float, zoneout_h: float, zoneout_c: float):
        super().__init__()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(self, name, nn.Parameter(params[name + "_l0"].detach().clone()))
        self.peephole = "peephole_i_l0" in params
        # TorchScript wants a tensor either way; the empty one is never read without peepholes.
        names = ("peephole_i_l0", "peephole_f_l0", "peephole_o_l0")
        self.peepholes = nn.Parameter(
            torch.cat([params[n].detach() for n in names]) if self.peephole else params["bias_ih_l0"].new_empty(0)
        )
        self.layer_norm = "layer_norm_ih_weight_l0" in params
        # (ih_weight, ih_bias, hh_weight, hh_bias, c_weight, c_bias), or empty
        norms = [f"layer_norm_{w}_{k}_l0" for w in ("ih", "hh", "c") for k in ("weight", "bias")]
        self.norms = nn.ParameterList([nn.Parameter(params[n].detach().clone()) for n in norms if n in params])
        self.lesson = "use_gate_weight_l0" in params
        # the lesson's use gate: W_u and b_u, or empty
        self.use_gate = nn.ParameterList([nn.Parameter(params[n].detach().clone())
                                          for n in ("use_gate_weight_l0", "use_gate_bias_l0") if n in params])
        self.recurrent_dropout = recurrent_dropout
        self.zoneout_h = zoneout_h
        self.zoneout_c = zoneout_c

    def _mask(self, p: float, like: Tensor) -> Tensor:
        """Ones with probability p, drawn as lstm_ext draws them (lstm_ext/_masks.py), so the
        outputs compare on one seed."""
        seed = torch.randint(1 << 62, [], dtype=torch.int64)
        return torch.ops.lstm_ext.bernoulli_mask(seed, p, like.shape, like.dtype)

    def _keep(self, z: float, like: Tensor) -> Tensor:
        return self._mask(z, like) if self.training else torch.full_like(like, z)

    def forward(self, x: Tensor) -> Tensor:
        steps, batch = x.size(0), x.size(1)
        hidden = self.weight_hh.size(1)
        norms: List[Tensor] = [p for p in self.norms]
        use_gate: List[Tensor] = [p for p in self.use_gate]
        if self.layer_norm:
            premul = F.layer_norm(torch.matmul(x, self.weight_ih.t()), [4 * hidden], norms[0], norms[1])
            premul = premul + (self.bias_ih + self.bias_hh)
        else:
            premul = torch.matmul(x, self.weight_ih.t()) + (self.bias_ih + self.bias_hh)  # [T, B, 4H]
        w_hh = self.weight_hh
        if self.recurrent_dropout > 0 and self.training:  # lstm_ext.reference.drop_connect's mask
            keep = 1.0 - self.recurrent_dropout
            w_hh = w_hh * (self._mask(keep, w_hh) / keep)
        w_hh_t = w_hh.t()
        shape = x.new_empty(steps, batch, hidden)
        keep_h = self._keep(self.zoneout_h, shape) if self.zoneout_h > 0 else shape.new_zeros(0)
        keep_c = self._keep(self.zoneout_c, shape) if self.zoneout_c > 0 else shape.new_zeros(0)
        p = self.peepholes.view(3, -1) if self.peephole else self.peepholes
        h = x.new_zeros(batch, hidden)
        c = x.new_zeros(batch, hidden)
        outputs = []
        for t in range(steps):
            if self.layer_norm:
                gates = premul[t] + F.layer_norm(torch.mm(h, w_hh_t), [4 * hidden], norms[2], norms[3])
            else:
                gates = premul[t] + torch.mm(h, w_hh_t)
            i, f, g, o = gates.chunk(4, 1)
            if self.peephole:
                i = i + p[0] * c
                f = f + p[1] * c
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if self.peephole:
                o = o + p[2] * c_new
            if self.lesson:
                kept = torch.sigmoid(f) * c
                h_new = torch.tanh(F.linear(kept, use_gate[0], use_gate[1])) * torch.sigmoid(o)
            elif self.layer_norm:
                h_new = torch.sigmoid(o) * torch.tanh(F.layer_norm(c_new, [hidden], norms[4], norms[5]))
            else:
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if self.zoneout_h > 0:
                h_new = keep_h[t] * h + (1 - keep_h[t]) * h_new
            if self.zoneout_c > 0:
                c_new = keep_c[t] * c + (1 - keep_c[t]) * c_new
            h, c = h_new, c_new
            outputs.append(h)
        return torch.stack(outputs)


def build(params: dict, recurrent_dropout: float = 0.0, zoneout_h: float = 0.0, zoneout_c: float = 0.0) -> nn.Module:
    """A scripted one-layer variant LSTM holding copies of ``params`` (``lstm_ext.LSTM`` names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated as of torch 2.1x
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(ScriptVariantLSTM(params, recurrent_dropout, zoneout_h, zoneout_c))
