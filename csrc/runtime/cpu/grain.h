// How finely every family's pointwise passes split a step's rows over threads.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lstm_ext {
namespace cpu {

// Rows per parallel task of a pointwise pass: about 2048 hidden units, a few microseconds of
// gate math, enough to pay for waking a pool thread, small enough that a 64 x 256 step splits
// over two cores.
inline int64_t grain_rows(int64_t H) {
  return std::max<int64_t>(1, 2048 / std::max<int64_t>(H, 1));
}

}  // namespace cpu
}  // namespace lstm_ext
