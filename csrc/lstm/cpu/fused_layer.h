// The LSTM's CPU lstm_layer kernels: float32 layers without a projection run the fused step
// (runtime/cpu/fused_step.h) on AVX2 and AVX-512 CPUs, forward and backward, and so do bfloat16
// forwards on AVX-512 CPUs with the BF16 extension (the tile multiplies bfloat16 pairs into
// float; the gates, c and the saved tensors stay in float, as the plain loop keeps them, and each
// h is rounded to bfloat16 once, as the plain loop's output is); everything else,
// and every call while LSTM_EXT_FUSED_STEP=0, runs the plain loop (lstm_layer.cpp). Both write
// and read the same saved gates and cells, so either backward serves either forward.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>

#include <optional>

#include "lstm/layer_host.h"
#include "runtime/cpu/fused_step.h"

namespace lstm_ext {
namespace cpu {

// layer_forward's contract (lstm/layer_host.h), for register_layer_ops.
LstmLayerResult lstm_layer_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0,
                                   const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                   const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                   const std::optional<at::Tensor>& w_hr, bool reverse);

// The backward time loop on the fused step, where it applies (LstmBackend::backward's
// contract); false: it does not, and the plain loop runs.
bool fused_lstm_backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad);

// One call of the fused forward kernel: the walk (input, weights and h in T), and the LSTM's
// states, in float.
template <typename T>
struct FusedLstmForwardOf {
  FusedWalkOf<T> walk;  // walk.shape->I = 0 where the input gates were made before the loop
  const float* xgates;  // [N, 4H] those input gates (i f g o, biases included), or null: x in the tile
  float* c_state;  // [B, H]: c0 in, c_n out; each step reads and writes its rows in place
  float* saved_gates;  // [N, 4H] the activated i, f, g, o of every step, or null: not saved
  float* saved_cells;  // [N, H] c of every step, or null: not saved
};
using FusedLstmForward = FusedLstmForwardOf<float>;

// One call of the fused backward kernel: the walk, and what the LSTM's gate math reads.
struct FusedLstmBackward {
  FusedBackwardWalk walk;  // walk.dgates: [N, 4H] the pre-activation gradients, written here
  const float* gates;      // [N, 4H] the saved activated gates
  const float* cells;      // [N, H] the saved c of every step
  const float* c0;         // [B, H]
  const float* grad_out;   // [N, H] the gradient of the output
  float* dc_state;         // [B, H]: the gradient of c_n in, of c0 out
};

// One capability's kernels, and the sizes of the packed-weight scratch they need.
struct FusedLstmKernels {
  int64_t (*forward_packed_floats)(int64_t I, int64_t H);
  void (*forward)(const FusedLstmForward&);
  int64_t (*backward_packed_floats)(int64_t H);
  void (*backward)(const FusedLstmBackward&);
  // dx = dgates @ W_ih after the backward walk, and the size of its packed W_ih
  int64_t (*input_grad_packed_floats)(int64_t I, int64_t H);
  void (*input_grad)(const LayerShape& s, const float* dgates, const float* w_ih, float* packed, float* dx);
};

// The bfloat16 forward, and the size of its packed-weight scratch.
struct FusedLstmBf16Kernels {
  int64_t (*forward_packed_floats)(int64_t I, int64_t H);
  void (*forward)(const FusedLstmForwardOf<c10::BFloat16>&);
};

// Each capability's copy (fused_layer_impl.h, by fused_layer_{avx2,avx512,avx512_bf16}.cpp).
namespace AVX2 {
FusedLstmKernels fused_lstm_kernels();
}
namespace AVX512 {
FusedLstmKernels fused_lstm_kernels();
}
namespace AVX512_BF16 {
FusedLstmBf16Kernels fused_lstm_bf16_kernels();
}

}  // namespace cpu
}  // namespace lstm_ext
