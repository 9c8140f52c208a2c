// Registers the CPU kernels for every lstm_ext op.
#include <torch/library.h>

#include "lstm/cpu/lstm_layer.h"
#include "lstm/op_wrappers.h"

namespace {
struct CpuBackend {
  static constexpr auto layer_forward = &lstm_ext::cpu::layer_forward;
  static constexpr auto layer_backward = &lstm_ext::cpu::layer_backward;
};
}  // namespace

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  lstm_ext::register_ops<CpuBackend>(m);
}
