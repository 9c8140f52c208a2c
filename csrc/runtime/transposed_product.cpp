// runtime/transposed_product.h: the CPU's kernel where it applies, at::mm otherwise.
#include "runtime/transposed_product.h"

#include <ATen/ATen.h>

namespace lstm_ext {
namespace {

TransposedProductKernel& cpu_kernel() {
  static TransposedProductKernel kernel = nullptr;
  return kernel;
}

}  // namespace

void register_cpu_transposed_product(TransposedProductKernel kernel) {
  cpu_kernel() = kernel;
}

at::Tensor transposed_product(const std::vector<TransposedTerm>& terms) {
  TORCH_INTERNAL_ASSERT(!terms.empty());
  const at::Tensor& a0 = terms.front().first;
  if (a0.is_cpu() && cpu_kernel() != nullptr) {
    at::Tensor out = cpu_kernel()(terms);
    if (out.defined()) return out;
  }
  at::Tensor out = at::mm(a0.t(), terms.front().second);
  for (size_t i = 1; i < terms.size(); ++i) {
    if (terms[i].first.size(0) > 0) out.addmm_(terms[i].first.t(), terms[i].second);
  }
  return out;
}

}  // namespace lstm_ext
