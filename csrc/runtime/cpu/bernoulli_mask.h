// lstm_ext::bernoulli_mask on the CPU: the zoneout masks of the variants.
//
// torch's CPU bernoulli_ draws every entry from one mt19937 in sequence, serially, and the two
// [T, B, H] masks of a zoneout training step are a large part of its time.
// This kernel takes a single 64-bit seed drawn from torch's generator (so torch.manual_seed
// reproduces the masks) and hashes each entry's index with SplitMix64's finalizer, which needs
// no state, so it runs in parallel and vectorized.
#pragma once

#include <ATen/core/Tensor.h>

namespace lstm_ext {
namespace cpu {

// A tensor of `size` and `dtype` whose entries are 1 with probability p and 0 otherwise,
// a function of the 0-dim int64 `seed` alone.
at::Tensor bernoulli_mask(const at::Tensor& seed, double p, c10::IntArrayRef size, at::ScalarType dtype);

}  // namespace cpu
}  // namespace lstm_ext
