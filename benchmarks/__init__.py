"""lstm_ext's benchmark suite: every LSTM implementation side by side, on the same inputs and weights.

Entry point: ``python benchmarks/run.py --preset default --out DIR`` (see ``benchmarks/README.md``).

One job per file:

- ``configs.py``   the presets (lists of shapes, timing budgets);
- ``workload.py``  weights, inputs and output gradients of one configuration;
- ``impls.py``     the implementations, each built from the same ``nn.LSTM`` state_dict;
- ``torchscript_lstm.py``  the scripted custom LSTM (as pytorch's benchmarks/fastrnns does);
- ``check.py``     correctness against the reference before anything is timed;
- ``measure.py``   timing, peak memory, GEMM flop count and the torch.mm roofline;
- ``charlm.py``    end-to-end: a small char-level language model, tokens/s;
- ``report.py``    terminal table, JSON, CSV, markdown and PNG plots;
- ``compare.py``   the change against an earlier results.json, regressions beyond the IQR;
- ``suite.py``     runs a preset (the programmatic API the tests call);
- ``run.py``       the command line.
- ``torchscript_variants.py``  the LSTM variants as a scripted loop.

The GRU and the LSTM variants are presets of the same suite: ``--preset gru`` (``lstm_ext.GRU``
against ``nn.GRU``) and ``--preset variants`` (each variant's cost against the plain fused LSTM).
"""
