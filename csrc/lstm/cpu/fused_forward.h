// The LSTM's CPU lstm_layer kernel: float32 forwards without a projection run the fused step
// (runtime/cpu/fused_step.h) on AVX2 and AVX-512 CPUs; everything else, and every call while
// LSTM_EXT_FUSED_STEP=0, runs layer_forward<LstmBackend> (lstm_layer.cpp). The backward reads
// the gates and cells the fused forward saves exactly as it reads the plain loop's.
#pragma once

#include <ATen/core/Tensor.h>

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

// One call of the fused forward kernel: the walk, and the LSTM's states.
struct FusedLstmForward {
  FusedWalk walk;
  float* c_state;  // [B, H]: c0 in, c_n out; each step reads and writes its rows in place
  float* saved_gates;  // [N, 4H] the activated i, f, g, o of every step, or null: not saved
  float* saved_cells;  // [N, H] c of every step, or null: not saved
};

// One capability's kernel, and the size of the packed-weight scratch it needs.
struct FusedLstmForwardKernel {
  int64_t (*packed_floats)(int64_t I, int64_t H);
  void (*run)(const FusedLstmForward&);
};

// Each capability's copy (fused_forward_impl.h, by fused_forward_{avx2,avx512}.cpp).
namespace AVX2 {
FusedLstmForwardKernel fused_lstm_forward_kernel();
}
namespace AVX512 {
FusedLstmForwardKernel fused_lstm_forward_kernel();
}

}  // namespace cpu
}  // namespace lstm_ext
