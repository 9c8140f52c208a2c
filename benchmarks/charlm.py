"""End-to-end: train a small char-level language model, tokens per second per implementation.

The model is ``Embedding(V, E) -> LSTM(E, H) -> Linear(H, V)``, trained with cross-entropy and
plain SGD for a fixed number of steps on a text generated here (seeded, so every run and every
implementation sees the same characters). Every implementation starts from the same weights
and sees the same batches; the time covers whole training steps (forward, backward, optimizer)
after a few warm-up steps. ``tokens_per_s = steps * T * B / seconds``.

``loss_first`` / ``loss_last`` are reported too, and ``correct`` says the implementation's losses
track the reference's (relative difference under ``LOSS_RTOL`` at the first and the last step):
an implementation that trains something else is flagged, not ranked.
"""

from __future__ import annotations

import random
import time
from typing import Optional

import torch
from torch import nn

from .configs import CharLMSpec, Config
from .impls import IMPLS
from .measure import sync
from .workload import make_workload

LOSS_RTOL = {torch.float32: 1e-3, torch.float64: 1e-6, torch.bfloat16: 5e-2, torch.float16: 2e-2}

_WORDS = (
    "the a one every some long short old new cell gate state memory forget input output hidden "
    "step sequence layer kernel tensor batch model learns keeps drops remembers reads writes "
    "passes carries holds sees fast slow quiet bright river stone tree wind light night day"
).split()


def generate_text(n_chars: int, seed: int = 0) -> str:
    """Sentences of a small vocabulary with some structure: deterministic for a seed."""
    rng = random.Random(seed)
    out: list = []
    size = 0
    while size < n_chars:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 11))]
        sentence = " ".join(words).capitalize() + rng.choice(".,;!?") + " "
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:n_chars]


class CharLM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, lstm_forward, lstm_module: Optional[nn.Module]):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.head = nn.Linear(hidden, vocab)
        self.lstm_forward = lstm_forward
        self.lstm = lstm_module  # registered so its parameters are trained

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # ids [T, B] -> logits [T, B, V]
        return self.head(self.lstm_forward(self.embed(ids)))


def _batches(text: str, spec: CharLMSpec, count: int, device: torch.device):
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.int64)
    span = spec.T + 1
    gen = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(count):
        starts = torch.randint(0, len(data) - span, (spec.B,), generator=gen)
        chunk = torch.stack([data[s : s + span] for s in starts.tolist()], dim=1)  # [T+1, B]
        batches.append((chunk[:-1].to(device), chunk[1:].to(device)))
    return len(chars), batches


def run_one(name: str, spec: CharLMSpec, device: torch.device, dtype: torch.dtype, text: str) -> dict:
    impl = IMPLS[name]
    cfg = Config(T=spec.T, B=spec.B, I=spec.embed, H=spec.H, layers=spec.layers,
                 dtype={torch.float32: "float32", torch.float64: "float64", torch.bfloat16: "bfloat16"}[dtype])
    wl = make_workload(cfg, device, seed=3)
    built = impl.build(wl)
    vocab, batches = _batches(text, spec, spec.warmup_steps + spec.steps, device)
    torch.manual_seed(4)
    model = CharLM(vocab, spec.embed, spec.H, built.forward, built.module).to(device=device, dtype=dtype)
    params = list(dict.fromkeys(list(model.parameters()) + list(built.params.values())))
    opt = torch.optim.SGD(params, lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    start = 0.0
    compile_s = 0.0
    for step, (x, y) in enumerate(batches):
        if step == spec.warmup_steps:
            sync(device)
            start = time.perf_counter()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, vocab).float(), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 0:
            compile_s = time.perf_counter() - t0
    sync(device)
    elapsed = time.perf_counter() - start
    return dict(
        impl=name, label=impl.label, device=device.type, dtype=cfg.dtype, T=spec.T, B=spec.B, embed=spec.embed,
        H=spec.H, layers=spec.layers, vocab=vocab, steps=spec.steps, warmup_steps=spec.warmup_steps,
        seconds=elapsed, tokens_per_s=spec.steps * spec.T * spec.B / elapsed,
        loss_first=losses[0], loss_last=losses[-1], first_step_s=compile_s,
    )
