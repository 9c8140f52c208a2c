// The variant pointwise kernels for any CPU; see lstm_variant_pointwise_impl.h.
#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT
#include "lstm_variants/cpu/lstm_variant_pointwise_impl.h"

LSTM_EXT_VARIANT_TABLE(DEFAULT)
