// The pointwise kernels for AVX2 CPUs; see pointwise_impl.h. The target pragma comes
// first so that every function in this file, the vector headers' included, may use AVX2.
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
// The pragma enables the instructions but not the feature macros that sleef.h and the
// ATen vector headers test, so they are set here, for this file only.
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "cpu/pointwise_impl.h"
#include "cpu/gru_pointwise_impl.h"

LSTM_EXT_POINTWISE_TABLE(AVX2)
LSTM_EXT_GRU_POINTWISE_TABLE(AVX2)
#endif
