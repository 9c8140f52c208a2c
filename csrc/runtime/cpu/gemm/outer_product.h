// out [M, C] = sum over rows k of a[k, :]^T b[k, :], for a [K, M] and b [K, C] with contiguous
// rows, read where they lie: the weight gradients of a layer (runtime/transposed_product.h).
//
// Why not at::mm(a.t(), b): on this project's AMD machines MKL's sgemm takes its AVX2 path and
// runs at about 40% of the AVX-512 FMA peak, and a transposed copy for oneDNN costs as much as
// the product (docs/performance.md, the weight gradients). Here a register tile of rows of out x
// vectors of its columns takes each a[k, m] as a broadcast and each b[k, :] as vectors, so
// neither operand is copied.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace lstm_ext {
namespace cpu {

// The rows of one term: a [K, M] (row stride lda) and b [K, C] (row stride ldb).
struct OuterTerm {
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  int64_t K;
};

// Rows [k0, k1) of one term, k0 < k1, into out [M, C] (row stride C):
// out = (overwrite ? 0 : out) + a^T b.
struct OuterBlock {
  OuterTerm term;
  int64_t k0, k1;
  int64_t M, C;
  float* out;
  bool overwrite;
};

using OuterKernel = void (*)(const OuterBlock&);

// This CPU's kernel, or none: AVX2 and AVX-512 only (the register tile is sized for them).
std::optional<OuterKernel> outer_product_kernel();

// out [M, C] = sum over the terms; split across threads by rows k, each thread summing into a
// buffer of its own, then added up. Needs outer_product_kernel().
void outer_product_sum(const std::vector<OuterTerm>& terms, int64_t M, int64_t C, float* out);

namespace AVX2 {
OuterKernel outer_product_block();
}
namespace AVX512 {
OuterKernel outer_product_block();
}

}  // namespace cpu
}  // namespace lstm_ext
