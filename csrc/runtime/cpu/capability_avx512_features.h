// The feature macros of the AVX-512 capabilities, for capability_avx512.h and
// capability_avx512_bf16.h, which include it after their target pragma (capability_x86.h says why).
#include "runtime/cpu/capability_x86.h"
#ifndef __AVX512F__
#define __AVX512F__ 1
#endif
#ifndef __AVX512BW__
#define __AVX512BW__ 1
#endif
#ifndef __AVX512VL__
#define __AVX512VL__ 1
#endif
#ifndef __AVX512DQ__
#define __AVX512DQ__ 1
#endif
