// The pointwise kernels for AVX-512 CPUs; see pointwise_impl.h and pointwise_avx2.cpp.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "lstm/cpu/pointwise_impl.h"
#include "gru/cpu/gru_pointwise_impl.h"
#include "runtime/cpu/small_gemm_impl.h"

LSTM_EXT_POINTWISE_TABLE(AVX512)
LSTM_EXT_GRU_POINTWISE_TABLE(AVX512)
LSTM_EXT_SMALL_GEMM_TABLE(AVX512)
#endif
