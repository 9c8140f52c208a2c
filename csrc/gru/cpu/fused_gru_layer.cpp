// Which calls run the GRU's fused step (fused_gru_layer.h).
#include "gru/cpu/fused_gru_layer.h"

namespace lstm_ext {
namespace cpu {

std::optional<FusedGruKernels> fused_gru_kernels_for(const LayerShape& s, at::ScalarType dtype, bool forward) {
  if (dtype != at::kFloat || !fused_step_applies(s, forward)) return std::nullopt;
  return LSTM_EXT_FUSED_KERNELS_HERE(fused_gru_kernels);
}

}  // namespace cpu
}  // namespace lstm_ext
