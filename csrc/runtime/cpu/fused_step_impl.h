// The fused recurrent step's register tile, weight packing and time walk (fused_step.h), for
// every family: included once per CPU capability by a family's fused kernels, after
// capability_avx2.h or capability_avx512.h (runtime/cpu/capability.h), so the code lives in
// namespace lstm_ext::cpu::CPU_CAPABILITY and runs on that capability's at::vec::Vectorized.
//
// A family with N gate blocks per unit (LSTM 4, GRU 3) packs W_ih and W_hh as
// [unit block][k][N][L]: for each k, the N gate columns of one block of L hidden units side by
// side, so one tile of R rows x N vectors holds every gate of L whole units, and the epilogue
// can finish those units without another pass. bfloat16 weights pack k in pairs,
// [unit block][k / 2][N][L][2], the operand layout of AVX512-BF16's pair dot product.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime/cpu/fused_step.h"
#include "runtime/cpu/grain.h"
#include "runtime/layer_steps.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

using FusedVec = at::vec::Vectorized<float>;
// Hidden units per block: one vector.
inline constexpr int64_t kFusedLanes = FusedVec::size();
// Rows per register tile: R x N accumulators, N weight vectors and one broadcast must fit the
// register file (32 AVX-512 registers: 6 x 4 + 4 + 1; 16 AVX2 registers: 2 x 4 + 4 + 1).
inline constexpr int kFusedTileRows = kFusedLanes == 16 ? 6 : 2;

// A unit's four saved blocks (the LSTM's i, f, g, o; the GRU's r, z, n, hn) for `count` units of
// a row whose blocks lie H apart, as the struct Blocks of four vectors, and back.
template <typename Blocks>
inline Blocks load_blocks(const float* row, int64_t H, int64_t count) {
  return Blocks{FusedVec::loadu(row, count), FusedVec::loadu(row + H, count), FusedVec::loadu(row + 2 * H, count),
                FusedVec::loadu(row + 3 * H, count)};
}

inline void store_blocks(float* row, int64_t H, int64_t count, const FusedVec& a, const FusedVec& b,
                         const FusedVec& c, const FusedVec& d) {
  a.store(row, count);
  b.store(row + H, count);
  c.store(row + 2 * H, count);
  d.store(row + 3 * H, count);
}

// Elements of T that one packed k step holds per lane: 1 for float, a pair for bfloat16.
template <typename T>
inline constexpr int64_t kPackedPair = std::is_same_v<T, c10::BFloat16> ? 2 : 1;

// K rounded up to whole pairs: a packed panel's k steps times kPackedPair<T>.
template <typename T>
inline int64_t packed_depth(int64_t K) {
  return (K + kPackedPair<T> - 1) / kPackedPair<T> * kPackedPair<T>;
}

// `count` lanes of v into p: float, or (with the BF16 extension) bfloat16 rounded to nearest
// even, as c10::BFloat16 rounds.
inline void store_lanes(const FusedVec& v, float* p, int64_t count) {
  v.store(p, count);
}

#if defined(LSTM_EXT_FUSED_BF16)
inline void store_lanes(const FusedVec& v, c10::BFloat16* p, int64_t count) {
  const __m256i bits = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
  _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << count) - 1), bits);
}
#endif

// One part of a tile's K dimension: rows of A (row stride lda) against a packed panel [K][N][L]
// ([K / 2][N][L][2] for bfloat16).
template <typename T>
struct KSegmentOf {
  const T* a;
  int64_t lda;
  const T* panel;
  int64_t K;
};
using KSegment = KSegmentOf<float>;

// acc[R][N] += A[R, 0:K] @ panel[0:K, N * L]: every entry of A broadcast against the N vectors
// of its k; no horizontal sums, and the R x N accumulators stay in registers for all of K.
template <int R, int N>
inline void accumulate_tile(const KSegment& seg, FusedVec (&acc)[R][N]) {
  constexpr int64_t ldp = int64_t{N} * kFusedLanes;
  for (int64_t k = 0; k < seg.K; ++k) {
    FusedVec w[N];
    for (int c = 0; c < N; ++c) w[c] = FusedVec::loadu(seg.panel + k * ldp + c * kFusedLanes);
    for (int r = 0; r < R; ++r) {
      const FusedVec a(seg.a[r * seg.lda + k]);
      for (int c = 0; c < N; ++c) acc[r][c] = at::vec::fmadd(a, w[c], acc[r][c]);
    }
  }
}

#if defined(LSTM_EXT_FUSED_BF16)
// acc[R][N] += A[R, 0:K] @ panel for bfloat16 A and panel, in float: each pair of A's entries
// broadcast as one 32-bit lane against the N pair vectors of its k step (vdpbf16ps multiplies and
// adds both products of a pair at once). An odd K's last entry pairs with a zero, so the row's
// next element (maybe past its end) is never read.
template <int R, int N>
inline void accumulate_tile(const KSegmentOf<c10::BFloat16>& seg, FusedVec (&acc)[R][N]) {
  constexpr int64_t ldp = int64_t{N} * kFusedLanes * 2;
  const int64_t pairs = seg.K / 2;
  const auto step = [&](int64_t k2, const auto& pair_of_row) {
    __m512i w[N];
    for (int c = 0; c < N; ++c) w[c] = _mm512_loadu_si512(seg.panel + k2 * ldp + c * kFusedLanes * 2);
    for (int r = 0; r < R; ++r) {
      const __m512i a = _mm512_set1_epi32(pair_of_row(r));
      for (int c = 0; c < N; ++c) {
        acc[r][c] = _mm512_dpbf16_ps(acc[r][c], reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(w[c]));
      }
    }
  };
  for (int64_t k2 = 0; k2 < pairs; ++k2) {
    step(k2, [&](int r) {
      int32_t pair;
      std::memcpy(&pair, seg.a + r * seg.lda + 2 * k2, sizeof(pair));
      return pair;
    });
  }
  if (seg.K % 2 != 0) step(pairs, [&](int r) { return int32_t{seg.a[r * seg.lda + seg.K - 1].x}; });
}
#endif

// One tile of exactly R rows over K = [input | hidden], then epilogue(r, acc[r]) per row.
template <int R, int N, typename Segment, typename Epilogue>
inline void fused_tile(const Segment& input, const Segment& hidden, const Epilogue& epilogue) {
  FusedVec acc[R][N];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < N; ++c) acc[r][c] = FusedVec(0.f);
  }
  accumulate_tile<R, N>(input, acc);
  accumulate_tile<R, N>(hidden, acc);
  for (int r = 0; r < R; ++r) epilogue(r, acc[r]);
}

// A tile of 1 <= rows <= R rows: one instantiation per row count, so a short tile keeps its
// accumulators in registers too.
template <int R, int N, typename Segment, typename Epilogue>
inline void fused_tile_rows(int64_t rows, const Segment& input, const Segment& hidden, const Epilogue& epilogue) {
  if constexpr (R > 1) {
    if (rows < R) return fused_tile_rows<R - 1, N>(rows, input, hidden, epilogue);
  }
  fused_tile<R, N>(input, hidden, epilogue);
}

// Block `block` of w [N * H, K] into panel [K][N][L] (its own block's place in a packed
// [blocks][K][N][L]); units past H are zero, so the last block's spare lanes compute zeros.
// bfloat16: [K / 2][N][L][2], an odd K's last pair completed with zeros.
template <int N, typename T>
inline void pack_gate_block(const T* w, int64_t H, int64_t K, int64_t block, T* packed) {
  constexpr int64_t P = kPackedPair<T>;
  const int64_t depth = packed_depth<T>(K);
  T* panel = packed + block * depth * N * kFusedLanes;
  for (int64_t k = 0; k < depth; ++k) {
    for (int g = 0; g < N; ++g) {
      for (int64_t l = 0; l < kFusedLanes; ++l) {
        const int64_t u = block * kFusedLanes + l;
        panel[((k / P * N + g) * kFusedLanes + l) * P + k % P] = u < H && k < K ? w[(g * H + u) * K + k] : T(0.f);
      }
    }
  }
}

// The bias [N * H] (or none: zeros) of block `block` into [N][L], in a packed [blocks][N][L].
template <int N>
inline void pack_bias_block(const float* bias, int64_t H, int64_t block, float* packed) {
  float* dst = packed + block * N * kFusedLanes;
  for (int g = 0; g < N; ++g) {
    for (int64_t l = 0; l < kFusedLanes; ++l) {
      const int64_t u = block * kFusedLanes + l;
      dst[g * kFusedLanes + l] = bias != nullptr && u < H ? bias[g * H + u] : 0.f;
    }
  }
}

// Floats of packed weights (in T) and bias (in float) one call needs (the `packed` scratch of
// FusedWalkOf<T>).
template <typename T = float>
inline int64_t fused_packed_floats(int64_t gates, int64_t I, int64_t H) {
  const int64_t blocks = (H + kFusedLanes - 1) / kFusedLanes;
  const int64_t weights = blocks * gates * kFusedLanes * (packed_depth<T>(I) + packed_depth<T>(H));
  return weights * static_cast<int64_t>(sizeof(T)) / static_cast<int64_t>(sizeof(float)) + blocks * gates * kFusedLanes;
}

// The walk: per step, per unit block of its own, tiles of rows; epilogue_at(off, row, u0, bias,
// h_prev) makes the epilogue of the tile whose first row is `row` of the step at `off`, whose
// units start at u0, whose packed bias is bias [N][L], and whose rows' h_{t-1} start at h_prev
// (row stride H, unit 0). N gate blocks per unit.
template <int N, typename T, typename EpilogueAt>
void fused_forward_walk(const FusedWalkOf<T>& w, const EpilogueAt& epilogue_at) {
  constexpr int R = kFusedTileRows;
  constexpr int64_t L = kFusedLanes;
  const LayerShape& s = *w.shape;
  const int64_t H = s.H, I = s.I, blocks = (H + L - 1) / L;
  const int64_t depth_ih = packed_depth<T>(I), depth_hh = packed_depth<T>(H);
  T* const packed_ih = reinterpret_cast<T*>(w.packed);
  T* const packed_hh = packed_ih + blocks * depth_ih * N * L;
  // after the weights: a whole number of floats, as L is even
  float* const packed_bias = reinterpret_cast<float*>(packed_hh + blocks * depth_hh * N * L);
  const FusedPartition part = plan_fused_partition(s.B, 2 * s.B * N * H * (I + H));

  const auto pack = [&](int64_t b0, int64_t b1) {
    for (int64_t j = b0; j < b1; ++j) {
      pack_gate_block<N>(w.w_ih, H, I, j, packed_ih);
      pack_gate_block<N>(w.w_hh, H, H, j, packed_hh);
      pack_bias_block<N>(w.bias, H, j, packed_bias);
    }
  };
  // Rows [r0, r1) and unit blocks [b0, b1) of step t: rows below n_prev go on from the previous
  // step's output, the others (a reverse packed walk's new sequences) start from h0.
  const auto step = [&](int64_t t, int64_t r0, int64_t r1, int64_t b0, int64_t b1) {
    const int64_t n = s.rows[t], off = s.offset[t];
    const int64_t prev = previous_step(t, s.T, w.reverse);
    const int64_t n_prev = rows_with_previous(s, t, prev);
    const T* const h_prev = prev < 0 ? w.h0 : w.out + s.offset[prev] * H;
    for (int64_t j = b0; j < b1; ++j) {
      const T* const panel_ih = packed_ih + j * depth_ih * N * L;
      const T* const panel_hh = packed_hh + j * depth_hh * N * L;
      const auto tiles = [&](int64_t begin, int64_t end, const T* h_rows) {
        for_equal_parts(begin, end, R, [&](int64_t row, int64_t rows) {
          const KSegmentOf<T> input{w.x + (off + row) * I, I, panel_ih, I};
          const KSegmentOf<T> hidden{h_rows + row * H, H, panel_hh, H};
          fused_tile_rows<R, N>(rows, input, hidden,
                                epilogue_at(off, row, j * L, packed_bias + j * N * L, h_rows + row * H));
        });
      };
      tiles(r0, std::min({r1, n, n_prev}), h_prev);
      tiles(std::max(r0, n_prev), std::min(r1, n), w.h0);
    }
  };

  if (part.split_rows) {
    // Each member owns rows [r0, r1) of every step and packs its share of the blocks; one
    // meeting once everything is packed, none in the walk.
    run_fused_team(part.threads, s.B, 1, [&](int64_t r0, int64_t r1, int64_t owned, StepBarrier& barrier) {
      int64_t generation = 0;
      const bool packed_ok = barrier.step(owned, generation, [&] { pack(blocks * r0 / s.B, blocks * r1 / s.B); });
      if (!packed_ok) return;
      barrier.guard([&] {
        for (int64_t k = 0; k < s.T; ++k) {
          const int64_t t = w.reverse ? s.T - 1 - k : k;
          step(t, r0, r1, 0, blocks);
        }
      });
    });
    return;
  }
  // Each member owns whole blocks of units for every row; it packs only its own blocks, and the
  // members meet once per step, before anyone reads the h_t the others wrote.
  run_fused_team(part.threads, H, L, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t b0 = u0 / L, b1 = (u1 + L - 1) / L;
    barrier.guard([&] { pack(b0, b1); });
    int64_t generation = 0;
    for (int64_t k = 0; k < s.T; ++k) {
      const int64_t t = w.reverse ? s.T - 1 - k : k;
      if (s.rows[t] == 0) continue;
      if (!barrier.step(owned, generation, [&] { step(t, 0, s.rows[t], b0, b1); })) break;
    }
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
