// Registers the LSTM's CPU kernels: the four ops of runtime/layer_ops.h; each kernel picks the
// fused step or the plain loop (fused_layer.h).
#include <torch/library.h>

#include "lstm/cpu/fused_layer.h"
#include "lstm/cpu/lstm_layer.h"
#include "lstm/lstm_cell.h"
#include "runtime/layer_ops.h"

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  using namespace lstm_ext;
  register_layer_ops<kLstmCell, &cpu::lstm_layer_forward, &layer_backward<cpu::LstmBackend>>(m);
}
