// The LSTM's pointwise kernels for any CPU: pointwise_impl.h, built as capability.h says.
#include "runtime/cpu/capability_default.h"
#include "lstm/cpu/pointwise_impl.h"
