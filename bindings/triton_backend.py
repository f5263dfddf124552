"""The Triton backend: the fused kernels behind the ``Backend`` interface.

Importing this module imports triton; ``genconv.bindings.backends`` does so only when the
backend is asked for, so genconv works where triton is not installed.
"""

from genconv.bindings.backends import Backend
from genconv.kernels.conv_forward import conv_act_forward, conv_act_forward_sum
from genconv.kernels.conv_transpose import masked_conv_transpose, masked_conv_transpose_langevin
from genconv.kernels.langevin_update import langevin_update
from genconv.kernels.normal import standard_normal

TRITON_BACKEND = Backend(
    name="triton",
    conv_act_forward=conv_act_forward,
    conv_act_forward_sum=conv_act_forward_sum,
    masked_conv_transpose=masked_conv_transpose,
    langevin_update=langevin_update,
    masked_conv_transpose_langevin=masked_conv_transpose_langevin,
    standard_normal=standard_normal,
)
