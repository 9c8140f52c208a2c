"""ONNX export of lstm_ext's layers with both of torch's exporters (``dynamo=True`` and the
TorchScript one), run in ONNX Runtime: the plain LSTM and GRU, their cells and peephole
connections become ONNX's own LSTM and GRU operators (one node per layer-direction, never a loop);
``proj_size``, zoneout, layer norm and the lesson's use gate become a ``Loop`` of standard
operators. Each is within 1e-5 of eager at several sequence lengths and batch sizes fed to one
exported model. What has no ONNX form is refused with an error that names it.

The translations are registered by importing lstm_ext (``lstm_ext/_onnx.py``); the tests pass
nothing to the exporters that a user would not.
"""

from __future__ import annotations

import io
import logging
import warnings

import pytest
import torch

import lstm_ext

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

EXPORTERS = {"dynamo": True, "torchscript": False}
# (T, B) fed to one exported model: the shape it was traced with first.
SHAPES = ((7, 3), (1, 1), (12, 5))
INPUT = 16
HIDDEN = 24


@pytest.fixture(autouse=True)
def _quiet_exporters():
    # The exporters log their progress and warn about TorchScript's deprecation at every call.
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


class _Sequence(torch.nn.Module):
    """A layer's output and final states, as a flat tuple; the initial states optional."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, h0=None, c0=None):
        hx = h0 if c0 is None else (h0, c0)
        output, final = self.layer(x, hx)
        return (output, *final) if isinstance(final, tuple) else (output, final)


class _Step(torch.nn.Module):
    """A cell's new states, as a flat tuple."""

    def __init__(self, cell: torch.nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x, hx, cx=None):
        out = self.cell(x, hx if cx is None else (hx, cx))
        return tuple(out) if isinstance(out, tuple) else (out,)


def _export(module, args, dynamo, *, dynamic, names):
    """The module exported to ONNX bytes; the inputs are named ``names`` (the forward's argument
    names), with dynamic dims {input index: {dim: name}}."""
    buffer = io.BytesIO() if not dynamo else None
    if dynamo:
        dims = {names[i]: {d: torch.export.Dim(n, min=1) for d, n in dynamic.get(i, {}).items()} or None
                for i in range(len(args))}
        program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dims, input_names=names)
        return program.model_proto.SerializeToString()
    axes = {names[i]: dims for i, dims in dynamic.items()}
    torch.onnx.export(module, args, buffer, dynamo=False, input_names=names, dynamic_axes=axes)
    return buffer.getvalue()


# What no native node may sit beside: a loop where ONNX's LSTM / GRU would do, or the reverse.
_ONE_FORM = {"LSTM": {"Loop", "Scan"}, "GRU": {"Loop", "Scan"}, "Loop": {"LSTM", "GRU"}}


def _assert_runs_like_eager(model_bytes, module, inputs_per_shape, expected_op):
    """ONNX Runtime against eager at every input set; the graph holds ``expected_op`` (ONNX's
    LSTM or GRU, or a Loop) and not the other form."""
    graph = onnx.load_from_string(model_bytes).graph
    op_types = {node.op_type for node in graph.node}
    assert expected_op in op_types and not op_types & _ONE_FORM[expected_op], op_types
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for inputs in inputs_per_shape:
        got = session.run(None, dict(zip(names, (t.numpy() for t in inputs))))
        with torch.no_grad():
            expected = module(*inputs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-5, atol=1e-5)


def _seeded(seed, cls, *args, **options):
    """``cls(*args, **options)`` built after ``torch.manual_seed(seed)``, and a generator seeded
    alike for its inputs. Peephole weights and layer norm's gains and biases start at 0 and 1:
    they are drawn at random instead, so that a weight read in the wrong place shows."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = cls(*args, **options)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "peephole" in name or "layer_norm" in name:
                p.normal_(0.5 if "weight" in name else 0.0, 0.5, generator=gen)
    return layer, gen


LAYERS = {
    "lstm-2-layers": (lstm_ext.LSTM, dict(num_layers=2), "LSTM"),
    "lstm-bidirectional-batch-first": (lstm_ext.LSTM, dict(bidirectional=True, batch_first=True), "LSTM"),
    "lstm-no-bias": (lstm_ext.LSTM, dict(bias=False), "LSTM"),
    "lstm-peephole": (lstm_ext.LSTM, dict(peephole=True, num_layers=2, bidirectional=True), "LSTM"),
    "lstm-recurrent-dropout-eval": (lstm_ext.LSTM, dict(recurrent_dropout=0.3), "LSTM"),
    "gru-2-layers": (lstm_ext.GRU, dict(num_layers=2), "GRU"),
    "gru-bidirectional-batch-first": (lstm_ext.GRU, dict(bidirectional=True, batch_first=True), "GRU"),
    "gru-no-bias": (lstm_ext.GRU, dict(bias=False), "GRU"),
    # no ONNX operator holds these: a Loop of standard operators
    "lstm-proj-size": (lstm_ext.LSTM, dict(proj_size=8, num_layers=2), "Loop"),
    "lstm-proj-size-bidirectional-batch-first": (lstm_ext.LSTM, dict(proj_size=8, bidirectional=True,
                                                                      batch_first=True), "Loop"),
    "lstm-zoneout-eval": (lstm_ext.LSTM, dict(zoneout=(0.3, 0.1), bidirectional=True), "Loop"),
    "lstm-layer-norm": (lstm_ext.LSTM, dict(layer_norm=True, num_layers=2, bidirectional=True), "Loop"),
    "lstm-lesson": (lstm_ext.LSTM, dict(use_gate="lesson", bidirectional=True), "Loop"),
    "lstm-lesson-no-bias": (lstm_ext.LSTM, dict(use_gate="lesson", bias=False), "Loop"),
    "lstm-lesson-peephole-zoneout-dropout": (lstm_ext.LSTM, dict(peephole=True, zoneout=0.2, use_gate="lesson",
                                                                 recurrent_dropout=0.3, num_layers=2, batch_first=True),
                                             "Loop"),
    "lstm-layer-norm-peephole-zoneout": (lstm_ext.LSTM, dict(layer_norm=True, peephole=True, zoneout=0.25,
                                                             bidirectional=True), "Loop"),
}


def _sequence_inputs(layer, T, B, gen, with_states):
    batch_first = layer.batch_first
    x = torch.randn((B, T, INPUT) if batch_first else (T, B, INPUT), generator=gen)
    if not with_states:
        return (x,)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    widths = (getattr(layer, "proj_size", 0) or HIDDEN, HIDDEN)[: 2 if isinstance(layer, lstm_ext.LSTM) else 1]
    return (x, *(torch.randn(rows, B, width, generator=gen) for width in widths))


@pytest.mark.parametrize("with_states", [False, True], ids=["zero-states", "initial-states"])
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("case", LAYERS)
def test_layer_exports_to_native_operator(case, exporter, with_states):
    """Every layer option with an ONNX operator, both exporters, with and without initial states;
    one exported model fed three sequence lengths and batch sizes."""
    cls, options, expected_op = LAYERS[case]
    layer, gen = _seeded(len(case), cls, INPUT, HIDDEN, **options)
    module = _Sequence(layer).eval()  # the wrapper too: an exporter restores its mode recursively
    inputs = [_sequence_inputs(layer, T, B, gen, with_states) for T, B in SHAPES]
    time, batch = (1, 0) if layer.batch_first else (0, 1)
    dynamic = {0: {time: "T", batch: "B"}}
    for i in range(1, len(inputs[0])):
        dynamic[i] = {1: "B"}
    names = ["x", "h0", "c0"][: len(inputs[0])]  # _Sequence.forward's
    model = _export(module, inputs[0], EXPORTERS[exporter], dynamic=dynamic, names=names)
    _assert_runs_like_eager(model, module, inputs, expected_op)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("options", [dict(proj_size=8, bidirectional=True), dict(layer_norm=True, zoneout=0.2)],
                         ids=["proj-size", "layer-norm-zoneout"])
def test_loop_exports_float64(options, exporter):
    """The loops are standard operators, which ONNX Runtime runs in float64 too (its LSTM and GRU
    kernels are float32 only)."""
    layer, gen = _seeded(9, lstm_ext.LSTM, INPUT, HIDDEN, dtype=torch.float64, **options)
    module = _Sequence(layer).eval()
    inputs = [(torch.randn(T, B, INPUT, generator=gen, dtype=torch.float64),) for T, B in SHAPES]
    model = _export(module, inputs[0], EXPORTERS[exporter], dynamic={0: {0: "T", 1: "B"}}, names=["x"])
    _assert_runs_like_eager(model, module, inputs, "Loop")


@pytest.mark.parametrize("options", [{}, dict(proj_size=8, bidirectional=True), dict(layer_norm=True, zoneout=0.2),
                                     dict(use_gate="lesson", peephole=True)],
                         ids=["lstm", "proj-size", "layer-norm-zoneout", "lesson-peephole"])
def test_oldest_opset_the_translations_support(options):
    """The TorchScript exporter at opset 14 (``_onnx.MIN_OPSET``: Squeeze's axes as an input,
    LSTM's layout attribute), the native node and the loop alike."""
    from lstm_ext import _onnx

    layer, gen = _seeded(6, lstm_ext.LSTM, INPUT, HIDDEN, **options)
    module = _Sequence(layer).eval()
    inputs = [(torch.randn(T, B, INPUT, generator=gen),) for T, B in SHAPES]
    buffer = io.BytesIO()
    torch.onnx.export(module, inputs[0], buffer, dynamo=False, opset_version=_onnx.MIN_OPSET, input_names=["x"],
                      dynamic_axes={"x": {0: "T", 1: "B"}})
    assert onnx.load_from_string(buffer.getvalue()).opset_import[0].version == _onnx.MIN_OPSET
    _assert_runs_like_eager(buffer.getvalue(), module, inputs, "LSTM" if not options else "Loop")


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("cls,options,expected_op", [(lstm_ext.LSTM, {}, "LSTM"), (lstm_ext.GRU, {}, "GRU"),
                                                     (lstm_ext.LSTM, dict(layer_norm=True), "Loop")],
                         ids=["lstm", "gru", "lstm-layer-norm"])
def test_unbatched_input_exports(cls, options, expected_op, exporter):
    """Unbatched input ``[T, I]``, which nn's layers take too: the exported model keeps its shapes."""
    layer, gen = _seeded(8, cls, INPUT, HIDDEN, **options)
    module = _Sequence(layer).eval()
    inputs = [(torch.randn(T, INPUT, generator=gen),) for T, _ in SHAPES]
    model = _export(module, inputs[0], EXPORTERS[exporter], dynamic={0: {0: "T"}}, names=["x"])
    _assert_runs_like_eager(model, module, inputs, expected_op)


def test_layer_norm_on_the_projection_op_exports():
    """With a big enough product the layer-normalized LSTM projects its input on
    ``lstm_ext::linear`` (the dynamo exporter's symbolic shapes always take it); that op has an
    ONNX form too. The TorchScript exporter traces this shape with concrete sizes."""
    from lstm_ext.lstm_variants.ops import NATIVE_LINEAR_MAX_FLOPS

    T, B, size = 64, 8, 256
    assert 2 * T * B * 4 * size * size >= NATIVE_LINEAR_MAX_FLOPS  # the op, not F.linear
    layer, gen = _seeded(4, lstm_ext.LSTM, size, size, layer_norm=True)
    module = _Sequence(layer).eval()
    inputs = [(torch.randn(T, B, size, generator=gen),), (torch.randn(3, 2, size, generator=gen),)]
    model = _export(module, inputs[0], False, dynamic={0: {0: "T", 1: "B"}}, names=["x"])
    _assert_runs_like_eager(model, module, inputs, "Loop")


CELLS = {
    "lstm-cell": (lstm_ext.LSTMCell, {}, "LSTM"),
    "lstm-cell-peephole": (lstm_ext.LSTMCell, dict(peephole=True), "LSTM"),
    "gru-cell": (lstm_ext.GRUCell, {}, "GRU"),
    "lstm-cell-zoneout-eval": (lstm_ext.LSTMCell, dict(zoneout=0.3), "Loop"),
    "lstm-cell-layer-norm": (lstm_ext.LSTMCell, dict(layer_norm=True), "Loop"),
    "lstm-cell-lesson-peephole": (lstm_ext.LSTMCell, dict(use_gate="lesson", peephole=True), "Loop"),
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("case", CELLS)
def test_cell_exports(case, exporter):
    """A cell is a one-step ONNX LSTM / GRU node, or a one-step Loop; the batch is dynamic."""
    cls, options, expected_op = CELLS[case]
    cell, gen = _seeded(3, cls, INPUT, HIDDEN, **options)
    module = _Step(cell).eval()
    count = 2 if cls is lstm_ext.LSTMCell else 1
    inputs = [(torch.randn(B, INPUT, generator=gen), *(torch.randn(B, HIDDEN, generator=gen) for _ in range(count)))
              for _, B in SHAPES]
    names = ["x", "hx", "cx"][: 1 + count]  # _Step.forward's
    model = _export(module, inputs[0], EXPORTERS[exporter], dynamic={i: {0: "B"} for i in range(1 + count)},
                    names=names)
    _assert_runs_like_eager(model, module, inputs, expected_op)


@pytest.mark.parametrize("options", [{}, dict(layer_norm=True, zoneout=0.2)], ids=["lstm", "layer-norm-zoneout"])
def test_streaming_step_in_a_loop_equals_the_sequence(options):
    """Streaming deployment: one step exported with its state in and out, run in ONNX Runtime in
    a loop that carries the state, equals the whole sequence run at once in eager (the native
    LSTM node, and a one-iteration Loop)."""
    layer, gen = _seeded(5, lstm_ext.LSTM, INPUT, HIDDEN, num_layers=2, **options)
    module = _Sequence(layer).eval()
    x = torch.randn(10, 2, INPUT, generator=gen)
    h0, c0 = (torch.randn(2, 2, HIDDEN, generator=gen) for _ in range(2))
    step_args = (x[:1], h0, c0)
    model = _export(module, step_args, True, dynamic={}, names=["x", "h0", "c0"])
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    h, c = h0.numpy(), c0.numpy()
    outputs = []
    for t in range(x.shape[0]):
        y, h, c = session.run(None, {"x": x[t:t + 1].numpy(), "h0": h, "c0": c})
        outputs.append(torch.from_numpy(y))
    with torch.no_grad():
        expected, h_n, c_n = module(x, h0, c0)
    torch.testing.assert_close(torch.cat(outputs), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(h), h_n, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(c), c_n, rtol=1e-5, atol=1e-5)


REFUSED = {
    "zoneout-training": (dict(zoneout=0.1), True, "training mode"),
    "recurrent-dropout-training": (dict(recurrent_dropout=0.2), True, "training mode"),
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("case", REFUSED)
def test_unexportable_option_is_refused_by_name(case, exporter):
    """An option without an ONNX form fails the export with an error that names it (the dynamo
    exporter wraps it in its own error, whose text carries ours). The TorchScript exporter runs
    the model in eval mode unless told otherwise, so training is asked for explicitly."""
    options, training, name = REFUSED[case]
    layer = lstm_ext.LSTM(INPUT, HIDDEN, **options).train(training)
    x = torch.randn(5, 2, INPUT)
    kwargs = {"training": torch.onnx.TrainingMode.TRAINING} if training and not EXPORTERS[exporter] else {}
    with pytest.raises(RuntimeError, match=f"lstm_ext: .*{name}.* cannot be exported to ONNX") as error:
        torch.onnx.export(_Sequence(layer), (x,), io.BytesIO() if not EXPORTERS[exporter] else None,
                          dynamo=EXPORTERS[exporter], **kwargs)
    assert "lstm_ext:" in str(error.value)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_packed_input_is_refused_naming_the_alternative(exporter):
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = lstm_ext.LSTM(INPUT, HIDDEN)

        def forward(self, x, lengths):
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
            return self.layer(packed)[1][0]

    x, lengths = torch.randn(5, 2, INPUT), torch.tensor([5, 3])
    with pytest.raises(Exception, match="PackedSequence input cannot be exported to ONNX.*pad_packed_sequence"):
        torch.onnx.export(Packed().eval(), (x, lengths), io.BytesIO() if not EXPORTERS[exporter] else None,
                          dynamo=EXPORTERS[exporter])


def test_first_dynamo_export_in_a_fresh_process():
    """In a process whose first export is ``dynamo=True`` (the exporter builds its registry before
    it traces the model, so only the import hook can have registered the translations), a model
    that imports lstm_ext and nothing else exports, with the native operator."""
    import subprocess
    import sys

    code = (
        "import logging, warnings, torch, lstm_ext\n"
        "logging.disable(logging.WARNING); warnings.simplefilter('ignore')\n"
        "program = torch.onnx.export(lstm_ext.GRU(4, 6), (torch.randn(3, 2, 4),), dynamo=True)\n"
        "print(sorted({n.op_type for n in program.model_proto.graph.node} & {'GRU', 'Loop', 'Scan'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['GRU']"


def test_translations_take_their_ops_arguments():
    """Every op the exported graphs can hold has a translation, which takes the op's arguments by
    the schema's names and in its order (the exporters pass them so)."""
    import inspect

    from lstm_ext import _onnx

    assert set(_onnx._TRANSLATIONS) == {f"lstm_ext::{name}" for name in (
        "lstm_layer", "lstm_cell", "gru_layer", "gru_cell", "lstm_variant_layer", "linear", "bernoulli_mask")}
    for name, translate in _onnx._TRANSLATIONS.items():
        parameters = tuple(inspect.signature(translate).parameters)[1:]  # after the builder
        assert parameters == _onnx.signature(name)[0], name


def test_importing_lstm_ext_does_not_import_onnx():
    """The onnx packages are optional: importing lstm_ext loads none of them (the dynamo
    translations are registered when the exporter imports onnxscript)."""
    import subprocess
    import sys

    code = "import sys, lstm_ext; print(sorted(m for m in ('onnx', 'onnxscript', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
