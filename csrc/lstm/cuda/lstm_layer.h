// The LSTM's CUDA backend: its time loops (lstm_layer.cu), for layer_forward / layer_backward in
// lstm/layer_host.h, which serve the CPU backend too.
#pragma once

#include <c10/cuda/CUDAGuard.h>

#include "lstm/layer_host.h"

namespace lstm_ext {
namespace cuda {

struct LstmBackend {
  using DeviceGuard = c10::cuda::CUDAGuard;
  // cuBLAS through ATen for both.
  static constexpr InputProjection forward_projection = &aten_input_projection;
  static constexpr InputProjection input_grad_projection = nullptr;
  static void forward(const LayerShape& s, bool reverse, ForwardBuffers& b);
  static void backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad);
};

}  // namespace cuda
}  // namespace lstm_ext
