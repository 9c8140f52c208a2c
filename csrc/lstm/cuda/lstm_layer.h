// The CUDA layer kernels of the LSTM, for runtime/layer_ops.h (which checks the arguments
// first); the declarations match cpu/lstm_layer.h, so one LayerOps<> serves both.
#pragma once

#include "lstm/layer_host.h"

namespace lstm_ext {
namespace cuda {

// The arguments and results are those of LayerForwardFn / LayerBackwardFn in layer_host.h.
LayerForwardFn layer_forward;
LayerBackwardFn layer_backward;

}  // namespace cuda
}  // namespace lstm_ext
