// runtime/transposed_product.h: the CPU's own kernel for float32, at::mm otherwise.
#include "runtime/transposed_product.h"

#include <ATen/ATen.h>

#include "runtime/cpu/gemm/outer_product.h"

namespace lstm_ext {

at::Tensor transposed_product(const std::vector<TransposedTerm>& terms) {
  TORCH_INTERNAL_ASSERT(!terms.empty());
  const at::Tensor& a0 = terms.front().first;
  const int64_t M = a0.size(1), C = terms.front().second.size(1);
  const bool own_kernel = a0.is_cpu() && a0.scalar_type() == at::kFloat && cpu::outer_product_kernel().has_value();
  if (own_kernel) {
    // The kernel reads rows with unit column stride; a term without one is copied first.
    const auto rows_of = [](const at::Tensor& t) { return t.size(1) <= 1 || t.stride(1) == 1 ? t : t.contiguous(); };
    std::vector<at::Tensor> kept;  // the copies, alive until the kernel has run
    kept.reserve(2 * terms.size());  // no reallocation: the references below stay valid
    std::vector<cpu::OuterTerm> rows;
    for (const auto& [a_in, b_in] : terms) {
      TORCH_INTERNAL_ASSERT(a_in.size(0) == b_in.size(0) && a_in.size(1) == M && b_in.size(1) == C);
      TORCH_INTERNAL_ASSERT(a_in.scalar_type() == at::kFloat && b_in.scalar_type() == at::kFloat);
      const at::Tensor& a = kept.emplace_back(rows_of(a_in));
      const at::Tensor& b = kept.emplace_back(rows_of(b_in));
      rows.push_back({a.const_data_ptr<float>(), a.stride(0), b.const_data_ptr<float>(), b.stride(0), a.size(0)});
    }
    at::Tensor out = at::empty({M, C}, a0.options());
    cpu::outer_product_sum(rows, M, C, out.data_ptr<float>());
    return out;
  }
  at::Tensor out = at::mm(a0.t(), terms.front().second);
  for (size_t i = 1; i < terms.size(); ++i) {
    if (terms[i].first.size(0) > 0) out.addmm_(terms[i].first.t(), terms[i].second);
  }
  return out;
}

}  // namespace lstm_ext
