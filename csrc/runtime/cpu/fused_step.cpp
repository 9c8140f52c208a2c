// The fused step's capability-independent parts (fused_step.h).
#include "runtime/cpu/fused_step.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstring>

#include "runtime/cpu/gemm/small_gemm.h"
#include "runtime/cpu/row_product/row_product.h"
#include "runtime/cpu/switches.h"
#include "runtime/layer_steps.h"

namespace lstm_ext {
namespace cpu {
namespace {

// Below this many flops per step a second thread costs more in waking and meeting than it
// saves (docs/performance.md, the fused step).
constexpr int64_t kFusedMinTeamFlops = 300 << 10;
// Rows per thread from which each thread owns whole rows: two AVX-512 row tiles each.
constexpr int64_t kFusedRowsPerThread = 12;
// fused_input_first: at most this many rows (measured in docs/performance.md, "The fused step").
constexpr int64_t kInputFirstMaxRows = 2;

}  // namespace

bool fused_step_enabled() {
  return switch_on("LSTM_EXT_FUSED_STEP");
}

bool fused_step_applies(const LayerShape& s, bool forward) {
  const bool streaming_step = !s.packed && s.T == 1 && s.B <= kSmallGemmRows;
  return !(forward && streaming_step) && s.N > 0 && s.H > 0 && fused_step_enabled();
}

bool fused_input_first(const LayerShape& s) {
  return s.B <= kInputFirstMaxRows;
}

FusedPartition plan_fused_partition(int64_t B, int64_t flops_per_step) {
  const int64_t threads = at::get_num_threads();
  // Nested in a parallel region, or where at::parallel_for cannot promise every member a thread
  // of its own at once (step_team.h), the caller walks alone.
  if (threads < 2 || !kTeamAvailable || at::in_parallel_region() || flops_per_step < kFusedMinTeamFlops) {
    return {1, true};
  }
  return {threads, B >= kFusedRowsPerThread * threads};
}

template <typename T>
void copy_final_hidden(const LayerShape& s, bool reverse, const T* out, T* h_state) {
  // Rows [n_next, n) of a step are not active at the step walked next, so this step was their
  // last: a forward walk's prefixes shrink; a reverse walk's grow, so its last step has them all.
  int64_t n_next = 0;
  for (int64_t k = 0; k < s.T; ++k) {  // the walk backwards: the last step walked first
    const int64_t t = reverse ? k : s.T - 1 - k;
    const int64_t n = s.rows[t];
    if (n > n_next) {
      std::memcpy(h_state + n_next * s.H, out + (s.offset[t] + n_next) * s.H, (n - n_next) * s.H * sizeof(T));
    }
    n_next = std::max(n_next, n);
  }
}

std::optional<RowProductKernels> row_product_kernels_here() {
  return LSTM_EXT_FUSED_KERNELS_HERE(row_product_kernels);
}

template void copy_final_hidden(const LayerShape&, bool, const float*, float*);
template void copy_final_hidden(const LayerShape&, bool, const c10::BFloat16*, c10::BFloat16*);

}  // namespace cpu
}  // namespace lstm_ext
