// Compiles the rest of the including file for AVX2 CPUs: include it first, inside
// `#if defined(__x86_64__)`, then the kernels. It sets the target pragma, the feature macros
// that sleef.h and ATen's vector headers test, and CPU_CAPABILITY, as ATen's own
// per-capability files are compiled.
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
