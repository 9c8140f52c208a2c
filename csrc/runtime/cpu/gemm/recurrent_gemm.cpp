#include "runtime/cpu/gemm/recurrent_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/core/List.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <type_traits>
#include <vector>

#include "runtime/cpu/gemm/small_gemm.h"
#include "runtime/cpu/switches.h"
#include "runtime/input_projection.h"

namespace lstm_ext {
namespace cpu {
namespace {

// Below this many flops per step, at::addmm's lower fixed cost wins over oneDNN's packed
// linear; above it the packed weight's faster arithmetic does.
constexpr int64_t kPackedMinFlops = 8 << 20;

// A product run once, like the input projection, also pays oneDNN's weight reorder (mostly
// building the primitive descriptor), so it needs a much larger product to pay off.
constexpr int64_t kPackedOnceMinFlops = 256 << 20;

struct OneDnn {
  c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, std::optional<int64_t>)> reorder;
  c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                      c10::string_view, c10::List<std::optional<at::Scalar>>,
                                      std::optional<c10::string_view>)>
      linear;
  c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      const std::optional<at::Tensor>&, c10::string_view)>
      linear_add;
};

// oneDNN's ops as torch registers them, when this torch build has them.
const OneDnn* onednn() {
  static const std::optional<OneDnn> ops = []() -> std::optional<OneDnn> {
    // LSTM_EXT_ONEDNN_GEMM=0 keeps every step on at::addmm, to compare the two.
    if (!at::hasMKLDNN() || !switch_on("LSTM_EXT_ONEDNN_GEMM")) return std::nullopt;
    auto& dispatcher = c10::Dispatcher::singleton();
    auto reorder = dispatcher.findOp({"mkldnn::_reorder_linear_weight", ""});
    auto linear = dispatcher.findOp({"mkldnn::_linear_pointwise", ""});
    auto linear_add = dispatcher.findOp({"mkldnn::_linear_pointwise", "binary"});
    if (!reorder || !linear || !linear_add) return std::nullopt;
    try {
      return OneDnn{reorder->typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>(),
                    linear->typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                             c10::string_view, c10::List<std::optional<at::Scalar>>,
                                             std::optional<c10::string_view>)>(),
                    linear_add->typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                 const std::optional<at::Tensor>&, c10::string_view)>()};
    } catch (const c10::Error&) {  // a schema this code does not know: use at::addmm
      return std::nullopt;
    }
  }();
  return ops ? &*ops : nullptr;
}

// Whether rows [max_rows, K] @ weight [N, K]^T is worth oneDNN's linear on a packed weight.
bool use_onednn(const at::Tensor& weight, int64_t max_rows, int64_t min_flops = kPackedMinFlops) {
  const bool big = 2 * max_rows * weight.size(0) * weight.size(1) >= min_flops;
  const bool onednn_dtype = weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kBFloat16;
  return big && onednn_dtype && weight.is_cpu() && onednn() != nullptr;
}

}  // namespace

at::Tensor input_projection(const at::Tensor& rows, const at::Tensor& w_ih, const std::optional<at::Tensor>& b_ih,
                            const std::optional<at::Tensor>& b_hh) {
  // One contiguous copy for every path (dx passes w_ih^T), so any layout takes the same kernel.
  const at::Tensor w = w_ih.contiguous();
  if (small_gemm_applies(rows, w)) {
    at::Tensor out = at::empty({rows.size(0), w.size(0)}, rows.options());
    small_rows_gemm(rows, w, b_ih.value_or(at::Tensor()), b_hh.value_or(at::Tensor()), out, /*accumulate=*/false);
    return out;
  }
  if (!use_onednn(w, rows.size(0), kPackedOnceMinFlops)) return aten_input_projection(rows, w, b_ih, b_hh);
  const at::Tensor packed = onednn()->reorder.call(w, rows.size(0));
  const at::Tensor bias = summed_bias(b_ih, b_hh);
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias.contiguous()) : std::nullopt;
  return onednn()->linear.call(rows, packed, b, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

bool packs_weight(const at::Tensor& weight, int64_t max_rows) {
  return use_onednn(weight, max_rows);
}

RecurrentGemm::RecurrentGemm(const at::Tensor& weight, int64_t max_rows, int64_t steps) : weight_t_(weight.t()) {
  const at::ScalarType dtype = weight.scalar_type();
  if (use_onednn(weight, max_rows)) {
    packed_ = onednn()->reorder.call(weight.contiguous(), max_rows);
  } else if (max_rows <= kSmallGemmRows && steps > 1 && (dtype == at::kFloat || dtype == at::kDouble)) {
    // One step alone would pay more for the transpose than it saves; the dot-product kernel
    // reads the weight as it is.
    kmajor_ = weight_t_.contiguous();
  }
}

bool RecurrentGemm::small_tensor_step(const at::Tensor& rows, const at::Tensor& out, bool accumulate) const {
  if (!kmajor_.defined() || rows.stride(-1) != 1 || out.stride(-1) != 1 || rows.scalar_type() != kmajor_.scalar_type() ||
      out.scalar_type() != kmajor_.scalar_type()) {
    return false;
  }
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "lstm_ext_small_gemm_kmajor", [&] {
    done = small_step(rows.const_data_ptr<scalar_t>(), rows.stride(0), rows.size(0), out.mutable_data_ptr<scalar_t>(),
                      out.stride(0), accumulate);
  });
  return done;
}

template <typename scalar_t>
bool RecurrentGemm::small_step(const scalar_t* rows, int64_t ld_rows, int64_t n, scalar_t* out, int64_t ld_out,
                               bool accumulate) const {
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    if (!kmajor_.defined() || kmajor_.scalar_type() != c10::CppTypeToScalarType<scalar_t>::value ||
        n > kSmallGemmRows) {
      return false;
    }
    const SmallGemm<scalar_t> g{rows, ld_rows, n, kmajor_.size(0), kmajor_.const_data_ptr<scalar_t>(),
                                kmajor_.stride(0), /*bias1=*/nullptr, /*bias2=*/nullptr, out, ld_out, accumulate};
    run_small_gemm_kmajor(g, kmajor_.size(1));
    return true;
  }
  return false;  // reduced precision never runs small_gemm_kmajor
}
template bool RecurrentGemm::small_step<float>(const float*, int64_t, int64_t, float*, int64_t, bool) const;
template bool RecurrentGemm::small_step<double>(const double*, int64_t, int64_t, double*, int64_t, bool) const;
template bool RecurrentGemm::small_step<c10::BFloat16>(const c10::BFloat16*, int64_t, int64_t, c10::BFloat16*,
                                                       int64_t, bool) const;

at::Tensor RecurrentGemm::accumulate(const at::Tensor& rows, at::Tensor acc) const {
  if (small_tensor_step(rows, acc, /*accumulate=*/true)) return acc;
  if (!packed_.defined() && small_gemm_applies(rows, weight_t_.t()) && acc.stride(-1) == 1) {
    small_rows_gemm(rows, weight_t_.t(), at::Tensor(), at::Tensor(), acc, /*accumulate=*/true);
    return acc;
  }
  if (!packed_.defined()) return acc.addmm_(rows, weight_t_);
  if (packed_.scalar_type() == at::kBFloat16) {
    // oneDNN's binary-add post-op is slower for bfloat16 than the plain product followed by a
    // separate add, which is cheap next to the product.
    return acc.add_(onednn()->linear.call(rows, packed_, std::nullopt, "none",
                                          c10::List<std::optional<at::Scalar>>(), std::nullopt));
  }
  return onednn()->linear_add.call(rows, acc, packed_, std::nullopt, "add");
}

void RecurrentGemm::write(const at::Tensor& rows, at::Tensor out) const {
  if (small_tensor_step(rows, out, /*accumulate=*/false)) return;
  if (!packed_.defined()) {
    at::mm_out(out, rows, weight_t_);
    return;
  }
  out.copy_(onednn()->linear.call(rows, packed_, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt));
}

at::Tensor RecurrentGemm::product(const at::Tensor& rows, at::Tensor out) const {
  if (small_tensor_step(rows, out, /*accumulate=*/false)) return out;
  if (!packed_.defined()) return at::mm_out(out, rows, weight_t_);
  return onednn()->linear.call(rows, packed_, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

}  // namespace cpu
}  // namespace lstm_ext
