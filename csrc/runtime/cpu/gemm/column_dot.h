// Column sums of a product, for the gain gradients of the variants (peephole, layer norm):
// sum over rows of a * b, without the [rows, cols] product that (a * b).sum(0) allocates and
// writes (26 MB for the recurrent layer norm's gain at T100 B64 H256, one more pass over it).
#pragma once

#include <ATen/core/Tensor.h>

namespace lstm_ext {
namespace cpu {

// a, b [rows, cols] with unit column stride (row strides may differ: narrowed views do).
// With row_shift and row_scale ([rows] views, any stride), b's row r counts as
// (b[r] - row_shift[r]) * row_scale[r]. Returns [cols] in a's dtype, summed in double.
at::Tensor column_dot(const at::Tensor& a, const at::Tensor& b, const at::Tensor& row_shift = at::Tensor(),
                      const at::Tensor& row_scale = at::Tensor());

}  // namespace cpu
}  // namespace lstm_ext
