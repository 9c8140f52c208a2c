"""torch.export and AOTInductor with lstm_ext's layers: a program exported from a model holding
every layer and variant option round-trips through ``torch.export.save`` / ``load`` in a fresh
process that imports only lstm_ext; the training graph exports and trains like eager; an
AOTInductor package runs like eager, on a whole sequence and as a streaming step in a loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import lstm_ext

INPUT, HIDDEN = 12, 16

MODELS = {
    "lstm": lambda: lstm_ext.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, batch_first=True),
    "lstm-proj": lambda: lstm_ext.LSTM(INPUT, HIDDEN, proj_size=8),
    "lstm-peephole-zoneout": lambda: lstm_ext.LSTM(INPUT, HIDDEN, peephole=True, zoneout=(0.2, 0.1)),
    "lstm-layer-norm": lambda: lstm_ext.LSTM(INPUT, HIDDEN, layer_norm=True),
    "lstm-lesson": lambda: lstm_ext.LSTM(INPUT, HIDDEN, use_gate="lesson"),
    "gru": lambda: lstm_ext.GRU(INPUT, HIDDEN, num_layers=2, bidirectional=True),
    "lstm-cell": lambda: lstm_ext.LSTMCell(INPUT, HIDDEN, peephole=True),
    "gru-cell": lambda: lstm_ext.GRUCell(INPUT, HIDDEN),
}


class _Flat(torch.nn.Module):
    """A layer's or a cell's results as a flat tuple of tensors."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        flat = []
        for item in out if isinstance(out, tuple) else (out,):
            flat.extend(item if isinstance(item, tuple) else (item,))
        return tuple(flat)


def _case(name, gen):
    torch.manual_seed(len(name))
    model = _Flat(MODELS[name]()).eval()
    cell = name.endswith("cell")
    x = torch.randn((5, INPUT) if cell else (3, 7, INPUT), generator=gen)
    return model, x


def _export(model, x, cell):
    batch = torch.export.Dim("batch", min=2)
    dims = {0: batch} if cell else {0: batch, 1: torch.export.Dim("time", min=2)}
    return torch.export.export(model, (x,), dynamic_shapes=({**dims},))


@pytest.mark.parametrize("layer", [lstm_ext.LSTM, lstm_ext.GRU])
def test_packed_input_is_refused_naming_the_alternative(layer):
    """torch.export cannot capture packed input (its batch sizes are data the layer reads, as
    nn.LSTM's does): a clear error naming the padded alternative, not a data-dependent guard."""

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer(INPUT, HIDDEN)

        def forward(self, x, lengths):
            return self.layer(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False))[1]

    x, lengths = torch.randn(5, 3, INPUT), torch.tensor([5, 3, 2])
    with pytest.raises(Exception, match="PackedSequence input cannot be captured by torch.export.*pad_packed_sequence"):
        torch.export.export(Packed().eval(), (x, lengths))


def test_save_load_round_trip_in_a_fresh_process(tmp_path, gen):
    """Every layer and option exported with a dynamic batch (and sequence length), saved, loaded
    in a process that imports lstm_ext and nothing of the tests, and run at another shape."""
    expected = {}
    for name in MODELS:
        model, x = _case(name, gen)
        program = _export(model, x, name.endswith("cell"))
        torch.export.save(program, tmp_path / f"{name}.pt2")
        other = torch.randn((4, *x.shape[1:]) if name.endswith("cell") else (2, 9, INPUT), generator=gen)
        with torch.no_grad():
            expected[name] = (other, model(other))
    torch.save(expected, tmp_path / "expected.pt")
    script = textwrap.dedent(f"""
        import torch, lstm_ext
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        for name, (x, want) in expected.items():
            program = torch.export.load({str(tmp_path)!r} + f"/{{name}}.pt2")
            with torch.no_grad():
                got = program.module()(x)
            assert len(got) == len(want), name
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, msg=lambda m, name=name: f"{{name}}: {{m}}")
        print("ok", len(expected))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"ok {len(MODELS)}"


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole-zoneout", "gru", "lstm-cell"])
def test_training_graph_exports_and_trains_like_eager(name, gen):
    """The exported training graph (train mode, grad on): the outputs and every parameter's
    gradient equal eager's. Zoneout's masks come from torch's generator, reseeded alike."""
    model, x = _case(name, gen)
    model.train()
    program = torch.export.export(model, (x,))
    exported = program.module()

    def run(module):
        module.zero_grad()
        torch.manual_seed(0)
        outputs = module(x)
        sum(o.square().sum() for o in outputs).backward()
        return list(outputs), {n: p.grad.clone() for n, p in module.named_parameters()}

    got, got_grads = run(exported)
    want, want_grads = run(model)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert got_grads.keys() == want_grads.keys()
    for n in want_grads:
        torch.testing.assert_close(got_grads[n], want_grads[n], msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.slow
def test_aoti_package_matches_eager(tmp_path, gen):
    """AOTInductor compiles the exported LSTM (no grad) into a package whose outputs equal eager's
    at another batch size and length."""
    model, x = _case("lstm", gen)
    with torch.no_grad():
        program = _export(model, x, False)
        path = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "lstm.pt2"))
        runner = torch._inductor.aoti_load_package(path)
        other = torch.randn(4, 5, INPUT, generator=gen)
        for g, w in zip(runner(other), model(other)):
            torch.testing.assert_close(g, w)


@pytest.mark.slow
def test_aoti_streaming_step_in_a_loop_equals_the_sequence(tmp_path, gen):
    """Streaming deployment: one step (T=1, state in and out) compiled with AOTInductor, called in
    a loop that carries the state, equals the whole sequence at once in eager."""

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm_ext.LSTM(INPUT, HIDDEN, num_layers=2)

        def forward(self, x, h, c):
            y, (h, c) = self.lstm(x, (h, c))
            return y, h, c

    torch.manual_seed(1)
    step = Step().eval()
    x = torch.randn(6, 2, INPUT, generator=gen)
    h0, c0 = torch.randn(2, 2, HIDDEN, generator=gen), torch.randn(2, 2, HIDDEN, generator=gen)
    with torch.no_grad():
        program = torch.export.export(step, (x[:1], h0, c0))
        runner = torch._inductor.aoti_load_package(
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "step.pt2")))
        h, c, outputs = h0, c0, []
        for t in range(x.shape[0]):
            y, h, c = runner(x[t:t + 1], h, c)
            outputs.append(y)
        expected, h_n, c_n = step(x, h0, c0)
    torch.testing.assert_close(torch.cat(outputs), expected)
    torch.testing.assert_close(h, h_n)
    torch.testing.assert_close(c, c_n)
