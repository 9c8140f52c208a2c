// Registers the CPU kernels for every lstm_ext GRU op.
#include <torch/library.h>

#include "gru/cpu/gru_layer.h"
#include "gru/gru_op_wrappers.h"

namespace {
struct CpuGruBackend {
  static constexpr auto gru_forward = &lstm_ext::cpu::gru_forward;
  static constexpr auto gru_backward = &lstm_ext::cpu::gru_backward;
};
using CpuGruOps = lstm_ext::GruOps<CpuGruBackend>;
}  // namespace

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  m.impl("gru_layer", &CpuGruOps::gru_layer);
  m.impl("gru_layer_backward", &CpuGruOps::gru_layer_backward);
  m.impl("gru_cell", &CpuGruOps::gru_cell);
  m.impl("gru_cell_backward", &CpuGruOps::gru_cell_backward);
}
