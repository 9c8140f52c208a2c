// The outer-product kernel (outer_product.h), included once per CPU capability by
// outer_product_{avx2,avx512}.cpp after capability_avx2.h or capability_avx512.h, so the code
// lives in namespace lstm_ext::cpu::CPU_CAPABILITY and runs on that capability's
// at::vec::Vectorized<float>.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/cpu/gemm/outer_product.h"
#include "runtime/cpu/grain.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

using OuterVec = at::vec::Vectorized<float>;
inline constexpr int64_t kOuterLanes = OuterVec::size();
// Rows x vectors of the register tile, with the vectors of one b row and a broadcast beside
// them: 6 x 4 + 4 + 1 of AVX-512's 32 registers, 4 x 3 + 3 + 1 of AVX2's 16.
inline constexpr int kOuterRows = kOuterLanes == 16 ? 6 : 4;
inline constexpr int kOuterVectors = kOuterLanes == 16 ? 4 : 3;
// Rows k per pass over out: one pass's b panel (k rows x one tile's columns) stays in L1 while
// every row tile of out runs over it.
inline constexpr int64_t kOuterChunk = 128;

// A chunk of rows k of one term, packed so that the tile reads both operands in order: for each
// row tile of out, its columns of a as [k][rows]; for each group of vectors of out's columns,
// b as [k][vectors * L], zero past C. Read straight from a and b, a chunk's rows lie a row
// stride apart (4 KiB for a at H = 256), so they share L1 sets and evict each other.
struct OuterChunk {
  std::vector<float> a;  // [M][k] in row tiles: tile at m0 holds [k][rows] from m0 * k
  std::vector<float> b;  // [groups][k][vectors * L]: group at vector v0 from v0 * L * k
  int64_t k;
};

// out[m0 + r, c0 + ...] for R rows x V vectors (the last with `tail` lanes) over a packed chunk.
template <int R, int V>
inline void outer_tile(const OuterBlock& o, const OuterChunk& chunk, int64_t m0, int64_t v0, int64_t tail,
                       bool overwrite) {
  constexpr int64_t L = kOuterLanes;
  float* const out = o.out + m0 * o.C + v0 * L;
  const float* a = chunk.a.data() + m0 * chunk.k;
  const float* b = chunk.b.data() + v0 * L * chunk.k;
  // Each chunk sums into zeros and then into out: a two-level sum, whose rounding grows with the
  // chunk's rows plus the number of chunks, not with all the rows.
  OuterVec acc[R][V];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) acc[r][v] = OuterVec(0.f);
  }
  for (int64_t k = 0; k < chunk.k; ++k, a += R, b += V * L) {
    OuterVec w[V];
    for (int v = 0; v < V; ++v) w[v] = OuterVec::loadu(b + v * L);
    for (int r = 0; r < R; ++r) {
      const OuterVec x(a[r]);
      for (int v = 0; v < V; ++v) acc[r][v] = at::vec::fmadd(x, w[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < V; ++v) {
      const int64_t count = v == V - 1 ? tail : L;
      float* const dst = out + r * o.C + v * L;
      (overwrite ? acc[r][v] : acc[r][v] + OuterVec::loadu(dst, count)).store(dst, count);
    }
  }
}

// One instantiation per (rows, vectors), so a short tile keeps its accumulators in registers.
template <int R, int V>
inline void outer_tile_of(int rows, int vectors, const OuterBlock& o, const OuterChunk& chunk, int64_t m0,
                          int64_t v0, int64_t tail, bool overwrite) {
  if constexpr (R > 1) {
    if (rows < R) return outer_tile_of<R - 1, V>(rows, vectors, o, chunk, m0, v0, tail, overwrite);
  }
  if constexpr (V > 1) {
    if (vectors < V) return outer_tile_of<R, V - 1>(rows, vectors, o, chunk, m0, v0, tail, overwrite);
  }
  outer_tile<R, V>(o, chunk, m0, v0, tail, overwrite);
}

// Rows [k0, k0 + chunk.k) of the term into the chunk, in the tiles and groups of run_outer_block.
inline void pack_outer_chunk(const OuterBlock& o, int64_t k0, int64_t vectors, OuterChunk& chunk) {
  constexpr int64_t L = kOuterLanes;
  const OuterTerm& t = o.term;
  const int64_t K = chunk.k;
  for_equal_parts(0, o.M, kOuterRows, [&](int64_t m0, int64_t rows) {
    float* const dst = chunk.a.data() + m0 * K;
    // One masked vector per row k (rows <= kOuterRows < L): copied a float at a time, the
    // packing was a large share of a narrow product's time (docs/performance.md, the weight
    // gradients).
    for (int64_t k = 0; k < K; ++k) {
      OuterVec::loadu(t.a + (k0 + k) * t.lda + m0, rows).store(dst + k * rows, rows);
    }
  });
  for_equal_parts(0, vectors, kOuterVectors, [&](int64_t v0, int64_t v) {
    float* const dst = chunk.b.data() + v0 * L * K;
    const int64_t c0 = v0 * L, width = v * L, used = std::min(width, o.C - c0);
    for (int64_t k = 0; k < K; ++k) {
      const float* const src = t.b + (k0 + k) * t.ldb + c0;
      std::copy(src, src + used, dst + k * width);
      std::fill(dst + k * width + used, dst + (k + 1) * width, 0.f);
    }
  });
}

inline void run_outer_block(const OuterBlock& o) {
  constexpr int64_t L = kOuterLanes;
  const int64_t vectors = (o.C + L - 1) / L;
  OuterChunk chunk;
  chunk.a.resize(static_cast<size_t>(o.M * kOuterChunk));
  chunk.b.resize(static_cast<size_t>(vectors * L * kOuterChunk));
  bool overwrite = o.overwrite;
  for (int64_t k0 = o.k0; k0 < o.k1; k0 += kOuterChunk) {
    chunk.k = std::min(o.k1 - k0, kOuterChunk);
    pack_outer_chunk(o, k0, vectors, chunk);
    // Column groups outermost: one group's b panel serves every row tile of out.
    for_equal_parts(0, vectors, kOuterVectors, [&](int64_t v0, int64_t v) {
      const int64_t tail = std::min(L, o.C - (v0 + v - 1) * L);
      for_equal_parts(0, o.M, kOuterRows, [&](int64_t m0, int64_t rows) {
        outer_tile_of<kOuterRows, kOuterVectors>(static_cast<int>(rows), static_cast<int>(v), o, chunk, m0, v0, tail,
                                                 overwrite);
      });
    });
    overwrite = false;
  }
}

// This capability's kernel (outer_product.h).
OuterKernel outer_product_block() {
  return &run_outer_block;
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
