// The feature macros of every x86 capability above DEFAULT, for capability_avx2.h and the
// AVX-512 capabilities (capability_avx512_features.h), included after their target pragma. The pragma enables the
// instructions but not the feature macros that sleef.h and the ATen vector headers test, so they
// are set here, for the including file only.
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
