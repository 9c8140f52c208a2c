// Which calls run the GRU's fused step (fused_gru_layer.h).
#include "gru/cpu/fused_gru_layer.h"

namespace lstm_ext {
namespace cpu {

std::optional<FusedGruKernels> fused_gru_kernels_for(const LayerShape& s, at::ScalarType dtype, bool forward) {
  const bool applies =
      dtype == at::kFloat && (forward ? fused_step_applies(s) : s.N > 0 && s.H > 0 && fused_step_enabled());
  if (!applies) return std::nullopt;
  return LSTM_EXT_FUSED_KERNELS_HERE(fused_gru_kernels);
}

}  // namespace cpu
}  // namespace lstm_ext
