// The CPU layer kernels, for the op registrations. Arguments are checked by the caller.
#pragma once

#include "runtime/layer_host.h"

namespace lstm_ext {
namespace cpu {

// The arguments and results are those of LayerForwardFn / LayerBackwardFn in layer_host.h.
LayerForwardFn layer_forward;
LayerBackwardFn layer_backward;

}  // namespace cpu
}  // namespace lstm_ext
