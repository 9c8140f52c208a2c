// The GRU's pointwise kernels for any CPU: gru_pointwise_impl.h, built as capability.h says.
#include "runtime/cpu/capability_default.h"
#include "gru/cpu/gru_pointwise_impl.h"
