// Registers the CPU kernels of the LSTM-variant ops, of their input projection and of their
// zoneout masks. Each runs under NoAutocast, as every family's ops do (runtime/no_autocast.h).
#include <torch/library.h>

#include "runtime/cpu/bernoulli_mask.h"
#include "runtime/cpu/gemm/linear.h"
#include "lstm_variants/cpu/lstm_variant_layer.h"
#include "runtime/no_autocast.h"

using lstm_ext::WithoutAutocast;

TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) {
  m.impl("lstm_variant_layer", &WithoutAutocast<&lstm_ext::cpu::lstm_variant_layer>::call);
  m.impl("lstm_variant_layer_backward", &WithoutAutocast<&lstm_ext::cpu::lstm_variant_layer_backward>::call);
  m.impl("linear", &WithoutAutocast<&lstm_ext::cpu::linear>::call);
  m.impl("bernoulli_mask", &WithoutAutocast<&lstm_ext::cpu::bernoulli_mask>::call);
}
