"""In-process A/B, 2 threads: nn.LSTM vs lstm_ext with the fused step (LSTM_EXT_FUSED_STEP=1) and
without it (=0), alternating every round; best of `rounds` (min is the least noisy on a shared box).
usage: python benchmarks/fused_step_ab.py [--train] [--rounds N]"""
import argparse, os, time, torch, lstm_ext
ap = argparse.ArgumentParser(); ap.add_argument("--train", action="store_true"); ap.add_argument("--rounds", type=int, default=11)
a = ap.parse_args()
torch.set_num_threads(2)
print("train" if a.train else "inference (no_grad)", "best of", a.rounds, "rounds, 2 threads")
print(f"{'shape':22s} {'nn ms':>8s} {'fused ms':>9s} {'plain ms':>9s} {'nn/fused':>9s} {'nn/plain':>9s} {'plain/fused':>12s}")
for T, B, I, H in [(100, 64, 64, 64), (10, 64, 64, 64), (100, 64, 256, 256), (100, 16, 128, 512), (100, 4, 64, 64)]:
    m = lstm_ext.LSTM(I, H); ref = torch.nn.LSTM(I, H); ref.load_state_dict(m.state_dict())
    x = torch.randn(T, B, I, requires_grad=a.train)
    def call(mod):
        if a.train:
            out, _ = mod(x); out.sum().backward()
        else:
            with torch.no_grad(): mod(x)
    reps = max(1, int(20e6 / (T * B * H * (H + I) * (3 if a.train else 1))))
    best = {}
    for r in range(a.rounds):
        for k, mod in (("nn", ref), ("fused", m), ("plain", m)):
            os.environ["LSTM_EXT_FUSED_STEP"] = "0" if k == "plain" else "1"
            call(mod)
            t0 = time.perf_counter()
            for _ in range(reps): call(mod)
            best[k] = min(best.get(k, 1e9), (time.perf_counter() - t0) / reps * 1e3)
    print(f"T{T} B{B} I{I} H{H}".ljust(22), f"{best['nn']:8.3f} {best['fused']:9.3f} {best['plain']:9.3f} {best['nn']/best['fused']:9.2f} {best['nn']/best['plain']:9.2f} {best['plain']/best['fused']:12.2f}", flush=True)
