#include "runtime/cpu/gemm/column_dot.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace lstm_ext {
namespace cpu {

at::Tensor column_dot(const at::Tensor& a, const at::Tensor& b, const at::Tensor& row_shift,
                      const at::Tensor& row_scale) {
  TORCH_CHECK(a.dim() == 2 && a.sizes() == b.sizes() && a.stride(1) == 1 && b.stride(1) == 1,
              "column_dot: expected two [rows, cols] tensors of unit column stride, got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(row_shift.defined() == row_scale.defined(), "column_dot: expected row_shift and row_scale together");
  const int64_t rows = a.size(0), cols = a.size(1);
  at::Tensor out = at::empty({cols}, a.options());
  // Each thread walks its own rows front to back (a column-block walk touches a new page every
  // row) into its own row of partial sums, added up at the end.
  const int64_t threads = at::get_num_threads();
  std::vector<double> partial(static_cast<size_t>(threads * cols), 0.0);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstm_ext_column_dot", [&] {
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    const scalar_t* shift = row_shift.defined() ? row_shift.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* scale = row_scale.defined() ? row_scale.const_data_ptr<scalar_t>() : nullptr;
    const int64_t sa = a.stride(0), sb = b.stride(0);
    const int64_t s_shift = shift ? row_shift.stride(0) : 0, s_scale = scale ? row_scale.stride(0) : 0;
    at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, cols)),
                     [&](int64_t begin, int64_t end) {
      double* acc = partial.data() + at::get_thread_num() * cols;
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* ra = pa + r * sa;
        const scalar_t* rb = pb + r * sb;
        if (shift) {
          const double m = shift[r * s_shift], s = scale[r * s_scale];
          for (int64_t j = 0; j < cols; ++j) acc[j] += double(ra[j]) * ((double(rb[j]) - m) * s);
        } else {
          for (int64_t j = 0; j < cols; ++j) acc[j] += double(ra[j]) * double(rb[j]);
        }
      }
    });
    scalar_t* po = out.data_ptr<scalar_t>();
    for (int64_t j = 0; j < cols; ++j) {
      double sum = 0;
      for (int64_t t = 0; t < threads; ++t) sum += partial[t * cols + j];
      po[j] = static_cast<scalar_t>(sum);
    }
  });
  return out;
}

}  // namespace cpu
}  // namespace lstm_ext
