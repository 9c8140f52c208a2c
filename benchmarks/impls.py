"""The implementations compared, each built from the same ``nn.LSTM`` state_dict.

An :class:`Impl` says whether it can run at all here (``unavailable``: a one-line reason, or
None), whether it can run one shape (``unsupported``), and builds a :class:`Built`: a callable
taking the workload's input (a ``[T, B, I]`` tensor or a ``PackedSequence``) and returning the
output sequence (a tensor or a ``PackedSequence``), plus its parameters under ``nn.LSTM``'s names
(for the gradient check). Hidden states start at zero everywhere.

An implementation runs the kinds of cell in its ``kinds`` (a Config's ``kind``: ``lstm``, ``gru``
or ``variant``, an LSTM variant); ``Impl.why_not`` says why it cannot run one shape.

========================  ====================================================================
name                      what runs
========================  ====================================================================
``fused``                 ``lstm_ext.LSTM(backend="fused")``: the compiled kernel (CPU, CUDA);
                          ``lstm_ext.GRU`` for GRU shapes, with the options of a variant
``reference``             ``lstm_ext.LSTM(backend="reference")``: plain PyTorch, the oracle
                          (``lstm_ext.GRU``, and the variant's options, likewise)
``fused_plain_loop``      ``fused`` with ``LSTM_EXT_FUSED_STEP=0``: the time loop without the fused
                          step, forward and backward (the A/B of the ``fused_step`` preset)
``plain_fused``           a variant's shape run by the plain fused LSTM: the variant's cost
                          baseline (checked against ``plain_reference``, the plain reference)
``reference_compiled``    ``torch.compile`` of the reference module (inductor)
``torchscript``           a scripted custom LSTM layer (``torchscript_lstm.py``), as fastrnns;
                          a variant's scripted loop (``torchscript_variants.py``)
``nn``                    ``torch.nn.LSTM`` as shipped: oneDNN on the CPU, cuDNN on CUDA
                          (``torch.nn.GRU`` for GRU shapes)
``nn_composite``          ``torch.nn.LSTM`` with oneDNN (and cuDNN) disabled: ATen's composite
``cell_loop``             a Python loop over ``torch.nn.LSTMCell``
``haste``                 ``haste_pytorch.LSTM`` (CUDA), when importable
``flashrnn``              ``flashrnn.flashrnn(function="lstm")`` (CUDA), when importable
========================  ====================================================================

The deployment runtimes (ONNX Runtime, AOTInductor) are in ``deploy_impls.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from . import torchscript_lstm, torchscript_variants
from .configs import Config
from .workload import Input, Workload

# torch.backends.mkldnn.flags() warns about TF32 on every entry on CPU-only builds; nn.LSTM warns
# once that oneDNN has no projections (the record's note says which path ran instead)
warnings.filterwarnings("ignore", message=".*TF32 acceleration on top of oneDNN.*")
warnings.filterwarnings("ignore", message=".*LSTM with projections is not supported with oneDNN.*")

Forward = Callable[[Input], Input]


@dataclass
class Built:
    forward: Forward
    params: dict  # nn.LSTM parameter name -> Parameter (whose .grad the train step fills)
    module: Optional[nn.Module] = None  # for optimizers (charlm); None when params suffice
    note: str = ""
    # what every timed or checked call runs inside, forward and backward alike
    scope: Callable[[], ContextManager] = contextlib.nullcontext


@dataclass
class Impl:
    name: str
    label: str
    build: Callable[[Workload], Built]
    unavailable: Callable[[torch.device], Optional[str]] = lambda device: None
    unsupported: Callable[[Config, torch.device], Optional[str]] = lambda cfg, device: None
    # profiler op names that must not appear in a forward pass: the check that a path is the one
    # claimed (nn_composite: no oneDNN / cuDNN RNN kernel)
    forbidden_ops: Callable[[torch.device], tuple] = lambda device: ()
    # names the kernel path from the op names of one profiled forward (nn: oneDNN or not)
    path_note: Optional[Callable[[set], str]] = None
    compiles: bool = False  # the first calls compile (torch.compile): see first_call_s
    # not in the default selection: test doubles, and runtimes only a preset's shapes name (deploy_impls.py)
    hidden: bool = False
    extra: dict = field(default_factory=dict)
    kinds: tuple = ("lstm",)  # the Config kinds it runs: "lstm", "gru", "variant"
    oracle: Optional[str] = None  # checked against this implementation instead of the run's oracle
    modes: tuple = ("forward", "train")  # the deployment runtimes run inference only

    def why_not(self, cfg: Config, device: torch.device) -> Optional[str]:
        """Why this implementation cannot run ``cfg`` on ``device``, or None."""
        if cfg.kind not in self.kinds:
            return f"runs {'/'.join(self.kinds)} only, not {cfg.kind}"
        return self.unsupported(cfg, device)


# ---- helpers --------------------------------------------------------------------------------


def _lstm_ext():
    """The lstm_ext package, or raises ImportError with the reason."""
    return importlib.import_module("lstm_ext")


def _lstm_ext_unavailable(device: torch.device) -> Optional[str]:
    try:
        _lstm_ext()
    except Exception as error:  # noqa: BLE001 - any import failure makes it unavailable
        return f"lstm_ext does not import: {type(error).__name__}: {error}".splitlines()[0]
    return None


def _fused_unavailable(device: torch.device) -> Optional[str]:
    reason = _lstm_ext_unavailable(device)
    if reason:
        return reason
    from lstm_ext import _library

    if _library.LOAD_ERROR is not None:
        return f"compiled extension not built/loaded ({type(_library.LOAD_ERROR).__name__}: {_library.LOAD_ERROR})".splitlines()[0]
    return None


_FUSED_OP = {"lstm": "lstm_ext::lstm_layer", "gru": "lstm_ext::gru_layer", "variant": "lstm_ext::lstm_variant_layer"}


def _fused_unsupported(cfg: Config, device: torch.device) -> Optional[str]:
    op = _FUSED_OP[cfg.kind]
    if not _lstm_ext().has_kernel(op, device, cfg.torch_dtype):
        return f"no fused kernel ({op}) for {device.type}/{cfg.dtype}"
    return None


def _lstm_kwargs(cfg: Config, wl: Workload) -> dict:
    kwargs = dict(input_size=cfg.I, hidden_size=cfg.H, num_layers=cfg.layers, bidirectional=cfg.bidirectional,
                  device=wl.device, dtype=cfg.torch_dtype)
    if cfg.cell == "lstm":
        kwargs["proj_size"] = cfg.proj_size
    return kwargs


def _sequence_output(module: nn.Module) -> Forward:
    def forward(inp: Input) -> Input:
        return module(inp)[0]

    return forward


def _named(module: nn.Module) -> dict:
    return dict(module.named_parameters())


def _no_packed(cfg: Config, device: torch.device) -> Optional[str]:
    return "packed sequences not supported" if cfg.packed else None


# ---- lstm_ext ---------------------------------------------------------------------------------


def _plain_loop() -> ContextManager:
    """LSTM_EXT_FUSED_STEP=0 for the duration: the kernels read it on every call."""
    from lstm_ext._switches import fused_step

    return fused_step(False)


def _build_lstm_ext(backend: str, plain: bool = False, plain_loop: bool = False) -> Callable[[Workload], Built]:
    """lstm_ext's layer for the workload's cell (with the variant's options unless ``plain``); with
    ``plain_loop``, every call runs the time loop without the fused step."""

    def build(wl: Workload) -> Built:
        cfg = wl.config
        lstm_ext = _lstm_ext()
        if cfg.cell == "gru":
            module = lstm_ext.GRU(**_lstm_kwargs(cfg, wl), backend=backend)
        else:
            options = {} if plain else cfg.variant_options
            module = lstm_ext.LSTM(**_lstm_kwargs(cfg, wl), backend=backend, **options)
        own = module.state_dict()
        module.load_state_dict({k: v for k, v in wl.state_dict.items() if k in own}, strict=not plain)
        scope = _plain_loop if plain_loop else contextlib.nullcontext
        return Built(_sequence_output(module), _named(module), module, scope=scope)

    return build


def _build_reference_compiled(wl: Workload) -> Built:
    module = _lstm_ext().LSTM(**_lstm_kwargs(wl.config, wl), backend="reference")
    module.load_state_dict(wl.state_dict)
    compiled = torch.compile(module)
    return Built(_sequence_output(compiled), _named(module), compiled)


def _compiled_unavailable(device: torch.device) -> Optional[str]:
    reason = _lstm_ext_unavailable(device)
    if reason:
        return reason
    if not hasattr(torch, "compile"):
        return "torch.compile is missing"
    return None


# ---- torch.nn ---------------------------------------------------------------------------------


def _nn_module(wl: Workload) -> nn.Module:
    return (nn.GRU if wl.config.cell == "gru" else nn.LSTM)(**_lstm_kwargs(wl.config, wl))


def _build_nn(wl: Workload) -> Built:
    module = _nn_module(wl)
    module.load_state_dict(wl.state_dict)
    return Built(_sequence_output(module), _named(module), module)


@contextlib.contextmanager
def composite_path():
    """oneDNN off (CPU) and cuDNN off (CUDA): nn.LSTM then runs ATen's composite LSTM."""
    with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
        yield


def _build_nn_composite(wl: Workload) -> Built:
    module = _nn_module(wl)
    module.load_state_dict(wl.state_dict)

    def forward(inp: Input) -> Input:
        with composite_path():
            return module(inp)[0]

    return Built(forward, _named(module), module)


def _nn_path_note(ops: set) -> str:
    for op, name in (("aten::mkldnn_rnn_layer", "oneDNN"), ("aten::_cudnn_rnn", "cuDNN"), ("aten::miopen_rnn", "MIOpen")):
        if op in ops:
            return f"ran {name} ({op})"
    return "ran ATen's composite RNN (no oneDNN/cuDNN kernel for this cell, shape or dtype)"


def _composite_forbidden(device: torch.device) -> tuple:
    # the oneDNN RNN ops (CPU) and cuDNN's (CUDA): the profiler must show none of them
    return ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn", "aten::_cudnn_rnn", "aten::miopen_rnn")


# ---- nn.LSTMCell loop -------------------------------------------------------------------------


class CellLoop(nn.Module):
    """Layers x directions of ``nn.LSTMCell``, stepped by a Python loop."""

    def __init__(self, cfg: Config, wl: Workload):
        super().__init__()
        self.layers = cfg.layers
        self.dirs = 2 if cfg.bidirectional else 1
        self.cells = nn.ModuleList()
        self.names: dict = {}
        for layer in range(cfg.layers):
            in_size = cfg.I if layer == 0 else self.dirs * cfg.H
            for d in range(self.dirs):
                suffix = "_reverse" if d else ""
                cell = nn.LSTMCell(in_size, cfg.H, device=wl.device, dtype=cfg.torch_dtype)
                with torch.no_grad():
                    for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, w).copy_(wl.state_dict[f"{w}_l{layer}{suffix}"])
                        self.names[f"{w}_l{layer}{suffix}"] = getattr(cell, w)
                self.cells.append(cell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[0], x.shape[1]
        for layer in range(self.layers):
            outs = []
            for d in range(self.dirs):
                cell = self.cells[layer * self.dirs + d]
                h = x.new_zeros(batch, cell.hidden_size)
                c = x.new_zeros(batch, cell.hidden_size)
                ys: list = [None] * steps
                for t in (range(steps - 1, -1, -1) if d else range(steps)):
                    h, c = cell(x[t], (h, c))
                    ys[t] = h
                outs.append(torch.stack(ys))
            x = outs[0] if self.dirs == 1 else torch.cat(outs, dim=-1)
        return x


def _build_cell_loop(wl: Workload) -> Built:
    module = CellLoop(wl.config, wl)
    return Built(module, module.names, module)


def _cell_loop_unsupported(cfg: Config, device: torch.device) -> Optional[str]:
    if cfg.proj_size:
        return "nn.LSTMCell has no proj_size"
    return _no_packed(cfg, device)


# ---- TorchScript ------------------------------------------------------------------------------


def _build_torchscript(wl: Workload) -> Built:
    cfg = wl.config
    if cfg.variant:
        return _build_torchscript_variant(wl)
    module, names = torchscript_lstm.build(wl.state_dict, cfg.layers, cfg.bidirectional)
    return Built(module, names, module)


def _build_torchscript_variant(wl: Workload) -> Built:
    reference = _build_lstm_ext("reference")(wl).module  # parses the variant's options
    opts = reference.variant_options
    module = torchscript_variants.build(dict(reference.named_parameters()), opts.recurrent_dropout,
                                        opts.zoneout_h, opts.zoneout_c)
    # the scripted loop keeps peepholes and norms in its own layout: the LSTM weights' gradients only
    names = {f"{w}_l0": getattr(module, w) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    return Built(module, names, module)


def _torchscript_unsupported(cfg: Config, device: torch.device) -> Optional[str]:
    if cfg.variant and (cfg.layers != 1 or cfg.bidirectional):
        return "the scripted variant loop covers 1 layer, 1 direction"
    return _no_packed(cfg, device)


# ---- third-party (CUDA) -----------------------------------------------------------------------


def _importable(name: str) -> Callable[[torch.device], Optional[str]]:
    def unavailable(device: torch.device) -> Optional[str]:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001
            return f"{name} not importable ({type(error).__name__})"
        if device.type != "cuda":
            return f"{name} runs on CUDA only"
        return None

    return unavailable


def _single_layer_only(cfg: Config, device: torch.device) -> Optional[str]:
    if cfg.layers != 1 or cfg.bidirectional or cfg.proj_size or cfg.packed:
        return "adapter covers 1 layer, 1 direction, no proj_size, dense input"
    return None


def _build_haste(wl: Workload) -> Built:
    import haste_pytorch as haste

    cfg, sd = wl.config, wl.state_dict
    module = haste.LSTM(cfg.I, cfg.H, batch_first=False, forget_bias=0.0).to(device=wl.device, dtype=cfg.torch_dtype)
    module.from_native_weights(sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"])

    def forward(inp: Input) -> Input:
        return module(inp)[0]

    # haste keeps its own weight layout: no nn.LSTM-named gradients to compare (output checked only)
    return Built(forward, {}, module, note="output checked; gradients in haste's own layout")


class FlashRNNLSTM(nn.Module):
    """flashrnn's fused LSTM (gate order i, f, z, o like torch) behind nn.LSTM's weights."""

    def __init__(self, wl: Workload):
        super().__init__()
        sd = wl.state_dict
        self.weight_ih_l0 = nn.Parameter(sd["weight_ih_l0"].clone())
        self.weight_hh_l0 = nn.Parameter(sd["weight_hh_l0"].clone())
        self.bias_ih_l0 = nn.Parameter(sd["bias_ih_l0"].clone())
        self.bias_hh_l0 = nn.Parameter(sd["bias_hh_l0"].clone())
        self.hidden = wl.config.H
        self.dtype_name = wl.config.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from flashrnn import flashrnn

        steps, batch, hidden = x.shape[0], x.shape[1], self.hidden
        wx = torch.nn.functional.linear(x, self.weight_ih_l0)  # [T, B, 4H]
        wx = wx.transpose(0, 1).reshape(batch, steps, 4, 1, hidden)  # B T G NH D
        r = self.weight_hh_l0.view(4, 1, hidden, hidden)  # G NH D(out) P(in)
        b = (self.bias_ih_l0 + self.bias_hh_l0).view(4, 1, hidden)  # G NH D
        states, _ = flashrnn(wx, r, b, function="lstm", backend="cuda_fused", dtype=self.dtype_name)
        return states[0, :, :, 0, :].transpose(0, 1)  # h: [B, T, D] -> [T, B, D]


def _build_flashrnn(wl: Workload) -> Built:
    module = FlashRNNLSTM(wl)
    return Built(module, _named(module), module, note="adapter untested without a GPU; the check decides")


# ---- the registry -----------------------------------------------------------------------------

IMPLS: dict = {}


def register(impl: Impl) -> Impl:
    IMPLS[impl.name] = impl
    return impl


ALL_KINDS = ("lstm", "gru", "variant")
register(Impl("fused", "lstm_ext fused", _build_lstm_ext("fused"), _fused_unavailable, _fused_unsupported,
              kinds=ALL_KINDS))
register(Impl("reference", "lstm_ext reference", _build_lstm_ext("reference"), _lstm_ext_unavailable,
              kinds=ALL_KINDS))
register(Impl("fused_plain_loop", "lstm_ext, plain loop (LSTM_EXT_FUSED_STEP=0)",
              _build_lstm_ext("fused", plain_loop=True), _fused_unavailable, _fused_unsupported,
              kinds=ALL_KINDS))
register(Impl("plain_fused", "plain fused LSTM", _build_lstm_ext("fused", plain=True), _fused_unavailable,
              lambda cfg, device: _fused_unsupported(dataclasses.replace(cfg, variant=""), device),
              kinds=("variant",), oracle="plain_reference"))
register(Impl("plain_reference", "plain reference LSTM", _build_lstm_ext("reference", plain=True),
              _lstm_ext_unavailable, kinds=("variant",), hidden=True))
register(Impl("reference_compiled", "reference + torch.compile", _build_reference_compiled, _compiled_unavailable,
              _no_packed, compiles=True))
register(Impl("torchscript", "TorchScript LSTM", _build_torchscript, unsupported=_torchscript_unsupported,
              kinds=("lstm", "variant")))
register(Impl("nn", "nn.LSTM", _build_nn, path_note=_nn_path_note, kinds=("lstm", "gru")))
register(Impl("nn_composite", "nn.LSTM (oneDNN/cuDNN off)", _build_nn_composite, forbidden_ops=_composite_forbidden,
              kinds=("lstm", "gru")))
register(Impl("cell_loop", "nn.LSTMCell loop", _build_cell_loop, unsupported=_cell_loop_unsupported))
register(Impl("haste", "haste_pytorch.LSTM", _build_haste, _importable("haste_pytorch"), _single_layer_only))
register(Impl("flashrnn", "flashrnn", _build_flashrnn, _importable("flashrnn"), _single_layer_only))

BASELINE = "nn"  # speedups are against this one, measured in the same run
ORACLE = "reference"  # every implementation is checked against this one
FALLBACK_ORACLE = "nn_composite"  # the oracle's own check, and the oracle when lstm_ext is missing


def default_selection() -> list:
    return [name for name, impl in IMPLS.items() if not impl.hidden]


def resolve(names: Optional[list]) -> list:
    """Validated implementation names (all non-hidden ones when ``names`` is empty)."""
    if not names:
        return default_selection()
    unknown = [n for n in names if n not in IMPLS]
    if unknown:
        raise KeyError(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(IMPLS)}")
    return list(dict.fromkeys(names))


def is_packed(x: Input) -> bool:
    return isinstance(x, PackedSequence)


from . import deploy_impls  # noqa: E402,F401  (registers the deployment runtimes, which use the helpers above)
