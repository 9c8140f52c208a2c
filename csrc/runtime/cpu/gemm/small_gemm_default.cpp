// The small-rows GEMM kernels for any CPU: small_gemm_impl.h, built as capability.h says.
#include "runtime/cpu/capability_default.h"
#include "runtime/cpu/gemm/small_gemm_impl.h"
