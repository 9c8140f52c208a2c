// Compiles the rest of the including file for AVX-512 CPUs with the BF16 extension (Intel Cooper
// Lake and Sapphire Rapids on, AMD Zen 4 on), as capability_avx512.h does for AVX-512: its
// bfloat16 pair dot product (vdpbf16ps) and conversion (vcvtneps2bf16). A capability of its own,
// in namespace lstm_ext::cpu::AVX512_BF16, so no inline function compiled with these
// instructions can stand in for the AVX512 copy on a CPU without them. Called only where
// cpu_has_avx512_bf16() (capability.h).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")
#include "runtime/cpu/capability_avx512_features.h"
#define CPU_CAPABILITY AVX512_BF16
#define CPU_CAPABILITY_AVX512
// fused_step_impl.h's bfloat16 tile
#define LSTM_EXT_FUSED_BF16 1
