// The row product's kernels (row_product.h): fused_backward_impl.h's tile over packed unit
// groups, included once per CPU capability by row_product_{avx2,avx512}.cpp.
#pragma once

#include "runtime/cpu/fused_backward_impl.h"
#include "runtime/cpu/row_product/row_product.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

RowProductKernels row_product_kernels() {
  return {&row_product_packed_floats, &pack_row_product_share, &product_rows};
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
