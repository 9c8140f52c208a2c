// lstm_inference's fast path on the CPU for one step of a few rows (a streaming step), float or
// double, without a projection. The general path spends more on per-op overhead than on the
// arithmetic: dozens of ATen ops for one layer (views, clones, copies, buffers, a dispatcher call per
// layer). This one allocates the three results and runs the same kernels (the small-rows GEMM,
// the forward pointwise pass) on raw pointers, so its results are the same bits. Only calls the
// general path would run on the small-rows GEMM come here; anything else returns nullopt.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lstm/cpu/pointwise.h"
#include "runtime/cpu/gemm/recurrent_gemm.h"
#include "runtime/cpu/gemm/small_gemm.h"
#include "lstm/streaming_step.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

bool is(const Tensor& t, at::ScalarType dtype, c10::IntArrayRef sizes) {
  return t.defined() && t.is_cpu() && t.scalar_type() == dtype && t.sizes() == sizes;
}

// Shapes, dtypes and layouts the fast path needs; a call that fails any goes the general way.
bool applies(const Tensor& x, const Tensor& h0, const Tensor& c0, at::TensorList weights, bool has_biases,
             int64_t L, int64_t D) {
  const at::ScalarType dtype = x.scalar_type();
  if (!x.is_cpu() || (dtype != at::kFloat && dtype != at::kDouble) || x.dim() != 3 || x.size(0) != 1) return false;
  const int64_t B = x.size(1), per = has_biases ? 4 : 2;
  if (B < 1 || B > kSmallGemmRows || x.stride(2) != 1 || static_cast<int64_t>(weights.size()) != L * D * per) {
    return false;
  }
  if (weights[1].dim() != 2 || weights[1].size(0) % 4 != 0 || weights[1].size(0) == 0) return false;
  const int64_t H = weights[1].size(0) / 4;
  for (const Tensor* state : {&h0, &c0}) {
    if (!is(*state, dtype, {L * D, B, H}) || state->stride(2) != 1) return false;
  }
  for (int64_t index = 0; index < L * D; ++index) {
    const at::TensorList w = weights.slice(index * per, per);
    const int64_t I = index < D ? x.size(2) : D * H;
    if (!is(w[0], dtype, {4 * H, I}) || !is(w[1], dtype, {4 * H, H}) || !w[0].is_contiguous() ||
        !w[1].is_contiguous() || packs_weight(w[1], B)) {
      return false;
    }
    for (int64_t k = 2; k < per; ++k) {
      if (!is(w[k], dtype, {4 * H}) || !w[k].is_contiguous()) return false;
    }
  }
  return true;
}

template <typename scalar_t>
void run(const Tensor& x, const Tensor& h0, const Tensor& c0, at::TensorList weights, bool has_biases, int64_t L,
         int64_t D, Tensor& output, Tensor& h_n, Tensor& c_n) {
  const int64_t B = x.size(1), H = weights[1].size(0) / 4, per = has_biases ? 4 : 2;
  // Scratch kept per thread between calls: a step's pre-activations, and the outputs of the
  // layers below the last.
  thread_local std::vector<scalar_t> pre, below[2];
  pre.resize(static_cast<size_t>(B * 4 * H));
  const auto rows = lstm_row_kernels<scalar_t>().forward;
  const scalar_t* in = x.const_data_ptr<scalar_t>();
  int64_t ld_in = x.stride(1), I = x.size(2);
  for (int64_t l = 0; l < L; ++l) {
    std::vector<scalar_t>& buffer = below[l % 2];
    if (l + 1 < L) buffer.resize(static_cast<size_t>(B * D * H));
    scalar_t* out = l + 1 < L ? buffer.data() : output.data_ptr<scalar_t>();
    for (int64_t d = 0; d < D; ++d) {
      const int64_t index = l * D + d;
      const at::TensorList w = weights.slice(index * per, per);
      const scalar_t* b_ih = has_biases ? w[2].const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* b_hh = has_biases ? w[3].const_data_ptr<scalar_t>() : nullptr;
      run_small_gemm(SmallGemm<scalar_t>{in, ld_in, B, I, w[0].const_data_ptr<scalar_t>(), I, b_ih, b_hh, pre.data(),
                                         4 * H, /*accumulate=*/false},
                     4 * H);
      const scalar_t* h_prev = h0.const_data_ptr<scalar_t>() + index * h0.stride(0);
      run_small_gemm(SmallGemm<scalar_t>{h_prev, h0.stride(1), B, H, w[1].const_data_ptr<scalar_t>(), H, nullptr,
                                         nullptr, pre.data(), 4 * H, /*accumulate=*/true},
                     4 * H);
      scalar_t* c = c_n.data_ptr<scalar_t>() + index * B * H;
      scalar_t* h = h_n.data_ptr<scalar_t>() + index * B * H;
      const scalar_t* c_prev = c0.const_data_ptr<scalar_t>() + index * c0.stride(0);
      for (int64_t r = 0; r < B; ++r) std::memcpy(c + r * H, c_prev + r * c0.stride(1), H * sizeof(scalar_t));
      rows(ForwardStep<scalar_t>{H, pre.data(), nullptr, nullptr, c, h, nullptr}, 0, B);
      for (int64_t r = 0; r < B; ++r) std::memcpy(out + r * D * H + d * H, h + r * H, H * sizeof(scalar_t));
    }
    in = out;
    ld_in = D * H;
    I = D * H;
  }
}

std::optional<std::vector<Tensor>> streaming_step(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                                  at::TensorList weights, bool has_biases, int64_t L, int64_t D) {
  if (!applies(x, h0, c0, weights, has_biases, L, D)) return std::nullopt;
  const int64_t B = x.size(1), H = weights[1].size(0) / 4;
  Tensor output = at::empty({1, B, D * H}, x.options());
  Tensor h_n = at::empty({L * D, B, H}, x.options());
  Tensor c_n = at::empty({L * D, B, H}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_ext_streaming_step", [&] {
    run<scalar_t>(x, h0, c0, weights, has_biases, L, D, output, h_n, c_n);
  });
  return std::vector<Tensor>{output, h_n, c_n};
}

const bool registered = [] {
  streaming_step_hook() = &streaming_step;
  return true;
}();

}  // namespace
}  // namespace cpu
}  // namespace lstm_ext
