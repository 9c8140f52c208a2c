#include "runtime/cpu/bernoulli_mask.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>

namespace lstm_ext {
namespace cpu {
namespace {

// SplitMix64 (Steele, Lea & Flood 2014): entry i is the generator's i-th output after `seed`,
// whose outputs pass BigCrush.
inline uint64_t splitmix64(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Integer math, so every clone writes the same bits; the AVX-512 one multiplies 8 lanes at once.
#if defined(__x86_64__) && defined(__GNUC__)
#define LSTM_EXT_MASK_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define LSTM_EXT_MASK_CLONES
#endif

template <typename scalar_t>
LSTM_EXT_MASK_CLONES void fill_mask(
    scalar_t* out, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold) {
  for (int64_t i = begin; i < end; ++i) {
    out[i] = (splitmix64(seed, static_cast<uint64_t>(i)) >> 11) < threshold ? scalar_t(1) : scalar_t(0);
  }
}

}  // namespace

at::Tensor bernoulli_mask(const at::Tensor& seed, double p, c10::IntArrayRef size, at::ScalarType dtype) {
  constexpr const char* op = "lstm_ext::bernoulli_mask";
  TORCH_CHECK(seed.dim() == 0 && seed.scalar_type() == at::kLong, op, ": expected a 0-dim int64 seed, got ",
              seed.scalar_type(), " of shape ", seed.sizes());
  TORCH_CHECK(p >= 0 && p <= 1, op, ": expected 0 <= p <= 1, got ", p);
  TORCH_CHECK(at::isFloatingType(dtype), op, ": expected a floating-point dtype, got ", dtype);
  const uint64_t s = static_cast<uint64_t>(seed.item<int64_t>());
  at::Tensor out = at::empty(size, seed.options().dtype(dtype));
  // An entry is 1 when the top 53 bits of its hash, a uniform integer below 2^53, fall under
  // p * 2^53: probability p exactly for every p that is a multiple of 2^-53 (p = 1 included).
  const uint64_t threshold = static_cast<uint64_t>(std::ldexp(p, 53));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "lstm_ext_bernoulli_mask", [&] {
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), int64_t{1} << 15,
                     [&](int64_t begin, int64_t end) { fill_mask(o, begin, end, s, threshold); });
  });
  return out;
}

}  // namespace cpu
}  // namespace lstm_ext
