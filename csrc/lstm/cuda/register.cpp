// Registers the LSTM's CUDA kernels: the four ops of runtime/layer_ops.h, with the same argument
// checks and LSTMCell-as-one-step mapping as the CPU's. Compiled by the host compiler, only in a
// build with LSTM_EXT_CUDA=1.
#include <torch/library.h>

#include "lstm/cuda/lstm_layer.h"
#include "lstm/lstm_cell.h"
#include "runtime/layer_ops.h"

TORCH_LIBRARY_IMPL(lstm_ext, CUDA, m) {
  using namespace lstm_ext;
  register_layer_ops<kLstmCell, &layer_forward<cuda::LstmBackend>, &layer_backward<cuda::LstmBackend>>(m);
}
