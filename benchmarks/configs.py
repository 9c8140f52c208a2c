"""Presets: which shapes to run, with which implementations, and how long to time each.

A :class:`Config` is one LSTM shape (``nn.LSTM`` layout: ``T`` steps, ``B`` batch, ``I`` input
size, ``H`` hidden size, ``P = proj_size or H``), run in both modes (forward without grad, and
forward + backward). ``impls`` narrows the implementations for that shape (the big shapes of the
default preset leave out the slow ones to stay within its 2-minute budget); ``None`` means all.

Presets:

- ``tiny``: one T=3, B=2, I=H=8 shape and a very short timing: for the suite's own tests;
- ``default``: under 2 minutes on a 2-core CPU, everything included (the README's command);
- ``full``: sweeps batch 1-256, hidden 64-1024, T 1-1000, layers, bidirectional, fp32/fp64/bf16,
  packed variable lengths and proj_size (long: an hour or more on a small CPU);
- ``targets``: the CPU speed targets' shapes, fused against ``nn.LSTM`` / ``nn.GRU`` only (a few minutes);
- ``fused_step``: the fused recurrent step's A/B: ``fused`` against ``fused_plain_loop`` (the same
  build with ``LSTM_EXT_FUSED_STEP=0``) and ``nn.LSTM``, on the dense fp32 targets' shapes and the
  bf16 one; the GRU (against ``nn.GRU`` too) and the fused variants (peephole, zoneout) at two
  shapes each;
- ``fastrnns``: pytorch's benchmarks/fastrnns shape, T=100, B=64, I=H=512, 1 layer;
- ``flashrnn``: the flashrnn paper's shape, T=1024, B=16, I=H=768, bf16, on CUDA only;
- ``gru``: ``lstm_ext.GRU`` (fused and reference) against ``nn.GRU``, a large and a small batch;
- ``variants``: each LSTM variant (recurrent dropout, peephole, zoneout, layer norm, all four,
  the lesson's use gate), fused, against the plain fused LSTM (the ``cost`` column), the
  reference and a TorchScript loop; checked against a float64 reference (see ``check.py``);
- ``deploy``: inference runtimes at streaming steps and a B=1 sequence: lstm_ext and ``nn.LSTM``
  eager, ONNX Runtime on each one's export, lstm_ext's AOTInductor package (``deploy_impls.py``).

``get_preset(name, quick=True)`` (``run.py --quick``) shrinks any preset to T=3, B=2, I=H=8 and
a very short timing: a smoke run of its implementations and report, in seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The LSTM variants' options, by name (a Config's ``variant``): lstm_ext.LSTM keyword arguments.
VARIANTS = {
    "recurrent_dropout": dict(recurrent_dropout=0.25),
    "peephole": dict(peephole=True),
    "zoneout": dict(zoneout=(0.1, 0.05)),
    "layer_norm": dict(layer_norm=True),
    "all": dict(recurrent_dropout=0.25, peephole=True, zoneout=(0.1, 0.05), layer_norm=True),
    "lesson": dict(use_gate="lesson"),
}
CELLS = ("lstm", "gru")
SHORT_DTYPE = {"float32": "fp32", "float64": "fp64", "bfloat16": "bf16", "float16": "fp16"}


@dataclass(frozen=True)
class Config:
    T: int
    B: int
    I: int  # noqa: E741 - nn.LSTM's input_size
    H: int
    layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    packed: bool = False  # variable lengths in [T/2, T], as a PackedSequence
    dtype: str = "float32"
    device: Optional[str] = None  # None: the run's device (--device); "cuda": this shape needs a GPU
    impls: Optional[tuple[str, ...]] = None  # None: every implementation
    cell: str = "lstm"  # "lstm" or "gru"
    variant: str = ""  # an LSTM variant (a key of VARIANTS), or "" for the plain cell

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose from {', '.join(CELLS)}")
        if self.variant and (self.variant not in VARIANTS or self.cell != "lstm"):
            raise ValueError(f"unknown LSTM variant {self.variant!r}; choose from {', '.join(VARIANTS)}")

    @property
    def kind(self) -> str:
        """What an implementation must run: "lstm", "gru" or "variant" (an LSTM variant)."""
        return "variant" if self.variant else self.cell

    @property
    def variant_options(self) -> dict:
        return dict(VARIANTS[self.variant]) if self.variant else {}

    @property
    def P(self) -> int:  # noqa: N802 - the LSTM's output width per direction
        return self.proj_size or self.H

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def label(self) -> str:
        """Short and unique within a preset, e.g. ``T100 B64 I256 H256 fp32`` or ``... L2 bi P128 packed``."""
        parts = ["GRU"] if self.cell == "gru" else []
        parts += [f"T{self.T}", f"B{self.B}", f"I{self.I}", f"H{self.H}"]
        if self.layers != 1:
            parts.append(f"L{self.layers}")
        if self.bidirectional:
            parts.append("bi")
        if self.proj_size:
            parts.append(f"P{self.proj_size}")
        if self.packed:
            parts.append("packed")
        parts.append(SHORT_DTYPE.get(self.dtype, self.dtype))
        if self.variant:
            parts.append(self.variant)
        return " ".join(parts)

    def shape_fields(self) -> dict:
        """The record fields that identify this shape (device is added by the runner)."""
        return dict(
            dtype=self.dtype, T=self.T, B=self.B, I=self.I, H=self.H, layers=self.layers,
            bidirectional=self.bidirectional, proj_size=self.proj_size, packed=self.packed,
            cell=self.cell, variant=self.variant,
        )


@dataclass(frozen=True)
class Timing:
    """How long to time one (implementation, shape, mode).

    The implementations of a shape and mode are timed in turns (``measure.time_round_robin``),
    in blocks of about ``min_run_time / min_samples`` seconds, until each has ``min_samples``
    blocks and ``min_run_time`` seconds, so that the median and the IQR rest on several samples;
    past ``max_run_time`` seconds each, 3 samples are enough. The GEMM roofline's own timing
    uses ``min_run_time`` with ``torch.utils.benchmark.Timer.blocked_autorange``.
    """

    min_run_time: float = 0.25
    min_samples: int = 5
    # extra calls before timing (CPU; CUDA always gets 3): the check's call and the block-size
    # estimate already warm up
    warmup: int = 0
    max_run_time: float = 4.0  # stop adding samples past this (once there are 3)


@dataclass(frozen=True)
class CharLMSpec:
    """The end-to-end figure: a char-level LM (embedding -> LSTM -> linear), trained for ``steps``."""

    steps: int = 20
    warmup_steps: int = 2
    T: int = 64
    B: int = 32
    embed: int = 64
    H: int = 256
    layers: int = 1
    impls: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    configs: tuple[Config, ...]
    timing: Timing = field(default_factory=Timing)
    charlm: Optional[CharLMSpec] = None
    measure_memory: bool = True
    # an implementation every record's ``cost`` is relative to: time(impl) / time(cost_baseline),
    # same shape and mode, timed in the same rounds (None: no cost column)
    cost_baseline: Optional[str] = None
    # "tolerance": against the oracle in the shape's dtype, with the project's tolerances;
    # "float64": against the oracle run in float64, within a multiple of the oracle's own error
    check: str = "tolerance"

    def check_for(self, cfg: "Config") -> str:
        """The check of one shape: the preset's, and "float64" for a layer-normalized variant in any
        preset, since over many steps float32 layer norm drifts past the float32 tolerance even in
        plain PyTorch."""
        layer_norm = VARIANTS.get(cfg.variant, {}).get("layer_norm", False)
        return "float64" if layer_norm else self.check


# Implementations left out of the default preset's larger shapes: torch.compile unrolls the time
# loop, so its compile time grows with T and a 100-step loop alone would take a large share of the
# default budget. The compiled reference is measured on the short shapes instead (compile times:
# docs/performance.md).
_NOT_COMPILED = ("fused", "reference", "torchscript", "nn", "nn_composite", "cell_loop", "haste", "flashrnn")
# The second large shape keeps the ones that matter most: the Python-loop ones are slowest there.
_CORE = ("fused", "reference", "nn", "nn_composite", "haste", "flashrnn")


def _tiny() -> Preset:
    return Preset(
        name="tiny",
        description="T=3 B=2 I=H=8: the suite's own tests",
        configs=(Config(T=3, B=2, I=8, H=8),),
        timing=Timing(min_run_time=0.002, min_samples=3),
        # no torch.compile in the tiny char-LM: its compile time would dominate the tests
        charlm=CharLMSpec(steps=2, warmup_steps=1, T=8, B=2, embed=8, H=8,
                          impls=("fused", "reference", "torchscript", "nn", "nn_composite", "cell_loop")),
    )


def _default() -> Preset:
    return Preset(
        name="default",
        description="a few fp32 shapes (one of 4 rows), a streaming step and a float64 shape; < 2 min on 2 CPU cores",
        configs=(
            Config(T=100, B=64, I=256, H=256, impls=_NOT_COMPILED),
            Config(T=100, B=16, I=128, H=512, impls=_CORE),
            Config(T=100, B=64, I=64, H=64, impls=_NOT_COMPILED),
            Config(T=10, B=64, I=64, H=64),
            Config(T=100, B=4, I=64, H=64, impls=_NOT_COMPILED),  # a small batch: the variants' small shape
            Config(T=1, B=1, I=64, H=64),  # streaming: one step of one sequence
            Config(T=25, B=16, I=128, H=128, dtype="float64", impls=_NOT_COMPILED),
        ),
        timing=Timing(min_run_time=0.2, min_samples=5),
        charlm=CharLMSpec(steps=12, warmup_steps=2, T=32, B=32, embed=64, H=256,
                          impls=("fused", "reference", "torchscript", "nn", "nn_composite", "cell_loop")),
    )


def _full() -> Preset:
    base = dict(T=100, B=64, I=256, H=256)
    seen: list[Config] = []

    def add(**kw) -> None:
        if kw.get("T", base["T"]) >= 300:  # compiling an unrolled 300-1000 step loop takes many minutes
            kw.setdefault("impls", _NOT_COMPILED)
        cfg = Config(**{**base, **kw})
        if cfg not in seen:
            seen.append(cfg)

    for b in (1, 8, 32, 64, 128, 256):
        add(B=b)
    for h in (64, 128, 256, 512, 1024):
        add(I=h, H=h)
    for t in (1, 10, 100, 300, 1000):
        add(T=t)
    for layers in (2, 4):
        add(layers=layers)
    add(bidirectional=True)
    add(layers=2, bidirectional=True)
    for dtype in ("float64", "bfloat16"):
        add(dtype=dtype)
    add(packed=True)
    add(packed=True, bidirectional=True)
    add(proj_size=128)
    add(proj_size=128, layers=2, bidirectional=True)
    add(T=1, B=1, I=64, H=64)
    add(T=100, B=16, I=128, H=512)
    return Preset(
        name="full",
        description="sweeps of batch, hidden, T, layers, directions, dtypes, packed and proj_size",
        configs=tuple(seen),
        timing=Timing(min_run_time=0.5, min_samples=7, warmup=1, max_run_time=10.0),
        charlm=CharLMSpec(steps=50, warmup_steps=3, T=64, B=32, embed=64, H=256),
    )


def _targets() -> Preset:
    # The CPU speed targets' shapes, fused against nn.LSTM (and nn.LSTMCell for a streaming step).
    vs_nn = ("fused", "nn")
    big = dict(T=100, B=64, I=256, H=256, impls=vs_nn)
    return Preset(
        name="targets",
        description="the CPU speed targets: dense fp32 (medium and large), a small batch, streaming, fp64, packed, "
        "proj_size=128, bf16, and the GRU against nn.GRU",
        configs=(
            Config(T=100, B=64, I=64, H=64, impls=vs_nn),
            Config(T=10, B=64, I=64, H=64, impls=vs_nn),
            Config(**big),
            Config(T=100, B=16, I=128, H=512, impls=vs_nn),
            Config(T=100, B=4, I=64, H=64, impls=vs_nn),
            Config(T=1, B=1, I=64, H=64, impls=("fused", "nn", "cell_loop")),
            Config(T=1, B=1, I=256, H=256, impls=("fused", "nn", "cell_loop")),
            Config(**big, dtype="float64"),
            Config(**big, packed=True),
            Config(**big, proj_size=128),
            Config(**big, dtype="bfloat16"),
            Config(**big, cell="gru"),
        ),
        timing=Timing(min_run_time=0.3, min_samples=7, warmup=1, max_run_time=6.0),
    )


def _fused_step() -> Preset:
    # The fused step's A/B: the same build with and without it (LSTM_EXT_FUSED_STEP), beside
    # nn.LSTM / nn.GRU, on the dense fp32 shapes of the targets and the bf16 one (the bfloat16
    # forward runs fused on CPUs with AVX512-BF16); then the GRU's and the fused variants'
    # (peephole and zoneout on the per-unit walk, layer norm and the lesson's use gate on the
    # row-split walk) at the gru and variants presets' two shapes.
    chosen = ("fused", "fused_plain_loop", "nn")
    lstm = tuple(Config(T=t, B=b, I=i, H=h, impls=chosen)
                 for t, b, i, h in ((100, 64, 64, 64), (10, 64, 64, 64), (100, 64, 256, 256),
                                    (100, 16, 128, 512), (100, 4, 64, 64)))
    lstm += (Config(T=100, B=64, I=256, H=256, dtype="bfloat16", impls=chosen),)
    small_and_big = ((64, 256), (4, 64))
    gru = tuple(Config(T=100, B=b, I=h, H=h, cell="gru", impls=chosen) for b, h in small_and_big)
    variants = tuple(Config(T=100, B=b, I=h, H=h, variant=v, impls=("fused", "fused_plain_loop"))
                     for b, h in small_and_big for v in ("peephole", "zoneout", "layer_norm", "lesson"))
    return Preset(
        name="fused_step",
        description="the fused recurrent step against the plain loop (LSTM_EXT_FUSED_STEP=0) and nn.LSTM / "
        "nn.GRU, dense fp32 and bf16: the LSTM, the GRU and the fused variants",
        configs=lstm + gru + variants,
        timing=Timing(min_run_time=0.3, min_samples=7, warmup=1, max_run_time=6.0),
    )


def _fastrnns() -> Preset:
    return Preset(
        name="fastrnns",
        description="pytorch benchmarks/fastrnns' LSTM: T=100 B=64 I=H=512, 1 layer",
        configs=(Config(T=100, B=64, I=512, H=512),),
        timing=Timing(min_run_time=1.0, min_samples=7, warmup=1, max_run_time=10.0),
    )


def _flashrnn() -> Preset:
    return Preset(
        name="flashrnn",
        description="flashrnn's LSTM shape: T=1024 B=16 I=H=768 bf16, GPU only",
        configs=(Config(T=1024, B=16, I=768, H=768, dtype="bfloat16", device="cuda",
                        impls=("fused", "reference_compiled", "nn", "nn_composite", "haste", "flashrnn")),),
        timing=Timing(min_run_time=1.0, min_samples=7, warmup=3, max_run_time=10.0),
    )


def _gru() -> Preset:
    vs_nn = ("fused", "reference", "nn")
    return Preset(
        name="gru",
        description="lstm_ext.GRU fused and reference against nn.GRU: T=100, I=H=256 B=64 and I=H=64 B=4",
        configs=(Config(T=100, B=64, I=256, H=256, cell="gru", impls=vs_nn),
                 Config(T=100, B=4, I=64, H=64, cell="gru", impls=vs_nn)),
        timing=Timing(min_run_time=0.5, min_samples=7, max_run_time=6.0),
    )


def _variants() -> Preset:
    chosen = ("fused", "plain_fused", "reference", "torchscript")
    return Preset(
        name="variants",
        description="each LSTM variant, fused, against the plain fused LSTM (cost), the reference and TorchScript",
        configs=tuple(Config(T=100, B=b, I=h, H=h, variant=v, impls=chosen)
                      for b, h in ((64, 256), (4, 64)) for v in VARIANTS),
        timing=Timing(min_run_time=0.3, min_samples=5, max_run_time=4.0),
        cost_baseline="plain_fused",
        # over 100 steps a float32 layer-norm LSTM drifts past the float32 tolerance even in plain
        # PyTorch: an implementation passes when it is as accurate as the float32 reference
        check="float64",
    )


def _deploy() -> Preset:
    # What a deployment runs, inference only: the streaming step (T1 B1, state in and out between
    # calls) at two widths and one B1 sequence; eager lstm_ext and nn beside ONNX Runtime on each
    # one's export and lstm_ext's AOTInductor package. Information, not a target.
    # Then what exports as a Loop of standard operators (no ONNX operator holds it): proj_size,
    # which torch's own exporter writes as an LSTM node ONNX Runtime rejects, and layer norm.
    chosen = ("fused", "nn", "onnxruntime", "onnxruntime_nn", "aoti")
    native = tuple(Config(T=t, B=1, I=h, H=h, impls=chosen) for t, h in ((1, 64), (1, 256), (100, 256)))
    looped = (
        Config(T=100, B=1, I=256, H=256, proj_size=128, impls=("fused", "nn", "onnxruntime", "aoti")),
        *(Config(T=t, B=1, I=256, H=256, variant="layer_norm", impls=("fused", "onnxruntime", "aoti"))
          for t in (1, 100)),
    )
    return Preset(
        name="deploy",
        description="inference runtimes: lstm_ext and nn.LSTM eager, ONNX Runtime on each one's export, "
        "lstm_ext's AOTInductor package; streaming steps T1 B1 H64 and H256, and T100 B1 H256; "
        "proj_size and layer norm, which export as a Loop",
        configs=native + looped,
        timing=Timing(min_run_time=0.3, min_samples=7, warmup=3, max_run_time=4.0),
    )


PRESETS = {
    "tiny": _tiny,
    "default": _default,
    "full": _full,
    "targets": _targets,
    "fused_step": _fused_step,
    "fastrnns": _fastrnns,
    "flashrnn": _flashrnn,
    "gru": _gru,
    "variants": _variants,
    "deploy": _deploy,
}
QUICK_SHAPE = dict(T=3, B=2, I=8, H=8)
QUICK_TIMING = Timing(min_run_time=0.002, min_samples=3)


def _dedup(configs) -> tuple:
    return tuple(dict.fromkeys(configs))


def get_preset(name: str, *, dtype: Optional[str] = None, quick: bool = False) -> Preset:
    """The named preset; ``dtype`` (from ``--dtype``) replaces every shape's dtype, duplicates dropped;
    ``quick`` shrinks every shape to ``QUICK_SHAPE`` and the timing to ``QUICK_TIMING``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[name]()
    if dtype is not None:
        if dtype not in DTYPES:
            raise KeyError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        configs: list[Config] = []
        for cfg in preset.configs:
            cfg = dataclasses.replace(cfg, dtype=dtype)
            if cfg not in configs:
                configs.append(cfg)
        preset = dataclasses.replace(preset, configs=tuple(configs))
    if quick:
        charlm = None if preset.charlm is None else _tiny().charlm
        preset = dataclasses.replace(
            preset, configs=_dedup(dataclasses.replace(c, **QUICK_SHAPE, proj_size=min(c.proj_size, 4))
                                   for c in preset.configs),
            timing=QUICK_TIMING, charlm=charlm, description=preset.description + " (--quick: T=3 B=2 I=H=8)")
    return preset
