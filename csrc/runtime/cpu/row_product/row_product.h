// Products of whole rows on the fused step's register tile (fused_backward_impl.h's tile over
// packed unit groups), for a caller that owns some rows and needs every column of them: a walk
// whose threads split the batch, where each member multiplies its own rows and so never waits
// for another (the variants whose step needs a whole row: lstm_variants/cpu/row_variant_layer.h),
// and the fused LSTM backward's input gradient after its walk.
#pragma once

#include <cstdint>
#include <optional>

namespace lstm_ext {
namespace cpu {

// out[r, 0:cols] = (accumulate ? out[r, 0:cols] : 0) + bias + [a[r] | tail[r]] @ W for `rows`
// rows, where W [ka + k_tail, cols] was packed by RowProductKernels::pack. Every row pointer is
// at the first row.
struct RowProduct {
  const float* packed;  // W, packed
  int64_t cols;
  const float* a;       // [rows, ka], row stride lda
  int64_t lda, ka;
  const float* tail;    // [rows, k_tail], row stride ld_tail: W's last k_tail rows; k_tail 0: none
  int64_t ld_tail, k_tail;
  const float* bias;    // [cols], or null
  bool accumulate;
  float* out;           // [rows, cols], row stride ldo
  int64_t ldo;
};

// One capability's copy of the row product's kernels.
struct RowProductKernels {
  // Floats of the packed W [K, cols].
  int64_t (*packed_floats)(int64_t K, int64_t cols);
  // Packs share [part_begin, part_end) of `parts` of W [K, cols] (row-major): callers that pack
  // disjoint shares together pack all of it once.
  void (*pack)(const float* w, int64_t K, int64_t cols, int64_t part_begin, int64_t part_end, int64_t parts,
               float* packed);
  void (*product)(const RowProduct& p, int64_t rows);
};

// Each capability's copy (row_product_impl.h, by row_product_{avx2,avx512}.cpp).
namespace AVX2 {
RowProductKernels row_product_kernels();
}
namespace AVX512 {
RowProductKernels row_product_kernels();
}

// This CPU's copy, or none where the fused step has no kernels (fused_step.h).
std::optional<RowProductKernels> row_product_kernels_here();

}  // namespace cpu
}  // namespace lstm_ext
