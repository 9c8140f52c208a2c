// The CPU layer kernels of the LSTM, for runtime/layer_ops.h (which checks the arguments first).
#pragma once

#include "lstm/layer_host.h"

namespace lstm_ext {
namespace cpu {

// The arguments and results are those of LayerForwardFn / LayerBackwardFn in layer_host.h.
LayerForwardFn layer_forward;
LayerBackwardFn layer_backward;

}  // namespace cpu
}  // namespace lstm_ext
