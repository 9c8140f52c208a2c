// The GRU's fused pointwise passes of one time step, on a range of rows. Compiled once per CPU
// capability (gru_pointwise_impl.h, by gru_pointwise_*.cpp) and picked at run time
// (runtime/cpu/capability.h).
#pragma once

#include <ATen/OpMathType.h>

#include <cstdint>

#include "runtime/cpu/capability.h"

namespace lstm_ext {
namespace cpu {

// Forward: the two projections -> the activated gates (r, z, n, hn blocks, saved for backward)
// and the new memory h', written to h_state (in op-math precision, carried to the next step),
// to h_copy (the next recurrent GEMM's operand, when h_state cannot be it) and to out.
template <typename scalar_t>
struct GruForwardStep {
  using opmath_t = at::opmath_type<scalar_t>;
  int64_t H;
  const scalar_t* x_pre;  // [rows, 3H] x W_ih + b_ih, with b_hr and b_hz folded in
  const scalar_t* h_pre;  // [rows, 3H] h W_hh, no bias
  const scalar_t* b_hn;   // [H], or null without bias
  opmath_t* gates;        // [rows, 4H]
  opmath_t* h_state;      // [rows, H]: h_prev in, h' out
  scalar_t* h_copy;       // [rows, H], or null
  scalar_t* out;          // [rows, H]
  int64_t unit_begin = 0;  // every unit: for_each_unit's range
  int64_t unit_end = -1;
};

// Backward: the gradient reaching h' (dh, plus dy unless null) -> the gradients of both
// projections, and in dh (in place) the part of dh_prev that passes the update gate directly;
// the recurrent GEMM adds the rest.
template <typename scalar_t>
struct GruBackwardStep {
  using opmath_t = at::opmath_type<scalar_t>;
  int64_t H;
  const opmath_t* gates;   // [rows, 4H] as the forward saved them
  const scalar_t* h_prev;  // [rows, H] h_{t-1}: the previous step's output, rows below n_prev
  const scalar_t* h0;      // [rows, H] the other rows' h_{t-1}
  int64_t n_prev;
  const scalar_t* dy;      // [rows, H], or null
  scalar_t* dh;            // [rows, H]
  scalar_t* d_x;           // [rows, 3H] gradient of x W_ih + b_ih
  scalar_t* d_h;           // [rows, 3H] gradient of h W_hh + b_hh: this step's, the recurrent GEMM's operand
  scalar_t* d_hn;          // [rows, H] its n block, kept for dW_hh (its r and z blocks are d_x's)
  int64_t unit_begin = 0;  // a team member's units (step_team.h)
  int64_t unit_end = -1;   // -1: H
};

// gru_row_kernels<scalar_t>(): the kernels this CPU runs (honours ATEN_CPU_CAPABILITY, like
// ATen), for float, double and bfloat16.
template <typename scalar_t>
using GruRowKernels = RowKernels<GruForwardStep<scalar_t>, GruBackwardStep<scalar_t>>;
LSTM_EXT_KERNELS_BY_CAPABILITY(GruRowKernels, gru_row_kernels)

}  // namespace cpu
}  // namespace lstm_ext
