// lstm_inference: a whole multi-layer LSTM forward in one op call, for inference only.
//
// A streaming step (T=1, B=1) costs almost nothing in arithmetic; its time is per-call overhead,
// and most of that was Python: argument normalisation, then one lstm_layer call per layer and
// direction through register_autograd's wrapper. lstm_ext.LSTM takes this op when grad mode is
// off; it walks the layers here, calling each backend's lstm_layer kernel through the
// dispatcher below the autograd keys, so it serves every device lstm_layer has a kernel for.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "runtime/forward_only.h"
#include "lstm/streaming_step.h"

namespace lstm_ext {
namespace {

using at::Tensor;
using LayerFn = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&,
    const std::optional<Tensor>&, const std::optional<Tensor>&, const std::optional<Tensor>&, bool);

constexpr const char* kOp = "lstm_ext::lstm_inference";

std::optional<Tensor> maybe(const Tensor& t) {
  return t.defined() ? std::optional<Tensor>(t) : std::nullopt;
}

std::vector<Tensor> lstm_inference(const Tensor& input, at::TensorList hx, at::TensorList weights, bool has_biases,
                                   int64_t num_layers, bool bidirectional, bool batch_first) {
  static const auto layer =
      c10::Dispatcher::singleton().findSchemaOrThrow("lstm_ext::lstm_layer", "").typed<LayerFn>();
  const int64_t D = bidirectional ? 2 : 1;
  TORCH_CHECK(num_layers >= 1, kOp, ": num_layers must be at least 1, got ", num_layers);
  const int64_t stacks = num_layers * D;
  const int64_t bare = 2 + (has_biases ? 2 : 0);  // w_ih, w_hh (, b_ih, b_hh) per layer-direction
  const int64_t count = static_cast<int64_t>(weights.size());
  TORCH_CHECK(count == stacks * bare || count == stacks * (bare + 1), kOp, ": expected ", stacks * bare, " or ",
              stacks * (bare + 1), " weights (nn.LSTM's _flat_weights), got ", count);
  const int64_t per = count / stacks;
  const bool has_proj = per == bare + 1;
  if (at::GradMode::is_enabled()) {
    bool needs_grad = input.requires_grad();
    for (const Tensor& t : hx) needs_grad = needs_grad || t.requires_grad();
    for (const Tensor& t : weights) needs_grad = needs_grad || t.requires_grad();
    TORCH_CHECK(!needs_grad, kOp, ": inference only, but a tensor requires grad and grad mode is on; "
                "use lstm_ext.LSTM, which records the backward");
  }
  TORCH_CHECK(input.dim() == 3, kOp, ": expected a 3-D input, got ", input.dim(), "-D");
  for (const at::TensorList list : {hx, weights}) {
    for (const Tensor& t : list) {
      TORCH_CHECK(t.device() == input.device(), kOp, ": expected every tensor on ", input.device(),
                  " like input, got one on ", t.device());
    }
  }
  const Tensor x = batch_first ? input.transpose(0, 1) : input;
  TORCH_CHECK(x.size(0) > 0, kOp, ": expected sequence length to be larger than 0, as nn.LSTM does");
  const int64_t B = x.size(1);
  const int64_t H = weights[1].size(0) / 4;
  const int64_t P = has_proj ? weights[per - 1].size(0) : H;

  Tensor h0, c0;
  if (hx.empty()) {
    h0 = at::zeros({stacks, B, P}, x.options());
    c0 = at::zeros({stacks, B, H}, x.options());
  } else {
    TORCH_CHECK(hx.size() == 2, kOp, ": expected hx = (h_0, c_0), got ", hx.size(), " tensors");
    h0 = hx[0];
    c0 = hx[1];
    TORCH_CHECK(h0.dim() == 3 && h0.size(0) == stacks && c0.dim() == 3 && c0.size(0) == stacks, kOp,
                ": expected h_0 and c_0 of ", stacks, " layer-directions, got ", h0.sizes(), " and ", c0.sizes());
  }

  if (const StreamingStep fast = streaming_step_hook()) {
    if (auto results = fast(x, h0, c0, weights, has_biases, num_layers, D)) {
      if (batch_first) (*results)[0] = (*results)[0].transpose(0, 1);
      return *results;
    }
  }

  // Below the autograd keys: straight to the backend's kernel, not register_autograd's wrapper.
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const ForwardOnlyGuard forward_only;  // the gates and cells that lstm_layer returns go unused
  std::vector<Tensor> h_n, c_n;
  h_n.reserve(stacks);
  c_n.reserve(stacks);
  Tensor layer_input = x.contiguous();
  for (int64_t l = 0; l < num_layers; ++l) {
    std::vector<Tensor> outputs;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t index = l * D + d;
      const at::TensorList w = weights.slice(index * per, per);
      const std::optional<Tensor> b_ih = has_biases ? maybe(w[2]) : std::nullopt;
      const std::optional<Tensor> b_hh = has_biases ? maybe(w[3]) : std::nullopt;
      const std::optional<Tensor> w_hr = has_proj ? maybe(w[per - 1]) : std::nullopt;
      try {
        auto [output, h, c, gates, cells] =
            layer.call(layer_input, h0[index], c0[index], w[0], w[1], b_ih, b_hh, w_hr, std::nullopt, d == 1);
        outputs.push_back(std::move(output));
        h_n.push_back(std::move(h));
        c_n.push_back(std::move(c));
      } catch (const c10::Error& error) {  // say which op was called, and where in it
        TORCH_CHECK(false, kOp, ": layer ", l, ", direction ", d, ": ", error.what_without_backtrace());
      }
    }
    layer_input = D == 1 ? outputs[0] : at::cat(outputs, -1);
  }
  Tensor output = batch_first ? layer_input.transpose(0, 1) : layer_input;
  if (stacks == 1) return {output, h_n[0].unsqueeze(0), c_n[0].unsqueeze(0)};
  return {output, at::stack(h_n), at::stack(c_n)};
}

}  // namespace

StreamingStep& streaming_step_hook() {
  static StreamingStep hook = nullptr;
  return hook;
}

}  // namespace lstm_ext

TORCH_LIBRARY_IMPL(lstm_ext, CompositeExplicitAutograd, m) {
  m.impl("lstm_inference", &lstm_ext::lstm_inference);
}
