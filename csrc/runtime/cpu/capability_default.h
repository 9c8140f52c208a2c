// Compiles the rest of the including file as the kernels for any CPU (see capability.h): include
// it first, then the kernels.
#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT
