// Registers the GRU's CPU kernels: the four ops of runtime/layer_ops.h.
#include <torch/library.h>

#include "gru/cpu/gru_layer.h"
#include "gru/gru_cell.h"
#include "runtime/layer_ops.h"

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  using namespace lstm_ext;
  register_layer_ops<kGruCell, &cpu::gru_forward, &cpu::gru_backward>(m);
}
