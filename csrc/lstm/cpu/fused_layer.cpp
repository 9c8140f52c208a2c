// The LSTM's CPU fused step (fused_layer.h) where it applies, with its buffers and results laid
// out as the plain loop lays out its own.
#include "lstm/cpu/fused_layer.h"

#include <ATen/ATen.h>

#include <type_traits>

#include "lstm/cpu/lstm_layer.h"
#include "runtime/cpu/gemm/linear.h"
#include "runtime/forward_only.h"
#include "runtime/input_projection.h"

namespace lstm_ext {
namespace cpu {
namespace {

std::optional<FusedLstmKernels> fused_kernels_here() {
  return LSTM_EXT_FUSED_KERNELS_HERE(fused_lstm_kernels);
}

// One fused forward call in T (float, or bfloat16 on the BF16 extension); the gates, c and the
// saved tensors in float.
template <typename T>
LstmLayerResult fused_forward(int64_t (*packed_floats)(int64_t, int64_t),
                              void (*forward)(const FusedLstmForwardOf<T>&), const LayerShape& s,
                              const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                              const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                              const std::optional<at::Tensor>& b_hh, bool reverse) {
  // The input projection runs inside the step's tile (a second K segment against the packed
  // W_ih), so there is no [N, 4H] pre-activation buffer and no GEMM before the loop; with a row
  // or two, one GEMM before the loop instead (fused_input_first), its result added by the epilogue.
  const at::Tensor x = as_rows(input.contiguous(), s.I);
  const at::Tensor w_ih_c = w_ih.contiguous(), w_hh_c = w_hh.contiguous();
  const auto in_float = [](const std::optional<at::Tensor>& b) {
    return b.has_value() ? std::optional<at::Tensor>(b->to(at::kFloat)) : std::nullopt;
  };
  at::Tensor bias = summed_bias(in_float(b_ih), in_float(b_hh));  // summed in float, not rounded to T
  if (bias.defined()) bias = bias.contiguous();
  const at::TensorOptions float_options = input.options().dtype(at::kFloat);
  const at::Tensor output = at::empty(output_sizes(s), input.options());
  const at::Tensor h_state = h0.clone(at::MemoryFormat::Contiguous);
  const at::Tensor c_state = c0.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
  // Returned whatever happens, as the op's schema has them; written only when a backward may
  // read them (runtime/forward_only.h).
  const at::Tensor gates = at::empty({s.N, 4 * s.H}, float_options);
  const at::Tensor cells = at::empty({s.N, s.H}, float_options);
  const bool save = !ForwardOnlyGuard::active();
  at::Tensor xgates;
  LayerShape walk_shape = s;
  if (std::is_same_v<T, float> && fused_input_first(s)) {
    xgates = cpu::linear(x, w_ih_c, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
    walk_shape.I = 0;
  }
  const at::Tensor packed = at::empty({packed_floats(walk_shape.I, s.H)}, float_options);

  T* const out = output.data_ptr<T>();
  forward(FusedLstmForwardOf<T>{
      FusedWalkOf<T>{&walk_shape, reverse, x.const_data_ptr<T>(), w_ih_c.const_data_ptr<T>(),
                     w_hh_c.const_data_ptr<T>(),
                     bias.defined() ? bias.const_data_ptr<float>() : nullptr,
                     h_state.const_data_ptr<T>(),  // h0 until the walk is over
                     out, packed.data_ptr<float>()},
      xgates.defined() ? xgates.const_data_ptr<float>() : nullptr,
      c_state.data_ptr<float>(),
      save ? gates.data_ptr<float>() : nullptr,
      save ? cells.data_ptr<float>() : nullptr,
  });
  copy_final_hidden(s, reverse, out, h_state.data_ptr<T>());
  return {output, h_state, c_state.to(input.scalar_type()), gates, cells};
}

}  // namespace

bool fused_lstm_backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  const std::optional<FusedLstmKernels> kernel = fused_kernels_here();
  if (!kernel || b.dgates.scalar_type() != at::kFloat || s.has_proj || !fused_step_applies(s, /*forward=*/false)) {
    return false;
  }
  const at::Tensor packed = at::empty({kernel->backward_packed_floats(s.H)}, b.dgates.options());
  kernel->backward(FusedLstmBackward{
      FusedBackwardWalk{&s, reverse, b.w_hh.const_data_ptr<float>(), b.dgates.data_ptr<float>(),
                        /*dgates_last=*/nullptr, b.dh_state.data_ptr<float>(), need_state_grad,
                        packed.data_ptr<float>(), /*dh_direct=*/nullptr},
      b.gates.const_data_ptr<float>(),
      b.cells.const_data_ptr<float>(),
      b.c0.const_data_ptr<float>(),
      b.grad_out2d.const_data_ptr<float>(),
      b.dc_state.data_ptr<float>(),
  });
  if (b.need_input_grad) {
    b.dx = at::empty({s.N, s.I}, b.dgates.options());
    const at::Tensor packed_ih = at::empty({kernel->input_grad_packed_floats(s.I, s.H)}, b.dgates.options());
    kernel->input_grad(s, b.dgates.const_data_ptr<float>(), b.w_ih.const_data_ptr<float>(), packed_ih.data_ptr<float>(),
                       b.dx.data_ptr<float>());
  }
  return true;
}

LstmLayerResult lstm_layer_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0,
                                   const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                   const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                   const std::optional<at::Tensor>& w_hr, bool reverse) {
  const bool shape_fits = !s.has_proj && fused_step_applies(s, /*forward=*/true);
  if (shape_fits && input.scalar_type() == at::kFloat) {
    if (const std::optional<FusedLstmKernels> kernel = fused_kernels_here()) {
      return fused_forward<float>(kernel->forward_packed_floats, kernel->forward, s, input, h0, c0, w_ih, w_hh, b_ih,
                                  b_hh, reverse);
    }
  }
#if defined(__x86_64__)
  if (shape_fits && input.scalar_type() == at::kBFloat16 && cpu_has_avx512_bf16()) {
    const FusedLstmBf16Kernels kernel = AVX512_BF16::fused_lstm_bf16_kernels();
    return fused_forward<c10::BFloat16>(kernel.forward_packed_floats, kernel.forward, s, input, h0, c0, w_ih, w_hh,
                                        b_ih, b_hh, reverse);
  }
#endif
  return layer_forward<LstmBackend>(s, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse);
}

}  // namespace cpu
}  // namespace lstm_ext
