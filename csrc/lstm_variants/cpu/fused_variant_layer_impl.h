// The LSTM variants' fused kernels: runtime/cpu/fused_step_impl.h's forward walk and
// fused_backward_impl.h's backward walk with variant_gates.h's math as their epilogues, included
// once per CPU capability by fused_variant_layer_{avx2,avx512}.cpp. The same functions, exp and
// tanh as the plain loop's row kernels (lstm_variant_pointwise_impl.h), so the two paths agree to
// rounding.
#pragma once

#include "lstm_variants/cpu/fused_variant_layer.h"
#include "lstm_variants/variant_gates.h"
#include "runtime/cpu/fused_backward_impl.h"
#include "runtime/cpu/fused_step_impl.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// `count` lanes from p, or zeros where the option is off.
inline FusedVec load_or_zero(const float* p, int64_t count) {
  return p != nullptr ? FusedVec::loadu(p, count) : FusedVec(0.f);
}

// The options' lanes for `count` units from u (a step row's offset into keep_h / keep_c).
struct FusedVariantLanes {
  variant_gates::Peephole<FusedVec> peephole;
  variant_gates::Keep<FusedVec> keep;
};

// o's pointers are at the tile's unit u0 (peephole) and row 0, unit u0 (keep_h, keep_c).
inline FusedVariantLanes variant_lanes(const FusedVariantOptions& o, int64_t H, int64_t row_at, int64_t count) {
  const float* p = o.peephole;
  return {{load_or_zero(p, count), load_or_zero(p ? p + H : nullptr, count),
           load_or_zero(p ? p + 2 * H : nullptr, count)},
          {load_or_zero(o.keep_h ? o.keep_h + row_at : nullptr, count),
           load_or_zero(o.keep_c ? o.keep_c + row_at : nullptr, count)}};
}

// Finishes `count` units of a tile's rows from their four pre-activation vectors: adds the input
// gates made beforehand or the bias (the tile multiplied x too), runs the peephole gates, the
// cell, the use gate and zoneout, and writes the carried states, the output and what backward
// reads. Every pointer is at the tile's row 0 and unit u0 (peephole: unit u0).
struct VariantFusedEpilogue {
  const float* xgates;  // row stride 4H, or null: add bias instead
  const float* bias;    // packed [4][L] of the tile's block (zeros without a bias)
  FusedVariantOptions options;
  const float* h_prev;  // row stride H
  float* c_state;       // c_{t-1} in, the carried c_t out
  float* h_out;
  float* gates;   // row stride 4H
  float* cells;
  float* states;  // or null
  int64_t H, count;

  void operator()(int r, const FusedVec (&acc)[4]) const {
    constexpr int64_t L = kFusedLanes;
    const float* const x = xgates != nullptr ? xgates + r * 4 * H : nullptr;
    const auto pre = [&](int g) {
      return acc[g] + (x != nullptr ? FusedVec::loadu(x + g * H, count) : FusedVec::loadu(bias + g * L));
    };
    const FusedVariantLanes o = variant_lanes(options, H, r * H, count);
    float* const c_row = c_state + r * H;
    const FusedVec c_prev = FusedVec::loadu(c_row, count);
    const variant_gates::Cell<FusedVec> cell =
        variant_gates::cell_gates<FusedVec>(pre(0), pre(1), pre(2), pre(3), c_prev, o.peephole);
    // h_{t-1} only matters with zoneout on h; without it the blend's weight is zero.
    const FusedVec h_prev_v = load_or_zero(options.keep_h ? h_prev + r * H : nullptr, count);
    const variant_gates::Carried<FusedVec> next = variant_gates::cell_output(cell, cell.c, c_prev, h_prev_v, o.keep);
    store_blocks(gates + r * 4 * H, H, count, cell.a.i, cell.a.f, cell.a.g, cell.a.o);
    cell.c.store(cells + r * H, count);
    if (states != nullptr) next.c.store(states + r * H, count);
    next.c.store(c_row, count);
    next.h.store(h_out + r * H, count);
  }
};

// Step t's gate gradients for the units of C vectors from a tile's row 0, unit u0, given the
// gradient the tile made for each h; every pointer is at that row and unit (peephole: unit u0).
struct VariantFusedBackwardEpilogue {
  const float* gates;   // row stride 4H
  const float* cells;   // c_t before zoneout, row stride H
  const float* c_prev;  // the carried c_{t-1} of the rows below n_prev
  const float* c0;      // the other rows start from c0
  int64_t n_prev;
  FusedVariantOptions options;  // keep_h, keep_c at step t's rows
  const float* dy;   // the output's gradient
  float* dc;         // the gradient of the carried c_t in, of c_{t-1} out
  float* dh_direct;  // with zoneout on h: the direct part of h_t's gradient in, of h_{t-1}'s out
  float* dgates;     // row stride 4H
  int64_t H, units;  // units: H - u0

  void operator()(int r, const FusedVec* dh, int C) const {
    constexpr int64_t L = kFusedLanes;
    for (int c = 0; c < C; ++c) {
      const int64_t at = c * L, count = std::min(L, units - at), row_at = r * H + at;
      const auto a = load_blocks<gates::Gates<FusedVec>>(gates + r * 4 * H + at, H, count);
      FusedVariantOptions o = options;
      if (o.peephole != nullptr) o.peephole += at;
      const FusedVariantLanes lanes = variant_lanes(o, H, row_at, count);
      const FusedVec cell_prev = FusedVec::loadu((r < n_prev ? c_prev : c0) + row_at, count);
      const FusedVec dh_total = dh[c] + FusedVec::loadu(dy + row_at, count) +
                                load_or_zero(dh_direct ? dh_direct + row_at : nullptr, count);
      FusedVec dh_prev;
      const gates::GateGrads<FusedVec> d = variant_gates::cell_backward<FusedVec>(
          a, FusedVec::loadu(cells + row_at, count), cell_prev, lanes.peephole, lanes.keep, dh_total,
          FusedVec::loadu(dc + row_at, count), &dh_prev);
      store_blocks(dgates + r * 4 * H + at, H, count, d.i_pre, d.f_pre, d.g_pre, d.o_pre);
      d.c_prev.store(dc + row_at, count);
      if (dh_direct != nullptr) dh_prev.store(dh_direct + row_at, count);
    }
  }
};

// The options' pointers at the rows from `row` and the units from u0 (keep: of the step at off).
inline FusedVariantOptions options_at(const FusedVariantOptions& o, int64_t H, int64_t off_row, int64_t u0) {
  return {o.peephole ? o.peephole + u0 : nullptr, o.keep_h ? o.keep_h + off_row * H + u0 : nullptr,
          o.keep_c ? o.keep_c + off_row * H + u0 : nullptr};
}

inline void run_fused_variant_forward(const FusedVariantForward& f) {
  const int64_t H = f.walk.shape->H;
  fused_forward_walk<4>(f.walk, [&](int64_t off, int64_t row, int64_t u0, const float* bias, const float* h_prev) {
    const int64_t at = off + row;
    return VariantFusedEpilogue{f.xgates ? f.xgates + at * 4 * H + u0 : nullptr,
                                bias,
                                options_at(f.options, H, at, u0),
                                h_prev + u0,
                                f.c_state + row * H + u0,
                                f.walk.out + at * H + u0,
                                f.gates + at * 4 * H + u0,
                                f.cells + at * H + u0,
                                f.states ? f.states + at * H + u0 : nullptr,
                                H,
                                std::min(kFusedLanes, H - u0)};
  });
}

inline void run_fused_variant_backward(const FusedVariantBackward& f) {
  const LayerShape& s = *f.walk.shape;
  const int64_t H = s.H;
  fused_backward_walk<4>(f.walk, [&](int64_t t, int64_t row, int64_t u0) {
    const int64_t at = s.offset[t] + row, prev = previous_step(t, s.T, f.walk.reverse);
    return VariantFusedBackwardEpilogue{f.gates + at * 4 * H + u0,
                                        f.cells + at * H + u0,
                                        prev < 0 ? nullptr : f.carried + (s.offset[prev] + row) * H + u0,
                                        f.c0 + row * H + u0,
                                        rows_with_previous(s, t, prev) - row,
                                        options_at(f.options, H, at, u0),
                                        f.grad_out + at * H + u0,
                                        f.dc_state + row * H + u0,
                                        f.walk.dh_direct ? f.walk.dh_direct + row * H + u0 : nullptr,
                                        f.walk.dgates + at * 4 * H + u0,
                                        H,
                                        H - u0};
  });
}

// This capability's copy of the kernels (fused_variant_layer.h).
FusedVariantKernels fused_variant_kernels() {
  return recurrent_fused_kernels<4>(&run_fused_variant_forward, &run_fused_variant_backward);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
