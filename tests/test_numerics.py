"""NaN, Inf and huge inputs give what nn.LSTM gives: NaN where it has NaN, saturation where it saturates."""

import pytest
import torch

import lstm_ext
from op_calls import run_under_capability
from tolerances import assert_close

BACKENDS = ["fused", "reference"] if lstm_ext._library.LOAD_ERROR is None else ["reference"]


def _pair(dtype, backend, seed=0):
    torch.manual_seed(seed)
    theirs = torch.nn.LSTM(4, 6, dtype=dtype)
    ours = lstm_ext.LSTM(4, 6, dtype=dtype, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _poisoned_input(kind, dtype):
    x = torch.randn(5, 3, 4, dtype=dtype)
    if kind == "nan":
        x[2, 1, 0] = float("nan")
    elif kind == "inf":
        x[1, 0, 2] = float("inf")
        x[3, 2, 1] = float("-inf")
    elif kind == "huge":
        x[:, 0] = 1e4
        x[:, 2] = -1e4
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["nan", "inf", "huge"])
def test_special_values_match_nn_lstm(kind, dtype, backend):
    theirs, ours = _pair(dtype, backend)
    x = _poisoned_input(kind, dtype)
    x_theirs, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_t, (h_t, c_t) = theirs(x_theirs)
    out_o, (h_o, c_o) = ours(x_ours)
    for got, want in [(out_o, out_t), (h_o, h_t), (c_o, c_t)]:
        assert torch.equal(got.isnan(), want.isnan())
        assert_close(got, want, equal_nan=True)
    if kind == "nan":
        assert out_o.isnan().any()
    if kind == "huge":
        assert not out_o.isnan().any()  # saturates, like nn.LSTM
    (out_t.sum() + c_t.sum()).backward()
    (out_o.sum() + c_o.sum()).backward()
    assert torch.equal(x_ours.grad.isnan(), x_theirs.grad.isnan())
    assert_close(x_ours.grad, x_theirs.grad, equal_nan=True)
    for (name, p_t), p_o in zip(theirs.named_parameters(), ours.parameters()):
        assert torch.equal(p_o.grad.isnan(), p_t.grad.isnan()), name
        assert_close(p_o.grad, p_t.grad, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_stays_in_its_own_sequence(backend):
    """A NaN in one sequence of the batch never reaches another sequence's output."""
    _, ours = _pair(torch.float32, backend)
    x = _poisoned_input("nan", torch.float32)
    out, (h, c) = ours(x)
    assert out[2:, 1].isnan().all() and not out[:2, 1].isnan().any()
    assert not out[:, [0, 2]].isnan().any()


# ---- more places for special values: states, deep/bidirectional/projected layers, packed input ----


def _special(kind: str) -> float:
    return {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf"), "+1e4": 1e4, "-1e4": -1e4}[kind]


def _assert_same_specials(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """NaN exactly where nn.LSTM has NaN, ±Inf exactly where it has ±Inf, the rest close."""
    assert torch.equal(got.isnan(), want.isnan()), what
    assert torch.equal(got.isposinf(), want.isposinf()), what
    assert torch.equal(got.isneginf(), want.isneginf()), what
    assert_close(got, want, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["nan", "+inf", "-inf", "+1e4", "-1e4"])
@pytest.mark.parametrize("where", ["input", "h0", "c0", "packed-input"])
def test_special_values_in_a_deep_bidirectional_projected_lstm(where, kind, dtype, backend):
    """Two layers, both directions, a projection: the special value crosses layers and directions
    the way it does in nn.LSTM, in the outputs and in every gradient."""
    torch.manual_seed(0)
    kwargs = dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=True, proj_size=3, dtype=dtype)
    theirs = torch.nn.LSTM(**kwargs)
    ours = lstm_ext.LSTM(**kwargs, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 3, 4, dtype=dtype)
    h0, c0 = torch.randn(4, 3, 3, dtype=dtype), torch.randn(4, 3, 6, dtype=dtype)
    value = _special(kind)
    if where in ("input", "packed-input"):
        x[2, 1, 0] = value
    elif where == "h0":
        h0[1, 2, 1] = value
    else:
        c0[2, 0, 3] = value

    def run(model):
        xs, hs, cs = (t.clone().requires_grad_() for t in (x, h0, c0))
        inp = xs
        if where == "packed-input":
            inp = torch.nn.utils.rnn.pack_padded_sequence(xs, torch.tensor([5, 3, 2]), enforce_sorted=False)
        out, (h, c) = model(inp, (hs, cs))
        out = out.data if where == "packed-input" else out
        # a loss that does not itself turn every Inf into NaN (Inf - Inf): weights in (0, 1)
        g = torch.Generator().manual_seed(1)
        loss = sum((t * torch.rand(t.shape, generator=g, dtype=dtype)).sum() for t in (out, h, c))
        loss.backward()
        return [out, h, c, xs.grad, hs.grad, cs.grad, *[p.grad for p in model.parameters()]]

    got, want = run(ours), run(theirs)
    names = ["output", "h_n", "c_n", "grad input", "grad h0", "grad c0", *[n for n, _ in theirs.named_parameters()]]
    for g, w, name in zip(got, want, names):
        _assert_same_specials(g, w, name)
    if kind == "nan":
        assert got[0].isnan().any()
    elif kind.endswith("1e4"):
        assert not any(t.isnan().any() for t in got)  # saturation, no NaN


# ---- the vectorized activations against torch.sigmoid / torch.tanh, in ulps ----------------------
#
# lstm_layer returns the activated gates. With T = 1, zero h0/c0, no bias and w_ih made of four
# identity blocks, the pre-activations are the input itself (x * 1 plus exact zeros), so the gates
# are sigmoid(x) in blocks i, f, o and tanh(x) in block g, computed by the kernel of the running
# CPU capability (ATEN_CPU_CAPABILITY, hence one process per capability). Values: a strided sweep
# over every bit pattern (float32: stride 4093, ~1.05M values; float64: ~1M patterns spread over
# all exponents), all subnormal edges, windows around the points where exp over/underflows and
# tanh saturates; non-finite values separately (a NaN or Inf would turn a row of the identity GEMM
# into NaN, so those go one value per row with input_size 1).

# Stated bounds, in ulps, for every capability and dtype: against torch.sigmoid / torch.tanh of the
# same capability, and (float32) against the correctly rounded result wherever that is a normal
# number. Measured (docs/testing.md, "Hardening"): float32 on AVX2/AVX-512, whose exp and tanh are
# runtime/cpu/float_activations.h's, 2 for sigmoid and 1 for tanh against torch and against the
# exact result; float64 (SLEEF, as torch) 0 for sigmoid and 1 for tanh; DEFAULT 2 for tanh (the C
# library's tanhf). Subnormal results are not bounded: for x in (-103.97, -88.72) exp(-x) overflows
# and sigmoid gives 0 where the exact value is subnormal, exactly as torch.sigmoid does.
ULP_BOUNDS = {"sigmoid": 2, "tanh": 2}

ULP_SCRIPT = r"""
import json, sys
import numpy as np
import torch
import lstm_ext  # noqa: F401  (registers the ops)

ops = torch.ops.lstm_ext
H = 64  # four AVX-512 float vectors a block: the vector body, no tail

def ulp_distance(a, b):
    # IEEE bit patterns -> integers in the order of the values (+0 and -0 both 0); the distance
    # of two values is the difference of their integers. NaN and NaN: 0; NaN and a number: inf.
    signed = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = a.view(signed).astype(np.int64), b.view(signed).astype(np.int64)
    top = np.int64(np.iinfo(signed).max)
    ma, mb = ia & top, ib & top
    oa, ob = np.where(ia < 0, -ma, ma), np.where(ib < 0, -mb, mb)
    same_sign = (oa >= 0) == (ob >= 0)
    d = np.where(same_sign, np.abs(np.where(same_sign, oa - ob, 0)).astype(np.float64),
                 ma.astype(np.float64) + mb.astype(np.float64))  # opposite signs: no int64 overflow
    d[np.isnan(a) & np.isnan(b)] = 0
    d[np.isnan(a) ^ np.isnan(b)] = np.inf
    return d

def values(dtype):
    if dtype == torch.float32:
        u, bits, width = np.uint32, 32, 1 << 32
        sweep = (np.arange(0, width, 4093, dtype=np.uint64)).astype(u)
        edges = [0x00000001, 0x007FFFFF, 0x00800000, 0x3F800000, 0x7F7FFFFF]
        window = 4096
    else:
        u, bits, width = np.uint64, 64, None
        sweep = (np.arange(1 << 20, dtype=np.uint64) * np.uint64(0x1000_0000_0FFF)).astype(u)  # wraps mod 2^64
        edges = [0x1, 0x000FFFFFFFFFFFFF, 0x0010000000000000, 0x3FF0000000000000, 0x7FEFFFFFFFFFFFFF]
        window = 4096
    npd = np.float32 if dtype == torch.float32 else np.float64
    pts = [sweep]
    for e in edges:
        lo = max(e - window, 0)
        pts.append(np.arange(lo, e + window, dtype=np.uint64).astype(u))
    for x in (88.72, 87.33, 103.97, 9.01, 1.0, 0.5, 1e-4, 709.78, 708.4, 744.4, 19.06):
        b = np.array([x], dtype=npd).view(u)[0]
        pts.append(np.arange(int(b) - window, int(b) + window, dtype=np.uint64).astype(u))
    allbits = np.concatenate(pts)
    allbits = np.concatenate([allbits, allbits | (u(1) << u(bits - 1))])  # and the negatives
    v = allbits.view(npd)
    return v[np.isfinite(v)]

def gates_of(x, I):
    # x [N, I] -> activated gates [N, 4H] (I = H: identity blocks; I = 1: one value per row)
    N = x.shape[0]
    dtype = x.dtype
    w_ih = torch.cat([torch.eye(H, dtype=dtype)] * 4) if I == H else torch.ones(4 * H, 1, dtype=dtype)
    zeros = torch.zeros(N, H, dtype=dtype)
    out = ops.lstm_layer(x.unsqueeze(0), zeros, zeros, w_ih, torch.zeros(4 * H, H, dtype=dtype),
                         None, None, None, None, False)
    return out[3]

result = {"capability": torch.backends.cpu.get_cpu_capability()}
for dtype in (torch.float32, torch.float64):
    name = str(dtype).replace("torch.", "")
    v = values(dtype)
    v = np.concatenate([v, np.zeros((-len(v)) % H, dtype=v.dtype)])
    x = torch.from_numpy(v).view(-1, H)
    g = gates_of(x, H)
    i, f, gg, o = g.split(H, dim=1)
    assert torch.equal(i, f) and torch.equal(i, o)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0], dtype=dtype)
    gs = gates_of(specials.view(-1, 1), 1)
    got = {"sigmoid": (i, gs[:, :H]), "tanh": (gg, gs[:, 2 * H:3 * H])}
    for fn in ("sigmoid", "tanh"):
        want = getattr(torch, fn)(x)
        want_s = getattr(torch, fn)(specials).view(-1, 1).expand(-1, H)
        ours, ours_s = got[fn]
        d = ulp_distance(ours.numpy().ravel(), want.numpy().ravel())
        d_s = ulp_distance(ours_s.numpy().ravel(), want_s.contiguous().numpy().ravel())
        worst = int(np.argmax(d))
        entry = {"max_ulp_vs_torch": float(max(d.max(), d_s.max())), "values": int(x.numel() + specials.numel()),
                 "worst_x": float(x.view(-1)[worst]), "specials_exact": bool((d_s == 0).all())}
        if dtype == torch.float32:
            # against the correctly rounded value (float64 math, rounded once)
            exact = getattr(torch, fn)(x.double()).float()
            de = ulp_distance(ours.numpy().ravel(), exact.numpy().ravel())
            dt = ulp_distance(want.numpy().ravel(), exact.numpy().ravel())
            entry["max_ulp_vs_exact"] = float(de.max())
            entry["torch_max_ulp_vs_exact"] = float(dt.max())
            entry["worst_x_vs_exact"] = float(x.view(-1)[int(np.argmax(de))])
            normal = (exact.abs() >= torch.finfo(torch.float32).tiny).numpy().ravel()
            entry["max_ulp_vs_exact_normal_results"] = float(de[normal].max())
        result[f"{fn}/{name}"] = entry
print("ULP" + json.dumps(result))
"""


def _measure_ulps(capability: str) -> dict:
    import json

    stdout = run_under_capability(ULP_SCRIPT, capability)
    line = next(line for line in stdout.splitlines() if line.startswith("ULP"))
    return json.loads(line[3:])


@pytest.mark.skipif(lstm_ext._library.LOAD_ERROR is not None, reason="compiled kernels not loaded")
@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_activations_within_ulp_bound_of_torch(capability):
    import platform

    if platform.machine() not in ("x86_64", "AMD64") and capability != "default":
        pytest.skip("x86 capability")
    measured = _measure_ulps(capability)
    if measured["capability"].lower() != capability:
        pytest.skip(f"this CPU runs {measured['capability']}, not {capability}")
    print(capability, measured)
    for key, entry in measured.items():
        if key == "capability":
            continue
        fn = key.split("/")[0]
        assert entry["specials_exact"], (key, entry)  # NaN, ±Inf, ±0: exactly torch's result
        assert entry["max_ulp_vs_torch"] <= ULP_BOUNDS[fn], (key, entry)
        if "max_ulp_vs_exact_normal_results" in entry:
            assert entry["max_ulp_vs_exact_normal_results"] <= ULP_BOUNDS[fn], (key, entry)
