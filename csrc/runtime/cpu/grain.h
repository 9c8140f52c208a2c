// How finely the CPU kernels split their work: a step's rows over threads, and a range over
// register tiles.
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

// Calls f(first, count) over [begin, end) in parts of at most `most`, as equal as they come
// (13 rows in tiles of at most 6: 5 + 4 + 4, not 6 + 6 + 1), so no tile is left nearly empty.
template <typename F>
inline void for_equal_parts(int64_t begin, int64_t end, int64_t most, const F& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t parts = (n + most - 1) / most, base = n / parts, extra = n % parts;
  for (int64_t i = 0, first = begin; i < parts; ++i) {
    const int64_t count = base + (i < extra);
    f(first, count);
    first += count;
  }
}

}  // namespace cpu
}  // namespace lstm_ext
