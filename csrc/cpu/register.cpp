// Registers the CPU kernels for every lstm_ext op.
#include <torch/library.h>

#include "cpu/lstm_layer.h"
#include "op_wrappers.h"

namespace {
struct CpuBackend {
  static constexpr auto layer_forward = &lstm_ext::cpu::layer_forward;
  static constexpr auto layer_backward = &lstm_ext::cpu::layer_backward;
};
using CpuOps = lstm_ext::Ops<CpuBackend>;
}  // namespace

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  m.impl("lstm_layer", &CpuOps::lstm_layer);
  m.impl("lstm_layer_backward", &CpuOps::lstm_layer_backward);
  m.impl("lstm_cell", &CpuOps::lstm_cell);
  m.impl("lstm_cell_backward", &CpuOps::lstm_cell_backward);
}
