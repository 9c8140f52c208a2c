// outer_product.h's threading (the rows k of every term, split across threads), and the CPU's
// transposed_product kernel on it (runtime/transposed_product.h).
#include "runtime/cpu/gemm/outer_product.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "runtime/cpu/capability.h"
#include "runtime/transposed_product.h"

namespace lstm_ext {
namespace cpu {
namespace {

// Rows k per thread below which a second thread costs more than it saves (a buffer of out to
// add up, and a wake-up).
constexpr int64_t kOuterMinRowsPerThread = 256;

}  // namespace

std::optional<OuterKernel> outer_product_kernel() {
#if defined(__x86_64__)
  switch (cpu_capability()) {
    case Capability::AVX512: return AVX512::outer_product_block();
    case Capability::AVX2: return AVX2::outer_product_block();
    default: break;
  }
#endif
  return std::nullopt;
}

void outer_product_sum(const std::vector<OuterTerm>& terms, int64_t M, int64_t C, float* out) {
  const OuterKernel kernel = *outer_product_kernel();
  int64_t K = 0;
  for (const OuterTerm& t : terms) K += t.K;
  const int64_t parts = std::clamp<int64_t>(K / kOuterMinRowsPerThread, 1,
                                            at::in_parallel_region() ? 1 : at::get_num_threads());
  // Part p sums rows [K * p / parts, K * (p + 1) / parts) of the terms laid end to end, into
  // out (part 0) or a buffer of its own; a fixed split, so a result depends only on the number
  // of threads.
  std::vector<float> partial(static_cast<size_t>((parts - 1) * M * C));
  const auto run_part = [&](int64_t p) {
    float* const dst = p == 0 ? out : partial.data() + (p - 1) * M * C;
    const int64_t begin = K * p / parts, end = K * (p + 1) / parts;
    bool overwrite = true;
    int64_t first = 0;  // the first row of the term, in rows laid end to end
    for (const OuterTerm& t : terms) {
      const int64_t k0 = std::max(begin, first) - first, k1 = std::min(end, first + t.K) - first;
      if (k0 < k1) {
        kernel(OuterBlock{t, k0, k1, M, C, dst, overwrite});
        overwrite = false;
      }
      first += t.K;
    }
    if (overwrite) std::fill(dst, dst + M * C, 0.f);  // no rows of its own
  };
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) run_part(p);
  });
  // Every part's buffer into out, rows of out split across threads.
  if (parts > 1) {
    at::parallel_for(0, M * C, 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t p = 1; p < parts; ++p) {
        const float* const src = partial.data() + (p - 1) * M * C;
        for (int64_t i = i0; i < i1; ++i) out[i] += src[i];
      }
    });
  }
}

namespace {

// float32 on a CPU with the kernel; otherwise undefined, and transposed_product runs at::mm.
at::Tensor cpu_transposed_product(const std::vector<TransposedTerm>& terms) {
  const at::Tensor& a0 = terms.front().first;
  if (a0.scalar_type() != at::kFloat || !outer_product_kernel().has_value()) return at::Tensor();
  const int64_t M = a0.size(1), C = terms.front().second.size(1);
  // The kernel reads rows with unit column stride; a term without one is copied first.
  const auto rows_of = [](const at::Tensor& t) { return t.size(1) <= 1 || t.stride(1) == 1 ? t : t.contiguous(); };
  std::vector<at::Tensor> kept;  // the copies, alive until the kernel has run
  kept.reserve(2 * terms.size());  // no reallocation: the references below stay valid
  std::vector<OuterTerm> rows;
  for (const auto& [a_in, b_in] : terms) {
    TORCH_INTERNAL_ASSERT(a_in.size(0) == b_in.size(0) && a_in.size(1) == M && b_in.size(1) == C);
    TORCH_INTERNAL_ASSERT(a_in.scalar_type() == at::kFloat && b_in.scalar_type() == at::kFloat);
    const at::Tensor& a = kept.emplace_back(rows_of(a_in));
    const at::Tensor& b = kept.emplace_back(rows_of(b_in));
    rows.push_back({a.const_data_ptr<float>(), a.stride(0), b.const_data_ptr<float>(), b.stride(0), a.size(0)});
  }
  at::Tensor out = at::empty({M, C}, a0.options());
  outer_product_sum(rows, M, C, out.data_ptr<float>());
  return out;
}

// Registered when the library loads, before any op can run.
const bool kRegistered = (register_cpu_transposed_product(&cpu_transposed_product), true);

}  // namespace

}  // namespace cpu
}  // namespace lstm_ext
