"""One configuration's weights, input and output gradient, shared by every implementation.

The weights are those of a seeded ``torch.nn.LSTM`` (its own initialisation), ``torch.nn.GRU``
for GRU shapes, or the reference ``lstm_ext.LSTM`` for a variant (which has extra parameters);
every implementation is built from its ``state_dict``. The input is ``[T, B, I]`` (time first, as
fastrnns does), or, for ``packed`` shapes, a ``PackedSequence`` of lengths drawn in ``[T/2, T]``
(the longest exactly ``T``, sorted longest first). In train mode the input requires grad and the
backward pass is driven by a fixed random ``grad_output``: the cost of a training step without
the optimizer (``loss = (output * grad_output).sum()``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from .configs import DTYPES, Config

Input = Union[torch.Tensor, PackedSequence]


@dataclass
class Workload:
    config: Config
    device: torch.device
    state_dict: dict  # nn.LSTM's, in the config's dtype, on the device
    lengths: Optional[list[int]]  # per sequence, packed shapes only
    batch_sizes: list[int]  # rows per step (all B when dense)
    x: torch.Tensor  # dense input, or the packed data [N, I]
    grad_output: torch.Tensor  # like the output (dense [T, B, D*P] or packed [N, D*P])
    seed: int = 0  # the random masks of a variant are drawn from this seed on every checked call

    @property
    def tokens(self) -> int:
        """Rows of input processed per layer and direction: T*B dense, sum(lengths) packed."""
        return sum(self.batch_sizes)

    def make_input(self, requires_grad: bool) -> Input:
        """A fresh leaf (so gradients never leak between implementations) holding the same values."""
        data = self.x.detach().clone().requires_grad_(requires_grad)
        if self.lengths is None:
            return data
        return PackedSequence(data, torch.tensor(self.batch_sizes, dtype=torch.int64))


def output_data(out: Input) -> torch.Tensor:
    """The tensor behind an implementation's output (dense output, or the packed data)."""
    return out.data if isinstance(out, PackedSequence) else out


def input_data(inp: Input) -> torch.Tensor:
    return inp.data if isinstance(inp, PackedSequence) else inp


def make_workload(cfg: Config, device: Union[str, torch.device], seed: int = 0) -> Workload:
    device = torch.device(device)
    dtype = cfg.torch_dtype
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = _base_module(cfg)
    state_dict = {k: v.detach().to(device=device, dtype=dtype) for k, v in base.state_dict().items()}

    lengths = None
    batch_sizes = [cfg.B] * cfg.T
    x = torch.randn(cfg.T, cfg.B, cfg.I, generator=gen)
    if cfg.packed:
        low = max(1, cfg.T // 2)
        lengths = torch.randint(low, cfg.T + 1, (cfg.B,), generator=gen)
        lengths[0] = cfg.T
        lengths = sorted(lengths.tolist(), reverse=True)
        packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=True)
        x = packed.data
        batch_sizes = packed.batch_sizes.tolist()
    dirs = 2 if cfg.bidirectional else 1
    out_shape = (x.shape[0], dirs * cfg.P) if cfg.packed else (cfg.T, cfg.B, dirs * cfg.P)
    grad_output = torch.randn(out_shape, generator=gen)
    return Workload(
        config=cfg, device=device, state_dict=state_dict, lengths=lengths, batch_sizes=batch_sizes,
        x=x.to(device=device, dtype=dtype), grad_output=grad_output.to(device=device, dtype=dtype), seed=seed,
    )


def _base_module(cfg: Config) -> torch.nn.Module:
    """The module whose seeded initial weights every implementation of ``cfg`` loads."""
    shape = dict(num_layers=cfg.layers, bidirectional=cfg.bidirectional)
    if cfg.cell == "gru":
        return torch.nn.GRU(cfg.I, cfg.H, **shape)
    if cfg.variant:
        import lstm_ext

        return lstm_ext.LSTM(cfg.I, cfg.H, **shape, backend="reference", **cfg.variant_options)
    return torch.nn.LSTM(cfg.I, cfg.H, **shape, proj_size=cfg.proj_size)


def in_dtype(wl: Workload, dtype: str) -> Workload:
    """The same workload (weights, input, grad_output) converted to ``dtype``."""
    torch_dtype = DTYPES[dtype]
    return dataclasses.replace(
        wl, config=dataclasses.replace(wl.config, dtype=dtype),
        state_dict={k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in wl.state_dict.items()},
        x=wl.x.to(torch_dtype), grad_output=wl.grad_output.to(torch_dtype))
