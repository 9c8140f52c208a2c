// The environment switches the CPU kernels read, each to compare a path with the one it replaced:
// LSTM_EXT_FUSED_STEP (fused_step.h), LSTM_EXT_TEAM (step_team.h), LSTM_EXT_ONEDNN_GEMM
// (gemm/recurrent_gemm.cpp). Unset, or anything but "0", is on.
#pragma once

#include <cstdlib>
#include <string_view>

namespace lstm_ext {
namespace cpu {

inline bool switch_on(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr || std::string_view(value) != "0";
}

}  // namespace cpu
}  // namespace lstm_ext
