// Registers the CUDA kernels for every lstm_ext op. Compiled by the host compiler, only in a
// build with LSTM_EXT_CUDA=1. The ops' argument checks and the LSTMCell-as-one-step mapping
// are the CPU's, from op_wrappers.h.
#include <torch/library.h>

#include "lstm/cuda/lstm_layer.h"
#include "lstm/op_wrappers.h"

namespace {
struct CudaBackend {
  static constexpr auto layer_forward = &lstm_ext::cuda::layer_forward;
  static constexpr auto layer_backward = &lstm_ext::cuda::layer_backward;
};
}  // namespace

TORCH_LIBRARY_IMPL(lstm_ext, CUDA, m) {
  lstm_ext::register_ops<CudaBackend>(m);
}
