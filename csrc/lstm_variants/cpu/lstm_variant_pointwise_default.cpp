// The variants' pointwise kernels for any CPU: lstm_variant_pointwise_impl.h, built as capability.h says.
#include "runtime/cpu/capability_default.h"
#include "lstm_variants/cpu/lstm_variant_pointwise_impl.h"
