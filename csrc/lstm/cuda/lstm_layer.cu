// One LSTM layer-direction over a whole (dense or packed) sequence, on CUDA.
//
// The same walk as cpu/lstm_layer.cpp, step for step:
// Forward:  one GEMM projects every step's input (bias folded in); then per step one
//           recurrent GEMM (accumulated into that step's pre-activations) and one fused
//           pointwise kernel running gates.h.
// Backward: per step one fused pointwise kernel and one recurrent GEMM; after the loop the
//           input and weight gradients as a few large GEMMs over all steps at once.
// Every GEMM is an ATen call writing into a view (cuBLAS, on the current stream); every
// kernel is launched on the current stream under a guard for the input's device (held by
// layer_host.h's layer_forward / layer_backward) and checked.
// Nothing waits for the GPU and nothing reads device memory on the host, so the ops can be
// captured in a CUDA graph. Buffers are allocated once per call; the loop only takes views.
//
// Where a persistent kernel would plug in (not built): for small H, the recurrent weights fit
// in the SMs' registers / shared memory, and one cooperative launch per sequence could walk
// all T steps (grid-wide sync between steps) instead of 2T launches of GEMM + pointwise.
// It would replace forward_loop / backward_loop only, behind a size test in LstmBackend::forward /
// ::backward (e.g. 4H x P weights within on-chip memory). The input projection before
// the loop and the weight-gradient GEMMs after it are large GEMMs already and stay as they
// are; it must write the same saved gates / cells layout, so either loop's backward works
// with either loop's forward.
#include "lstm/cuda/lstm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "lstm/gates.h"

namespace lstm_ext {
namespace cuda {
namespace {

using at::Tensor;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;  // the loops stride over the grid, so any cap is correct

int64_t blocks_for(int64_t units) {
  return std::min<int64_t>((units + kThreads - 1) / kThreads, kMaxBlocks);
}

// One thread per hidden unit j of row r of a step, u = r * H + j, striding over the grid.
// Neighbouring threads take neighbouring j, so the loads of each H-wide gate block coalesce.
template <typename F>
__device__ __forceinline__ void for_each_unit(int64_t n, int64_t H, const F& f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < n * H; u += stride) {
    const int64_t r = u / H;
    f(u, r, u - r * H);
  }
}

// pre [n, 4H] pre-activations -> act [n, 4H] activated gates (act may alias pre: each unit
// reads its four values before it writes them) and cells [n, H] of this step; c_state [n, H]
// carried; h to h_out (h_state, or o * tanh(c) before the projection) and to out unless null.
template <typename scalar_t>
__global__ void forward_step_kernel(int64_t n, int64_t H, const scalar_t* pre, at::opmath_type<scalar_t>* act,
                                    at::opmath_type<scalar_t>* cells, at::opmath_type<scalar_t>* c_state,
                                    scalar_t* h_out, scalar_t* out) {
  using opmath_t = at::opmath_type<scalar_t>;
  for_each_unit(n, H, [&](int64_t u, int64_t r, int64_t j) {
    const scalar_t* p = pre + r * 4 * H + j;
    const gates::Gates<opmath_t> a = gates::activate<opmath_t>(
        static_cast<opmath_t>(p[0]), static_cast<opmath_t>(p[H]), static_cast<opmath_t>(p[2 * H]),
        static_cast<opmath_t>(p[3 * H]));
    opmath_t h;
    const opmath_t c = gates::cell_forward(a, c_state[u], &h);
    opmath_t* g = act + r * 4 * H + j;
    g[0] = a.i;
    g[H] = a.f;
    g[2 * H] = a.g;
    g[3 * H] = a.o;
    cells[u] = c;
    c_state[u] = c;
    h_out[u] = static_cast<scalar_t>(h);
    if (out) out[u] = static_cast<scalar_t>(h);
  });
}

// dh (+ dy unless null) is the gradient of h (or of o * tanh(c) with a projection); dc is
// the gradient of c, updated in place to that of c_prev. c_prev rows below n_prev come from
// the previous step, the others from c0. m = o * tanh(c) unless null (for dW_hr).
template <typename scalar_t>
__global__ void backward_step_kernel(int64_t n, int64_t H, const at::opmath_type<scalar_t>* act,
                                     const at::opmath_type<scalar_t>* cells, const at::opmath_type<scalar_t>* c_prev,
                                     const at::opmath_type<scalar_t>* c0, int64_t n_prev, const scalar_t* dh,
                                     const scalar_t* dy, at::opmath_type<scalar_t>* dc, scalar_t* dgates,
                                     scalar_t* m) {
  using opmath_t = at::opmath_type<scalar_t>;
  for_each_unit(n, H, [&](int64_t u, int64_t r, int64_t j) {
    const opmath_t* g = act + r * 4 * H + j;
    const gates::Gates<opmath_t> a{g[0], g[H], g[2 * H], g[3 * H]};
    const opmath_t c = cells[u];
    const opmath_t cp = r < n_prev ? c_prev[u] : c0[u];
    opmath_t dh_u = static_cast<opmath_t>(dh[u]);
    if (dy) dh_u = dh_u + static_cast<opmath_t>(dy[u]);
    const gates::GateGrads<opmath_t> d = gates::cell_backward(a, c, cp, dh_u, dc[u]);
    scalar_t* dg = dgates + r * 4 * H + j;
    dg[0] = static_cast<scalar_t>(d.i_pre);
    dg[H] = static_cast<scalar_t>(d.f_pre);
    dg[2 * H] = static_cast<scalar_t>(d.g_pre);
    dg[3 * H] = static_cast<scalar_t>(d.o_pre);
    dc[u] = d.c_prev;
    if (m) m[u] = static_cast<scalar_t>(gates::use_gate(a, c));
  });
}

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, ForwardBuffers& b) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const Tensor w_hh_t = b.w_hh.t();
  const Tensor w_hr_t = s.has_proj ? b.w_hr.t() : Tensor();
  Tensor m_state;  // o * tanh(c) before the projection
  if (s.has_proj) m_state = at::empty({s.B, H}, b.pre.options());

  walk_forward(s, reverse, [&](int64_t, int64_t, int64_t n, int64_t off) {
    Tensor pre_t = b.pre.narrow(0, off, n);
    pre_t.addmm_(b.h_state.narrow(0, 0, n), w_hh_t);  // += h_{t-1} @ w_hh^T

    forward_step_kernel<scalar_t><<<blocks_for(n * H), kThreads, 0, stream>>>(
        n, H, pre_t.const_data_ptr<scalar_t>(), b.gates.data_ptr<opmath_t>() + off * 4 * H,
        b.cells.data_ptr<opmath_t>() + off * H, b.c_state.data_ptr<opmath_t>(),
        s.has_proj ? m_state.data_ptr<scalar_t>() : b.h_state.data_ptr<scalar_t>(),
        s.has_proj ? nullptr : b.out2d.data_ptr<scalar_t>() + off * P);
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    if (s.has_proj) {
      Tensor out_t = b.out2d.narrow(0, off, n);
      at::mm_out(out_t, m_state.narrow(0, 0, n), w_hr_t);
      b.h_state.narrow(0, 0, n).copy_(out_t);
    }
  });
}

template <typename scalar_t>
void backward_loop(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  Tensor dm_state;  // gradient reaching o * tanh(c), through the projection
  if (s.has_proj) dm_state = at::empty({s.B, H}, b.dgates.options());

  walk_backward(s, reverse, [&](int64_t k, int64_t t, int64_t n, int64_t off) {
    const int64_t prev = previous_step(t, s.T, reverse);
    const int64_t n_prev = rows_with_previous(s, t, prev);

    if (s.has_proj) {
      // The whole gradient of h_t is needed before the projection's GEMM: dm_t = dh_t @ w_hr.
      Tensor dh_all_t = b.dh_all.narrow(0, off, n);
      at::add_out(dh_all_t, b.dh_state.narrow(0, 0, n), b.grad_out2d.narrow(0, off, n));
      Tensor dm_t = dm_state.narrow(0, 0, n);
      at::mm_out(dm_t, dh_all_t, b.w_hr);
    }

    backward_step_kernel<scalar_t><<<blocks_for(n * H), kThreads, 0, stream>>>(
        n, H, b.gates.const_data_ptr<opmath_t>() + off * 4 * H, b.cells.const_data_ptr<opmath_t>() + off * H,
        prev < 0 ? nullptr : b.cells.const_data_ptr<opmath_t>() + s.offset[prev] * H,
        b.c0.const_data_ptr<opmath_t>(), n_prev,
        s.has_proj ? dm_state.const_data_ptr<scalar_t>() : b.dh_state.const_data_ptr<scalar_t>(),
        s.has_proj ? nullptr : b.grad_out2d.const_data_ptr<scalar_t>() + off * P, b.dc_state.data_ptr<opmath_t>(),
        b.dgates.data_ptr<scalar_t>() + off * 4 * H, s.has_proj ? b.m_all.data_ptr<scalar_t>() + off * H : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    // dh_{t-1} = dgates_t @ w_hh. The last step walked needs it only for h0's gradient.
    if (k > 0 || need_state_grad) {
      Tensor dh_t = b.dh_state.narrow(0, 0, n);
      at::mm_out(dh_t, b.dgates.narrow(0, off, n), b.w_hh);
    }
  });
}

}  // namespace

void LstmBackend::forward(const LayerShape& s, bool reverse, ForwardBuffers& b) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, b.output.scalar_type(), "lstm_ext_cuda_layer_forward", [&] {
    forward_loop<scalar_t>(s, reverse, b);
  });
}

void LstmBackend::backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  const at::ScalarType dtype = b.dgates.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lstm_ext_cuda_layer_backward", [&] {
    backward_loop<scalar_t>(s, reverse, b, need_state_grad);
  });
}

}  // namespace cuda
}  // namespace lstm_ext
