// The LSTM's CPU backend: its time loops (lstm_layer.cpp) and input projections, for
// layer_forward / layer_backward in lstm/layer_host.h.
#pragma once

#include "lstm/layer_host.h"
#include "runtime/cpu/gemm/recurrent_gemm.h"

namespace lstm_ext {
namespace cpu {

struct LstmBackend {
  using DeviceGuard = NoDeviceGuard;
  // oneDNN's linear on a packed weight for large inputs, the small-rows GEMM for a step.
  static constexpr InputProjection forward_projection = &input_projection;
  static constexpr InputProjection input_grad_projection = &input_projection;
  static void forward(const LayerShape& s, bool reverse, ForwardBuffers& b);
  static void backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad);
};

}  // namespace cpu
}  // namespace lstm_ext
