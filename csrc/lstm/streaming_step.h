// The hook for lstm_inference's fast path on one short step (T=1, a few rows): the CPU backend
// sets it (lstm/cpu/streaming_step.cpp); a build without the CPU kernels leaves it null.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace lstm_ext {

// x [1, B, I] time-major, h0 and c0 [L * D, B, H], weights as lstm_inference's. Returns
// (output [1, B, D * H], h_n, c_n), or nullopt for a call the fast path does not take (the
// general path then runs it, and raises the errors).
using StreamingStep = std::optional<std::vector<at::Tensor>> (*)(const at::Tensor& x, const at::Tensor& h0,
                                                                  const at::Tensor& c0, at::TensorList weights,
                                                                  bool has_biases, int64_t num_layers,
                                                                  int64_t directions);

StreamingStep& streaming_step_hook();

}  // namespace lstm_ext
