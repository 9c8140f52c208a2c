"""lstm_ext.LSTM / LSTMCell with the variant options: parity between backends, parameter
names, the variants' semantics, and the construction errors."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import FUSED_AVAILABLE, FUSED_SKIP_REASON
from tolerances import assert_close, assert_close_to_truth

requires_fused = pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)

OPTIONS = {
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "peephole": dict(peephole=True),
    "zoneout": dict(zoneout=0.3),
    "zoneout-pair": dict(zoneout=(0.2, 0.5)),
    "layer_norm": dict(layer_norm=True),
    "all": dict(recurrent_dropout=0.2, peephole=True, zoneout=(0.1, 0.4), layer_norm=True),
    "lesson": dict(use_gate="lesson"),
    "lesson-all": dict(use_gate="lesson", recurrent_dropout=0.2, peephole=True, zoneout=(0.1, 0.4)),
}
LAYOUTS = {
    "one-layer": dict(),
    "stacked-bidirectional": dict(num_layers=2, bidirectional=True),
    "batch-first-no-bias": dict(batch_first=True, bias=False),
}


def _twins(cls, args, options, dtype, **kwargs):
    """The same module with backend="fused" in ``dtype`` and backend="reference" in float64, same
    weights (layer-norm gains and biases moved off 1 and 0, so that a wrong use of them shows).
    The float64 reference is the truth a float32 kernel is held to, within float32's tolerance;
    masks drawn from one seed are the same in both dtypes."""
    torch.manual_seed(0)
    fused = cls(*args, **options, **kwargs, backend="fused", dtype=dtype)
    with torch.no_grad():
        for name, param in fused.named_parameters():
            if name.startswith("layer_norm_"):
                param.add_(torch.randn_like(param) * 0.3)
    ref = cls(*args, **options, **kwargs, backend="reference", dtype=torch.float64)
    ref.load_state_dict(fused.state_dict())
    return fused, ref


def _forward_backward(module, make_input, seed):
    """Output, states and every gradient, with the zoneout / dropout masks drawn from `seed`."""
    x = make_input().requires_grad_()
    torch.manual_seed(seed)
    out, state = module(x) if not isinstance(module, lstm_ext.LSTMCell) else (None, module(x))
    outs = [o for o in (out, *state) if o is not None]
    outs = [o.data if hasattr(o, "batch_sizes") else o for o in outs]
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum() for o in outs)
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, [x, *params])
    return [o.detach() for o in outs] + list(grads)


@requires_fused
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
def test_lstm_fused_matches_reference(option, layout, dtype, training):
    fused, ref = _twins(lstm_ext.LSTM, (4, 6), OPTIONS[option], dtype, **LAYOUTS[layout])
    fused.train(training)
    ref.train(training)
    g = torch.Generator().manual_seed(1)
    data = torch.randn(5, 3, 4, generator=g, dtype=dtype)
    expected = _forward_backward(ref, lambda: data.double(), 7)
    actuals = _forward_backward(fused, data.clone, 7)
    if dtype == torch.float64:
        for actual, want in zip(actuals, expected):
            assert_close(actual, want)
        return
    plain = ref.to(dtype)  # the plain-PyTorch reference in float32: what float32 itself reaches
    for actual, want, plain_out in zip(actuals, expected, _forward_backward(plain, data.clone, 7)):
        assert_close_to_truth(actual, want, plain_out)


@requires_fused
@pytest.mark.parametrize("option", ["peephole", "all"])
def test_lstm_packed_fused_matches_reference(option):
    fused, ref = _twins(lstm_ext.LSTM, (4, 6), OPTIONS[option], torch.float64, bidirectional=True)
    g = torch.Generator().manual_seed(1)
    data = torch.randn(6, 4, 4, generator=g, dtype=torch.float64)
    lengths = torch.tensor([6, 4, 4, 1])

    def packed():
        return pack_padded_sequence(data.clone().requires_grad_(), lengths)

    def run(module):
        x = packed()
        torch.manual_seed(3)
        out, (h, c) = module(x)
        loss = (out.data * torch.linspace(-1, 1, out.data.numel(), dtype=torch.float64).view(out.data.shape)).sum()
        loss = loss + h.sum() * 0.5 - c.sum() * 0.25
        return [out.data.detach(), h.detach(), c.detach(), *torch.autograd.grad(loss, list(module.parameters()))]

    for actual, expected in zip(run(fused), run(ref)):
        assert_close(actual, expected)


@requires_fused
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
def test_cell_fused_matches_reference(option, dtype):
    fused, ref = _twins(lstm_ext.LSTMCell, (4, 6), OPTIONS[option], dtype)
    data = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
    expected = _forward_backward(ref, lambda: data.double(), 5)
    for actual, want in zip(_forward_backward(fused, data.clone, 5), expected):
        assert_close(actual, want.to(dtype))


# ---- with every option off: exactly nn.LSTM -----------------------------------------------


def test_options_off_keep_nn_lstm_parameters():
    ours = lstm_ext.LSTM(3, 5, num_layers=2, bidirectional=True, recurrent_dropout=0.0, peephole=False, zoneout=0.0)
    theirs = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(ours) == repr(theirs).replace("LSTM(", "LSTM(", 1)


def test_peephole_parameter_names():
    lstm = lstm_ext.LSTM(3, 5, num_layers=2, bidirectional=True, peephole=True)
    plain = [n for n, _ in nn.LSTM(3, 5, num_layers=2, bidirectional=True).named_parameters()]
    extra = [n for n, _ in lstm.named_parameters() if n not in plain]
    assert extra == [f"peephole_{g}_l{k}{s}" for k in range(2) for s in ("", "_reverse") for g in "ifo"]
    assert all(getattr(lstm, n).shape == (5,) for n in extra)
    cell = lstm_ext.LSTMCell(3, 5, peephole=True)
    assert [n for n, _ in cell.named_parameters()][-3:] == ["peephole_i", "peephole_f", "peephole_o"]


def test_layer_norm_parameter_names_shapes_and_init():
    lstm = lstm_ext.LSTM(3, 5, num_layers=2, bidirectional=True, layer_norm=True)
    plain = [n for n, _ in nn.LSTM(3, 5, num_layers=2, bidirectional=True).named_parameters()]
    extra = {n: p for n, p in lstm.named_parameters() if n not in plain}
    expected = [f"layer_norm_{w}_{kind}_l{k}{s}" for k in range(2) for s in ("", "_reverse")
                for w in ("ih", "hh", "c") for kind in ("weight", "bias")]
    assert list(extra) == expected
    for name, param in extra.items():
        assert param.shape == ((5,) if "_c_" in name else (20,))
        assert torch.equal(param, torch.ones_like(param) if "_weight" in name else torch.zeros_like(param))
    cell = lstm_ext.LSTMCell(3, 5, layer_norm=True)
    assert [n for n, _ in cell.named_parameters()][-6:] == [
        f"layer_norm_{w}_{kind}" for w in ("ih", "hh", "c") for kind in ("weight", "bias")
    ]


def test_lesson_parameter_names_and_shapes():
    lstm = lstm_ext.LSTM(3, 5, num_layers=2, bidirectional=True, use_gate="lesson")
    plain = [n for n, _ in nn.LSTM(3, 5, num_layers=2, bidirectional=True).named_parameters()]
    extra = {n: p.shape for n, p in lstm.named_parameters() if n not in plain}
    assert extra == {f"use_gate_{kind}_l{k}{s}": (5, 5) if kind == "weight" else (5,)
                     for k in range(2) for s in ("", "_reverse") for kind in ("weight", "bias")}
    no_bias = lstm_ext.LSTM(3, 5, bias=False, use_gate="lesson")
    assert [n for n, _ in no_bias.named_parameters()] == ["weight_ih_l0", "weight_hh_l0", "use_gate_weight_l0"]
    cell = lstm_ext.LSTMCell(3, 5, use_gate="lesson")
    assert [n for n, _ in cell.named_parameters()][-2:] == ["use_gate_weight", "use_gate_bias"]


def test_standard_use_gate_is_the_default_and_changes_nothing():
    ours = lstm_ext.LSTM(3, 5, use_gate="standard")
    assert list(ours.state_dict()) == list(nn.LSTM(3, 5).state_dict())


def test_state_dict_and_pickle_round_trip():
    lstm = lstm_ext.LSTM(3, 5, peephole=True, zoneout=(0.1, 0.2), recurrent_dropout=0.3, layer_norm=True).eval()
    copy = pickle.loads(pickle.dumps(lstm))
    x = torch.randn(4, 2, 3)
    assert_close(copy(x)[0], lstm(x)[0])
    assert copy.variant_options == lstm.variant_options
    for text in ("peephole=True", "zoneout=(0.1, 0.2)", "recurrent_dropout=0.3", "layer_norm=True"):
        assert text in repr(lstm)


@pytest.mark.parametrize("cls, args", [(lstm_ext.LSTM, (3, 5, 2)), (lstm_ext.LSTMCell, (3, 5))])
def test_modules_pickled_before_the_variants_still_run(cls, args):
    module = cls(*args).eval()
    state = dict(module.__dict__)
    del state["variant_options"], state["_variant_names"]
    old = cls.__new__(cls)
    old.__setstate__(state)
    x = torch.randn(4, 2, 3) if cls is lstm_ext.LSTM else torch.randn(2, 3)
    assert_close(old(x), module(x))


# ---- the semantics of each variant ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_zoneout_masks_come_from_torch_generator(backend):
    if backend == "fused" and not FUSED_AVAILABLE:
        pytest.skip(FUSED_SKIP_REASON)
    lstm = lstm_ext.LSTM(3, 8, zoneout=0.5, backend=backend)
    x = torch.randn(6, 2, 3)
    torch.manual_seed(11)
    a = lstm(x)[0]
    torch.manual_seed(11)
    b = lstm(x)[0]
    c = lstm(x)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zoneout_one_in_training_keeps_the_initial_state():
    lstm = lstm_ext.LSTM(3, 4, zoneout=1.0)
    h0, c0 = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    out, (h, c) = lstm(torch.randn(5, 2, 3), (h0, c0))
    assert torch.equal(out, h0.expand(5, 2, 4)) and torch.equal(h, h0) and torch.equal(c, c0)


def test_zoneout_eval_is_the_expectation():
    lstm = lstm_ext.LSTM(3, 4, zoneout=(0.25, 0.75)).eval()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    lstm.double()
    out, (h, c) = lstm(x)
    expected = lstm_ext.reference.variant_lstm_layer(
        x, torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64),
        lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, None, False,
        zoneout_h=torch.full((5, 2, 4), 0.25, dtype=torch.float64), zoneout_c=torch.full((5, 2, 4), 0.75, dtype=torch.float64),
    )
    assert_close((out, h[0], c[0]), expected)
    assert torch.equal(lstm(x)[0], out)  # deterministic


def test_recurrent_dropout_is_one_dropconnect_mask_per_call_in_training_only():
    lstm = lstm_ext.LSTM(3, 4, recurrent_dropout=0.5, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.manual_seed(5)
    out = lstm(x)[0]
    torch.manual_seed(5)
    dropped = lstm_ext.reference.drop_connect(lstm.weight_hh_l0, 0.5)  # the mask the layer drew
    assert (dropped == 0).any() and (dropped != 0).any()
    kept = dropped != 0
    assert_close(dropped[kept], lstm.weight_hh_l0[kept] * 2)  # the kept weights scaled by 1 / (1 - p)
    plain = nn.LSTM(3, 4, dtype=torch.float64)
    plain.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.copy_(dropped)
    assert_close(out, plain(x)[0])
    lstm.eval()
    plain.load_state_dict(lstm.state_dict())
    assert_close(lstm(x)[0], plain(x)[0])


def test_peephole_zero_is_the_plain_lstm():
    lstm = lstm_ext.LSTM(3, 4, peephole=True, dtype=torch.float64)
    with torch.no_grad():
        for name in ("peephole_i_l0", "peephole_f_l0", "peephole_o_l0"):
            getattr(lstm, name).zero_()
    plain = nn.LSTM(3, 4, dtype=torch.float64)
    plain.load_state_dict({k: v for k, v in lstm.state_dict().items() if not k.startswith("peephole")})
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert_close(lstm(x)[0], plain(x)[0])


def test_variants_in_bfloat16_fall_back_to_the_reference_or_refuse():
    x = torch.randn(3, 2, 4, dtype=torch.bfloat16)
    auto = lstm_ext.LSTM(4, 5, peephole=True, dtype=torch.bfloat16)
    assert auto(x)[0].dtype == torch.bfloat16
    fused = lstm_ext.LSTM(4, 5, peephole=True, dtype=torch.bfloat16, backend="fused")
    with pytest.raises(RuntimeError, match="float32 and float64"):
        fused(x)


# ---- bad options ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [lstm_ext.LSTM, lstm_ext.LSTMCell])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(zoneout=-0.1), ValueError, r"zoneout must be a probability in \[0, 1\], got -0.1"),
        (dict(zoneout=1.5), ValueError, r"zoneout must be a probability in \[0, 1\], got 1.5"),
        (dict(zoneout=(0.1, 2.0)), ValueError, r"zoneout must be a probability"),
        (dict(zoneout=(0.1,)), ValueError, r"zoneout must be one probability or a pair"),
        (dict(zoneout="0.1"), TypeError, r"zoneout must be a number"),
        (dict(zoneout=True), TypeError, r"zoneout must be a number"),
        (dict(recurrent_dropout=1.1), ValueError, r"recurrent_dropout must be a probability"),
        (dict(recurrent_dropout=None), TypeError, r"recurrent_dropout must be a number"),
        (dict(peephole=1), TypeError, r"peephole must be True or False"),
        (dict(layer_norm="yes"), TypeError, r"layer_norm must be True or False"),
        (dict(use_gate="lessons"), ValueError, r"use_gate must be 'standard' or 'lesson', got 'lessons'"),
        (dict(use_gate=None), TypeError, r"use_gate must be a str"),
        (dict(use_gate="lesson", layer_norm=True), ValueError, r"use_gate='lesson' cannot be combined with layer_norm"),
    ],
)
def test_bad_option_values(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(3, 4, **kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(peephole=True), dict(zoneout=0.1), dict(layer_norm=True), dict(use_gate="lesson")]
)
def test_proj_size_is_refused_with_a_reason(kwargs):
    with pytest.raises(ValueError, match="cannot be combined with proj_size"):
        lstm_ext.LSTM(3, 4, proj_size=2, **kwargs)


def test_recurrent_dropout_works_with_proj_size():
    lstm = lstm_ext.LSTM(3, 4, proj_size=2, recurrent_dropout=0.5)
    out, (h, c) = lstm(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 2) and c.shape == (1, 2, 4)
