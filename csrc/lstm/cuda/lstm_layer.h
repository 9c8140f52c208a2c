// The CUDA layer kernels, for the op registrations. Arguments are checked by the caller
// (op_wrappers.h); the declarations match cpu/lstm_layer.h, so one Ops<> serves both.
#pragma once

#include "runtime/layer_host.h"

namespace lstm_ext {
namespace cuda {

// The arguments and results are those of LayerForwardFn / LayerBackwardFn in layer_host.h.
LayerForwardFn layer_forward;
LayerBackwardFn layer_backward;

}  // namespace cuda
}  // namespace lstm_ext
