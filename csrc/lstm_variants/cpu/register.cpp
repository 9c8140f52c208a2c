// Registers the CPU kernels of the LSTM-variant ops, of their input projection and of their
// zoneout masks.
#include <torch/library.h>

#include "runtime/cpu/bernoulli_mask.h"
#include "runtime/cpu/linear.h"
#include "lstm_variants/cpu/lstm_variant_layer.h"

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  m.impl("lstm_variant_layer", &lstm_ext::cpu::lstm_variant_layer);
  m.impl("lstm_variant_layer_backward", &lstm_ext::cpu::lstm_variant_layer_backward);
  m.impl("linear", &lstm_ext::cpu::linear);
  m.impl("bernoulli_mask", &lstm_ext::cpu::bernoulli_mask);
}
