// The small-rows GEMM on tensors; the kernels are in small_gemm_impl.h.
#include "runtime/cpu/gemm/small_gemm.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace lstm_ext {
namespace cpu {

bool small_gemm_applies(const at::Tensor& rows, const at::Tensor& weight) {
  const at::ScalarType dtype = rows.scalar_type();
  return rows.size(0) <= kSmallGemmRows && (dtype == at::kFloat || dtype == at::kDouble) &&
         weight.scalar_type() == dtype && weight.is_contiguous() && rows.stride(-1) == 1;
}

template <typename scalar_t>
void run_small_gemm(const SmallGemm<scalar_t>& g, int64_t N) {
  // About 32k multiply-adds per task: a one-row step at H=64 stays on one thread, where
  // waking the pool would cost more than the arithmetic. Larger ones split (whether a streaming
  // H=256 step gains from the split is within noise: docs/performance.md).
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 15) / std::max<int64_t>(g.n * g.K, 1));
  const auto cols = small_gemm_kernels<scalar_t>().dot;
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) { cols(g, begin, end); });
}
template void run_small_gemm<float>(const SmallGemm<float>&, int64_t);
template void run_small_gemm<double>(const SmallGemm<double>&, int64_t);

template <typename scalar_t>
void run_small_gemm_kmajor(const SmallGemm<scalar_t>& g, int64_t N) {
  // Tasks of whole cache lines of columns (whole AVX-512 vectors), and of at least ~64k
  // multiply-adds: below that the pool's wake-up costs more than the product.
  constexpr int64_t L = 64 / sizeof(scalar_t);
  const int64_t blocks = (N + L - 1) / L;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(g.n * g.K * L, 1));
  const auto cols = small_gemm_kernels<scalar_t>().kmajor;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    cols(g, begin * L, std::min(end * L, N));
  });
}
template void run_small_gemm_kmajor<float>(const SmallGemm<float>&, int64_t);
template void run_small_gemm_kmajor<double>(const SmallGemm<double>&, int64_t);

void small_rows_gemm(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias1,
                     const at::Tensor& bias2, at::Tensor& out, bool accumulate) {
  const int64_t n = rows.size(0), K = rows.size(1), N = weight.size(0);
  const at::Tensor b1 = bias1.defined() ? bias1.contiguous() : bias1;
  const at::Tensor b2 = bias2.defined() ? bias2.contiguous() : bias2;
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "lstm_ext_small_rows_gemm", [&] {
    const SmallGemm<scalar_t> g{
        rows.const_data_ptr<scalar_t>(),
        rows.stride(0),
        n,
        K,
        weight.const_data_ptr<scalar_t>(),
        K,
        b1.defined() ? b1.const_data_ptr<scalar_t>() : nullptr,
        b2.defined() ? b2.const_data_ptr<scalar_t>() : nullptr,
        out.data_ptr<scalar_t>(),
        out.stride(0),
        accumulate,
    };
    run_small_gemm(g, N);
  });
}

}  // namespace cpu
}  // namespace lstm_ext
