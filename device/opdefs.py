"""Operator codes and kernel parameter layouts shared by the tiler, the device runtime and the kernels.

The tiler (Prepare) computes every kernel parameter on the host and stores it in the image as a small
int32 vector per op; the device (Eval) passes that vector unchanged to the kernel. The index constants
below name the slots of each vector. `native/ts_kernels.h` mirrors them; change both together.

MicroPython: `const()` makes these compile-time constants; in CPython the fallback is the identity.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Op kinds in the image's op table.
OP_CONV = const(1)
OP_DWCONV = const(2)
OP_FC = const(3)
OP_ADD = const(4)
OP_MAXPOOL = const(5)
OP_AVGPOOL = const(6)
OP_MEAN = const(7)
OP_PAD = const(8)
OP_CONCAT = const(9)
OP_SOFTMAX = const(10)
OP_REQUANT = const(11)

OP_NAMES = {
    OP_CONV: "CONV_2D", OP_DWCONV: "DEPTHWISE_CONV_2D", OP_FC: "FULLY_CONNECTED", OP_ADD: "ADD",
    OP_MAXPOOL: "MAX_POOL_2D", OP_AVGPOOL: "AVERAGE_POOL_2D", OP_MEAN: "MEAN", OP_PAD: "PAD",
    OP_CONCAT: "CONCATENATION", OP_SOFTMAX: "SOFTMAX", OP_REQUANT: "QUANTIZE",
}

# Spatial ops (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D): one layout for all.
P_IN_W = const(0)      # input width
P_IN_C = const(1)      # input channels (pixel stride of the input band)
P_OUT_W = const(2)     # output width
P_OUT_C = const(3)     # output channels of the whole tensor (pixel stride of the output)
P_KH = const(4)        # filter / pool window height
P_KW = const(5)        # filter / pool window width
P_SH = const(6)        # stride, rows
P_SW = const(7)        # stride, columns
P_DH = const(8)        # dilation, rows (1 for pools)
P_DW = const(9)        # dilation, columns (1 for pools)
P_PAD_L = const(10)    # padding on the left (columns); rows are handled by the caller's y0
P_IN_ZP = const(11)    # input zero point
P_OUT_ZP = const(12)   # output zero point
P_ACT_MIN = const(13)  # fused activation clamp, low (int8)
P_ACT_MAX = const(14)  # fused activation clamp, high (int8)
P_DM = const(15)       # depth multiplier (DEPTHWISE_CONV_2D), else 1
P_SPATIAL_LEN = const(16)

# FULLY_CONNECTED
PF_N = const(0)        # input features (accumulation depth)
PF_OUT_C = const(1)    # output features of the whole tensor (row stride of the output)
PF_IN_ZP = const(2)
PF_OUT_ZP = const(3)
PF_ACT_MIN = const(4)
PF_ACT_MAX = const(5)
PF_LEN = const(6)

# ADD (inputs may have different scales; TFLite's left_shift = 20 scheme)
PA_IN1_ZP = const(0)
PA_IN2_ZP = const(1)
PA_OUT_ZP = const(2)
PA_LEFT_SHIFT = const(3)
PA_M1 = const(4)
PA_S1 = const(5)
PA_M2 = const(6)
PA_S2 = const(7)
PA_MO = const(8)
PA_SO = const(9)
PA_ACT_MIN = const(10)
PA_ACT_MAX = const(11)
PA_LEN = const(12)

# QUANTIZE int8 -> int8 (requantize; the converter inserts it e.g. before CONCATENATION)
PR_IN_ZP = const(0)
PR_OUT_ZP = const(1)
PR_MULT = const(2)
PR_SHIFT = const(3)
PR_LEN = const(4)

# MEAN over height and width of an NHWC tensor (global average pooling)
PM_C = const(0)        # channels
PM_COUNT = const(1)    # elements averaged per channel (H * W)
PM_IN_ZP = const(2)
PM_OUT_ZP = const(3)
PM_MULT = const(4)     # in_scale / out_scale with 1/count folded in, as TFLite does (tiler/quant.py)
PM_SHIFT = const(5)    # ... and its exponent, >= -31
PM_LEN = const(6)

# SOFTMAX over the last axis (TFLite reference: gemmlowp fixed point, 5 integer bits for the differences)
PS_N = const(0)             # length of the softmax axis
PS_INPUT_MULT = const(1)    # input_beta_multiplier
PS_INPUT_LSHIFT = const(2)  # input_beta_left_shift
PS_DIFF_MIN = const(3)      # differences (x - row max) below this give 0
PS_OUT_ZP = const(4)        # always -128 for int8 (scale 1/256); the kernels refuse anything else
PS_LEN = const(5)

# PAD (height and width only; rows above are the op record's pad_t)
PP_ZP = const(0)            # fill value: the zero point
PP_PAD_L = const(1)         # columns added on the left
PP_LEN = const(2)

# LEAKY_RELU (activations.cc -> reference_ops::QuantizeLeakyRelu): d = x - in_zp is rescaled by the identity
# multiplier where d >= 0 and by the alpha multiplier where d < 0 (tiler/quant.py: leaky_relu_params).
OP_LEAKY_RELU = const(12)
OP_NAMES[OP_LEAKY_RELU] = "LEAKY_RELU"
PL_IN_ZP = const(0)
PL_OUT_ZP = const(1)
PL_MULT_ID = const(2)       # in_scale / out_scale (float32 quotient), quantized
PL_SHIFT_ID = const(3)
PL_MULT_ALPHA = const(4)    # in_scale * alpha / out_scale (float32), quantized; negative if alpha < 0
PL_SHIFT_ALPHA = const(5)
PL_LEN = const(6)
