// The fused recurrent step's backward walk (fused_step.h's FusedBackwardWalk), for every family:
// included once per CPU capability after fused_step_impl.h's tile.
//
// The gradient of h_{t-1} is dgates_t @ W_hh, where every unit needs all of step t's gate
// gradients, so step t's gate math cannot run on the tile that makes them. It runs one step
// later instead: the tile that makes the gradient of h_t for a block of units finishes those
// units' gate gradients of step t in its epilogue, while the product is still in registers.
// So one step is one tile pass and one meeting, and the gate gradients touch memory once.
//
// W_hh [gates * H, H] is packed as groups of at most 4 unit blocks, [K = gates * H][C][L] per
// group: the gradient of C vectors of units for R rows stays in registers for all of K.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "runtime/cpu/fused_step_impl.h"
#include "runtime/cpu/row_product/row_product.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Unit blocks per tile of the backward: R x C accumulators, as the forward's R x 4 gates.
inline constexpr int kFusedMaxGroupBlocks = 4;

// Calls f(first_block, blocks) over unit blocks [b0, b1) in groups of at most 4, as equal as
// they come (5 blocks: 3 + 2).
template <typename F>
inline void for_unit_groups(int64_t b0, int64_t b1, const F& f) {
  for_equal_parts(b0, b1, kFusedMaxGroupBlocks, [&](int64_t b, int64_t count) { f(b, static_cast<int>(count)); });
}

// Floats of the packed W_hh one backward call needs.
inline int64_t fused_backward_packed_floats(int64_t gates, int64_t H) {
  const int64_t blocks = (H + kFusedLanes - 1) / kFusedLanes;
  return blocks * kFusedLanes * gates * H;
}

// Unit blocks [b, b + C) of w [K, H] into their group's panel [K][C][L], which starts at
// packed + b * K * L whatever the grouping; units past H are zero.
inline void pack_unit_group(const float* w, int64_t H, int64_t K, int64_t b, int C, float* packed) {
  constexpr int64_t L = kFusedLanes;
  float* const panel = packed + b * K * L;
  for (int64_t k = 0; k < K; ++k) {
    for (int c = 0; c < C; ++c) {
      for (int64_t l = 0; l < L; ++l) {
        const int64_t u = (b + c) * L + l;
        panel[(k * C + c) * L + l] = u < H ? w[k * H + u] : 0.f;
      }
    }
  }
}

// The groups for_unit_groups(0, blocks) makes whose first block is in [first, last): so that
// members packing disjoint block ranges together pack every group once, in the walk's grouping.
inline void pack_unit_groups_from(const float* w, int64_t cols, int64_t K, int64_t first, int64_t last,
                                  float* packed) {
  const int64_t blocks = (cols + kFusedLanes - 1) / kFusedLanes;
  for_unit_groups(0, blocks, [&](int64_t b, int C) {
    if (b >= first && b < last) pack_unit_group(w, cols, K, b, C, packed);
  });
}

// One tile of `rows` rows x C unit blocks: acc = [A | A_tail] @ panel, then finish(r, acc[r], C)
// per row. The tail (K = 0: none) holds the last part of K where it lies apart.
template <int R, typename Finish>
inline void backward_tile(int64_t rows, int C, const KSegment& a, const KSegment& tail, const Finish& finish) {
  const auto each_row = [&](int r, const auto& acc) { finish(r, &acc[0], C); };
  switch (C) {
    case 1: return fused_tile_rows<R, 1>(rows, a, tail, each_row);
    case 2: return fused_tile_rows<R, 2>(rows, a, tail, each_row);
    case 3: return fused_tile_rows<R, 3>(rows, a, tail, each_row);
    default: return fused_tile_rows<R, 4>(rows, a, tail, each_row);
  }
}

// The walk. epilogue_at(t, row, u0) makes step t's epilogue for the rows from `row` and the
// units from u0; it is called as e(r, dh, C): dh[c] is the gradient reaching h_t (without the
// output's) of row row + r, units u0 + c * L on, and the epilogue writes dgates_t for them.
template <int G, typename EpilogueAt>
void fused_backward_walk(const FusedBackwardWalk& w, const EpilogueAt& epilogue_at) {
  constexpr int R = kFusedTileRows;
  constexpr int64_t L = kFusedLanes;
  const LayerShape& s = *w.shape;
  const int64_t H = s.H, K = G * H, blocks = (H + L - 1) / L;
  const FusedPartition part = plan_fused_partition(s.B, 2 * s.B * K * H);

  // The gate gradients' columns read from dgates; the rest from dgates_last.
  const int64_t k_main = w.dgates_last != nullptr ? K - H : K;
  // Rows [begin, end) x unit group (b, C): the product with step tw's gate gradients.
  const auto product = [&](int64_t tw, int64_t begin, int64_t end, int64_t b, int C, const auto& finish_at) {
    for_equal_parts(begin, end, R, [&](int64_t row, int64_t rows) {
      const int64_t at = s.offset[tw] + row;
      const float* const panel = w.packed + b * K * L;
      const KSegment a{w.dgates + at * K, K, panel, k_main};
      const KSegment tail = w.dgates_last != nullptr ? KSegment{w.dgates_last + at * H, H, panel + k_main * C * L, H}
                                                      : KSegment{nullptr, 0, nullptr, 0};
      backward_tile<R>(rows, C, a, tail, finish_at(row));
    });
  };
  // Walked step t (or -1: after the last), tw the step walked before it (or -1: none), rows
  // [r0, r1) and unit blocks [b0, b1).
  const auto step = [&](int64_t t, int64_t tw, int64_t r0, int64_t r1, int64_t b0, int64_t b1) {
    const int64_t n = t < 0 ? 0 : s.rows[t], m = tw < 0 ? 0 : s.rows[tw];
    for_unit_groups(b0, b1, [&](int64_t b, int C) {
      const int64_t u0 = b * L;
      // Rows of both steps: dh_t = dgates_tw @ W_hh, finished at once.
      product(tw, r0, std::min({r1, n, m}), b, C, [&](int64_t row) { return epilogue_at(t, row, u0); });
      // Rows that end at t (a forward walk over packed input): dh_t is the gradient of h_n.
      for (int64_t row = std::max(r0, m); row < std::min(r1, n); ++row) {
        FusedVec dh[kFusedMaxGroupBlocks];
        for (int c = 0; c < C; ++c) {
          dh[c] = FusedVec::loadu(w.dh_state + row * H + u0 + c * L, std::min(L, H - u0 - c * L));
        }
        epilogue_at(t, row, u0)(0, dh, C);
      }
      // Rows of tw without a row at t (they started from h0, or t is past the end): the
      // product, and the direct part, are the gradient of h0.
      product(tw, std::max(r0, n), std::min(r1, m), b, C, [&](int64_t row) {
        return [&, row](int r, const FusedVec* dh, int groups) {
          for (int c = 0; c < groups; ++c) {
            const int64_t at = (row + r) * H + u0 + c * L, count = std::min(L, H - u0 - c * L);
            const FusedVec direct = w.dh_direct ? FusedVec::loadu(w.dh_direct + at, count) : FusedVec(0.f);
            (dh[c] + direct).store(w.dh_state + at, count);
          }
        };
      });
    });
  };
  // Every step with rows, the forward walk's last first, then the gradient of h0.
  const auto walk = [&](int64_t r0, int64_t r1, int64_t b0, int64_t b1, const auto& between) {
    int64_t tw = -1;
    for (int64_t k = s.T - 1; k >= 0; --k) {
      const int64_t t = w.reverse ? s.T - 1 - k : k;
      if (s.rows[t] == 0) continue;
      if (!between([&] { step(t, tw, r0, r1, b0, b1); })) return;
      tw = t;
    }
    if (w.need_state_grad && tw >= 0) between([&] { step(-1, tw, r0, r1, b0, b1); });
  };
  if (part.split_rows) {
    // Each member owns rows [r0, r1) of every step and packs its share of the groups; one
    // meeting once everything is packed, none in the walk.
    run_fused_team(part.threads, s.B, 1, [&](int64_t r0, int64_t r1, int64_t owned, StepBarrier& barrier) {
      int64_t generation = 0;
      const bool packed_ok =
          barrier.step(owned, generation, [&] {
            pack_unit_groups_from(w.w_hh, H, K, blocks * r0 / s.B, blocks * r1 / s.B, w.packed);
          });
      if (!packed_ok) return;
      barrier.guard([&] {
        walk(r0, r1, 0, blocks, [](const auto& work) {
          work();
          return true;
        });
      });
    });
    return;
  }
  // Each member owns whole blocks of units for every row and packs its own groups; the members
  // meet after every step, before anyone reads the gate gradients the others wrote.
  run_fused_team(part.threads, H, L, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t b0 = u0 / L, b1 = (u1 + L - 1) / L;
    barrier.guard([&] {
      for_unit_groups(b0, b1, [&](int64_t b, int C) { pack_unit_group(w.w_hh, H, K, b, C, w.packed); });
    });
    int64_t generation = 0;
    walk(0, s.B, b0, b1, [&](const auto& work) { return barrier.step(owned, generation, work); });
  });
}

// The table of such a family with G gate blocks (fused_step.h).
template <int G, typename Forward, typename Backward>
RecurrentFusedKernels<Forward, Backward> recurrent_fused_kernels(void (*forward)(const Forward&),
                                                                 void (*backward)(const Backward&)) {
  return {[](int64_t I, int64_t H) { return fused_packed_floats(G, I, H); }, forward,
          [](int64_t H) { return fused_backward_packed_floats(G, H); }, backward};
}

// out = [a | tail] @ W (+ bias, + out) for p.rows rows (row_product.h), on the walk's tile:
// unit groups outside, so one group's panel serves every row tile from cache.
inline void product_rows(const RowProduct& p, int64_t rows) {
  constexpr int R = kFusedTileRows;
  constexpr int64_t L = kFusedLanes;
  const int64_t K = p.ka + p.k_tail, blocks = (p.cols + L - 1) / L;
  for_unit_groups(0, blocks, [&](int64_t b, int C) {
    const int64_t u0 = b * L;
    const float* const panel = p.packed + b * K * L;
    for_equal_parts(0, rows, R, [&](int64_t row, int64_t count) {
      const KSegment a{p.a + row * p.lda, p.lda, panel, p.ka};
      const KSegment tail = p.k_tail > 0 ? KSegment{p.tail + row * p.ld_tail, p.ld_tail, panel + p.ka * C * L, p.k_tail}
                                         : KSegment{nullptr, 0, nullptr, 0};
      backward_tile<R>(count, C, a, tail, [&](int r, const FusedVec* acc, int groups) {
        for (int c = 0; c < groups; ++c) {
          const int64_t u = u0 + c * L, lanes = std::min(L, p.cols - u);
          float* const out = p.out + (row + r) * p.ldo + u;
          FusedVec v = acc[c];
          if (p.bias != nullptr) v = v + FusedVec::loadu(p.bias + u, lanes);
          if (p.accumulate) v = v + FusedVec::loadu(out, lanes);
          v.store(out, lanes);
        }
      });
    });
  });
}

// Floats of a packed W [K, cols]: whole blocks of columns.
inline int64_t row_product_packed_floats(int64_t K, int64_t cols) {
  return (cols + kFusedLanes - 1) / kFusedLanes * kFusedLanes * K;
}

// The row product's packing: W [K, cols] as the walk packs W_hh, share [begin, end) of parts.
inline void pack_row_product_share(const float* w, int64_t K, int64_t cols, int64_t begin, int64_t end, int64_t parts,
                                   float* packed) {
  const int64_t blocks = (cols + kFusedLanes - 1) / kFusedLanes;
  pack_unit_groups_from(w, cols, K, blocks * begin / parts, blocks * end / parts, packed);
}

// Floats of the packed W_ih fused_input_grad needs.
inline int64_t fused_input_grad_packed_floats(int64_t gates, int64_t I, int64_t H) {
  return row_product_packed_floats(gates * H, I);
}

// dx [N, I] = dgates [N, G * H] @ W_ih [G * H, I] after the walk, on the walk's tile: W_ih packed
// as the walk packs W_hh, rows split across threads. oneDNN's GEMM reached less than half this
// machine's peak on these narrow products (docs/performance.md, the fused backward).
template <int G>
void fused_input_grad(const LayerShape& s, const float* dgates, const float* w_ih, float* packed, float* dx) {
  const int64_t K = G * s.H, I = s.I, blocks = (I + kFusedLanes - 1) / kFusedLanes;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    pack_row_product_share(w_ih, K, I, first, last, blocks, packed);
  });
  at::parallel_for(0, s.N, 4 * kFusedTileRows, [&](int64_t r0, int64_t r1) {
    product_rows(RowProduct{packed, I, dgates + r0 * K, K, K, nullptr, 0, 0, nullptr, false, dx + r0 * I, I},
                 r1 - r0);
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
