// The fused pointwise passes of one variant time step (peephole, zoneout, layer norm, the
// lesson's use gate), on a range of rows. Compiled once per CPU capability
// (lstm_variant_pointwise_impl.h, by lstm_variant_pointwise_*.cpp) and picked at run time
// (runtime/cpu/capability.h). float and double only: the variants keep one dtype throughout.
#pragma once

#include <cstdint>

#include "runtime/cpu/capability.h"

namespace lstm_ext {
namespace cpu {

// LayerNorm's epsilon, as torch.nn.LayerNorm's default.
constexpr double kLayerNormEps = 1e-5;

// Per row of every step, saved for backward with layer norm: 1/std of the recurrent projection,
// mean and 1/std of the new cell state.
constexpr int64_t kStats = 3;

// The options of one step, forward and backward alike. Null pointers mean "option off": no
// peephole weights, no zoneout on h or c, no layer norm.
template <typename scalar_t>
struct VariantOptions {
  const scalar_t* peephole;     // [3H] p_i, p_f, p_o, or null
  const scalar_t* keep_h;       // [rows, H] zoneout weights of this step, or null
  const scalar_t* keep_c;
  const scalar_t* ln_hh;        // [4H] gain of the recurrent projection's layer norm, or null
  const scalar_t* ln_c_weight;  // [H] gain and bias of the cell state's layer norm, or null
  const scalar_t* ln_c_bias;
};

template <typename scalar_t>
struct VariantForwardStep {
  int64_t H;
  const scalar_t* pre;       // [rows, 4H] pre-activations, i f g o (with layer norm: xgates only)
  VariantOptions<scalar_t> options;
  scalar_t* rec;             // [rows, 4H] h_prev @ W_hh^T, normalized in place (with ln_hh)
  scalar_t* stats;           // [rows, kStats] (with any layer norm)
  // The lesson's use gate runs in two passes around the GEMM u_pre = kept @ W_u^T + b_u:
  // the first (use_pre null) writes kept = c_prev * f, the second squashes use_pre.
  scalar_t* kept;            // [rows, H], or null
  const scalar_t* use_pre;   // [rows, H], or null
  scalar_t* gates;           // [rows, 4H] activated; may equal pre
  scalar_t* cells;           // [rows, H] c before zoneout
  scalar_t* states;          // [rows, H] c after zoneout, or null without zoneout on c
  scalar_t* c_state;         // carried c, updated in place
  scalar_t* h_state;         // carried h, updated in place
  scalar_t* out;             // [rows, H] this step's output
  // With ln_hh: where this step's h_prev @ W_hh^T is, when the GEMM left it outside rec (rows of
  // 4H, contiguous); normalized from there into rec, which saves copying it in first.
  const scalar_t* rec_in = nullptr;
};

template <typename scalar_t>
struct VariantBackwardStep {
  int64_t H;
  const scalar_t* gates;
  const scalar_t* cells;
  const scalar_t* c_prev;  // carried c of the previous step, rows below n_prev
  const scalar_t* c0;      // the other rows
  int64_t n_prev;
  VariantOptions<scalar_t> options;
  const scalar_t* rec;     // [rows, 4H] the normalized recurrent projection (with ln_hh)
  const scalar_t* stats;   // [rows, kStats]
  // The lesson's use gate, in two passes around the GEMM d_kept = d_use @ W_u: the first
  // (d_kept null) writes d_use and o's gradient; the second the other gradients.
  const scalar_t* use_pre;  // [rows, H], or null
  scalar_t* d_use;          // [rows, H] gradient of u_pre, or null
  const scalar_t* d_kept;   // [rows, H], or null
  scalar_t* dh;            // in: gradient reaching h from the next step; out: zoneout's direct part
  const scalar_t* dy;      // gradient of this step's output
  scalar_t* dc;            // in: gradient of c_carried; out: gradient of c_prev
  scalar_t* dgates;        // [rows, 4H] gradients of the pre-activations
  scalar_t* dln_c;         // [rows, H] gradient reaching LN(c) (with ln_c)
  scalar_t* drec;          // [rows, 4H] gradient of h_prev @ W_hh^T (with ln_hh)
};

// variant_row_kernels<scalar_t>(): the kernels this CPU runs (honours ATEN_CPU_CAPABILITY, like
// ATen), for float and double.
template <typename scalar_t>
using VariantRowKernels = RowKernels<VariantForwardStep<scalar_t>, VariantBackwardStep<scalar_t>>;
LSTM_EXT_KERNELS_BY_CAPABILITY(VariantRowKernels, variant_row_kernels)

}  // namespace cpu
}  // namespace lstm_ext
