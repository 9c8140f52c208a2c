"""The deployment runtimes the ``deploy`` preset compares (inference only), built from the same
state_dict as every other implementation:

========================  ====================================================================
name                      what runs
========================  ====================================================================
``onnxruntime``           ONNX Runtime on ``lstm_ext.LSTM`` / ``GRU`` exported with
                          ``torch.onnx.export(..., dynamo=True)`` (ONNX's own LSTM / GRU node, or
                          a Loop of standard operators for proj_size and the variants)
``onnxruntime_nn``        ONNX Runtime on ``torch.nn.LSTM`` / ``GRU`` exported the same way
``aoti``                  an AOTInductor package of the exported ``lstm_ext`` layer
                          (``torch._inductor.aoti_compile_and_package``, compiled once per shape)
========================  ====================================================================

Each is exported or compiled at the workload's shape when it is built (not timed); ONNX Runtime
runs with as many intra-op threads as torch has, so the comparison is thread for thread, and
without spinning between runs, so that it leaves the cores to the implementations timed in turn
with it.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import warnings
from typing import Callable, Optional

import torch

from .configs import Config
from .impls import Built, Impl, _build_lstm_ext, _nn_module, register
from .workload import Input, Workload

INFERENCE = ("forward",)


class _Output(torch.nn.Module):
    """The layer's output sequence alone: what every implementation of the suite returns."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


def _modules_unavailable(*modules: str) -> Callable[[torch.device], Optional[str]]:
    def unavailable(device: torch.device) -> Optional[str]:
        if device.type != "cpu":
            return "the deployment runtimes are measured on the CPU"
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as error:  # noqa: BLE001 - any import failure makes it unavailable
                return f"{name} not importable ({type(error).__name__})"
        return None

    return unavailable


def _dense_only(cfg: Config, device: torch.device) -> Optional[str]:
    if cfg.packed:
        return "packed input has no exported form"
    return None


def _layer(wl: Workload, ours: bool) -> torch.nn.Module:
    if ours:
        return _build_lstm_ext("fused")(wl).module
    module = _nn_module(wl)
    module.load_state_dict(wl.state_dict)
    return module


def _build_onnxruntime(ours: bool) -> Callable[[Workload], Built]:
    def build(wl: Workload) -> Built:
        import onnxruntime

        layer = _layer(wl, ours)
        model = _Output(layer).eval()
        logging.disable(logging.WARNING)  # the exporter reports every step it takes
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(model, (wl.x,), dynamo=True, input_names=["x"], verbose=False)
        finally:
            logging.disable(logging.NOTSET)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # ONNX Runtime's threads spin after each run by default, taking the cores from whichever
        # implementation the round-robin times next (an AOTInductor package ran 20-30x slower so)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(program.model_proto.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])

        def forward(inp: Input) -> Input:
            return torch.from_numpy(session.run(None, {"x": inp.detach().numpy()})[0])

        return Built(forward, {}, None, note="inference only: ONNX Runtime")

    return build


def _build_aoti(wl: Workload) -> Built:
    model = _Output(_layer(wl, ours=True)).eval()
    with torch.no_grad():
        program = torch.export.export(model, (wl.x,))
        with tempfile.TemporaryDirectory() as folder:
            path = torch._inductor.aoti_compile_and_package(program, package_path=f"{folder}/layer.pt2")
            runner = torch._inductor.aoti_load_package(path)

    def forward(inp: Input) -> Input:
        with torch.no_grad():
            out = runner(inp)
        return out[0] if isinstance(out, (list, tuple)) else out

    return Built(forward, {}, None, note="inference only: AOTInductor package")


register(Impl("onnxruntime", "ONNX Runtime, lstm_ext export", _build_onnxruntime(ours=True),
              _modules_unavailable("lstm_ext", "onnx", "onnxscript", "onnxruntime"), _dense_only,
              kinds=("lstm", "gru", "variant"), hidden=True, modes=INFERENCE))
register(Impl("onnxruntime_nn", "ONNX Runtime, nn export", _build_onnxruntime(ours=False),
              _modules_unavailable("onnx", "onnxscript", "onnxruntime"), _dense_only,
              kinds=("lstm", "gru"), hidden=True, modes=INFERENCE))
register(Impl("aoti", "AOTInductor package (lstm_ext)", _build_aoti, _modules_unavailable("lstm_ext"), _dense_only,
              kinds=("lstm", "gru", "variant"), hidden=True, modes=INFERENCE, compiles=True))
