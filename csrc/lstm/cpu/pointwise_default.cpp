// The pointwise kernels for any CPU; see pointwise_impl.h.
#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT
#include "lstm/cpu/pointwise_impl.h"
#include "gru/cpu/gru_pointwise_impl.h"
#include "runtime/cpu/small_gemm_impl.h"

LSTM_EXT_POINTWISE_TABLE(DEFAULT)
LSTM_EXT_GRU_POINTWISE_TABLE(DEFAULT)
LSTM_EXT_SMALL_GEMM_TABLE(DEFAULT)
