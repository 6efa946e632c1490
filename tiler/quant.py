"""Prepare-side parameter math: TFLite's int8 Prepare, bit for bit, on the host.

The device only runs Eval, so every multiplier, shift, clamp and padding is computed here and stored in the
image as the int32 `p` vectors named in `device/opdefs.py`, plus per-channel arrays in weight payloads.

Scales are the float32 values from the model (Python floats holding float32 values are fine). Where TFLite
mixes float32 and double arithmetic, so does this module: which one is used is part of the result.

    p = conv_params(in_w=32, in_c=3, out_w=16, out_c=8, kh=3, kw=3, sh=2, sw=2, pad_l=0,
                    in_zp=-1, out_zp=-128, out_scale=0.02, fused='RELU6')
    mult, shift = per_channel_requant(in_scale, filter_scales, out_scale)
    payload = pack_weights_payload(filter_q, bias_q, mult, shift)
"""

import math
from array import array

import numpy as np

from tileswap.device import opdefs as d

_F32 = np.float32
# TFLite's softmax: differences are scaled into a fixed-point number with 5 integer bits.
_SOFTMAX_DIFF_INTEGER_BITS = 5
# TFLite's int8 ADD: inputs are shifted left by 20 before rescaling to keep precision.
_ADD_LEFT_SHIFT = 20


def _round_half_away(x):
    """std::round: halves go away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier: `real` ~= mult * 2**(shift - 31), mult in [2**30, 2**31) (or 0).

    frexp gives q in [0.5, 1); q * 2**31 is rounded half away from zero; a rounding up to 2**31 is halved
    with shift + 1; a shift below -31 flushes the multiplier to (0, 0). Returns (mult, shift)."""
    real = float(real)
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _quantize_multiplier_smaller_than_one(real):
    mult, shift = quantize_multiplier(real)
    if not 0.0 < real < 1.0 or shift > 0:
        raise ValueError(f"multiplier {real} must be in (0, 1)")
    return mult, shift


def _quantize_multiplier_greater_than_one(real):
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real} must be >= 1")
    return mult, shift


def activation_range(fused, scale, zero_point):
    """CalculateActivationRangeQuantized for an int8 output: (act_min, act_max).

    `fused` is 'NONE', 'RELU', 'RELU6' or 'RELU_N1_TO_1'. TFLite quantizes the bounds as
    `zero_point + round(f / scale)` with the division in float32 and rounding half away from zero."""
    def q(f):
        v = float(_F32(f) / _F32(scale))
        return zero_point + _round_half_away(v) if math.isfinite(v) else (127 if v > 0 else -128)
    if fused == "NONE":
        return -128, 127
    if fused == "RELU":
        return max(-128, q(0.0)), 127
    if fused == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if fused == "RELU_N1_TO_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise ValueError(f"unsupported fused activation {fused!r}")


def padding(*, in_size, k, stride, dilation=1, mode):
    """TFLite's output size and leading padding along one axis: (out_size, pad_before).

    mode is 'SAME' or 'VALID'. SAME pads total = (out-1)*stride + eff_k - in, pad_before = total // 2."""
    eff = (k - 1) * dilation + 1
    if mode == "SAME":
        out = (in_size + stride - 1) // stride
    elif mode == "VALID":
        out = (in_size - eff + stride) // stride
    else:
        raise ValueError(f"unsupported padding {mode!r}")
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2


def per_channel_requant(in_scale, filter_scales, out_scale):
    """Per-channel (mult, shift) int32 arrays of CONV_2D / DEPTHWISE_CONV_2D (and per-channel FC).

    PopulateConvolutionQuantizationParams: double(in_scale) * double(filter_scale[c]) / double(out_scale);
    a single filter scale (per-tensor) gives one entry, which callers repeat per channel."""
    mult, shift = [], []
    for fs in np.atleast_1d(np.asarray(filter_scales, dtype=np.float32)):
        m, s = quantize_multiplier(float(in_scale) * float(fs) / float(out_scale))
        mult.append(m)
        shift.append(s)
    return np.array(mult, dtype=np.int32), np.array(shift, dtype=np.int32)


def fc_requant(in_scale, filter_scales, out_scale, *, out_c):
    """(mult, shift) int32 arrays of length out_c for FULLY_CONNECTED, per-tensor or per-channel weights.

    Verified against TF 2.21's interpreter: the multiplier is double(in) * double(filter[c]) / double(out)
    as for convolutions (not the float32 product of GetQuantizedConvolutionMultipler), and the kernel
    requantizes with single rounding (ts_mbqm_single), so shifts must be <= 30."""
    fs = np.atleast_1d(np.asarray(filter_scales, dtype=np.float32))
    if fs.size not in (1, out_c):
        raise ValueError(f"{fs.size} filter scales for {out_c} output features")
    mult, shift = per_channel_requant(in_scale, fs, out_scale)
    if (shift > 30).any():
        raise ValueError("FULLY_CONNECTED multiplier too large (shift > 30)")
    return np.resize(mult, out_c), np.resize(shift, out_c)


def pack_weights_payload(filter_int8, bias_int32, mult, shift):
    """One tile's weights: int8 filter bytes (C order, e.g. [g][kh][kw][in_c]), zero-padded to a multiple of
    4 bytes, then little-endian int32 bias[g], mult[g], shift[g]. `bias_int32` may be None (zeros)."""
    f = np.ascontiguousarray(filter_int8, dtype=np.int8).tobytes()
    n = len(np.atleast_1d(mult))
    bias = np.zeros(n, np.int32) if bias_int32 is None else np.asarray(bias_int32, dtype=np.int32)
    parts = [np.asarray(a, dtype="<i4").reshape(-1) for a in (bias, mult, shift)]
    if not all(a.size == n for a in parts):
        raise ValueError("bias, mult and shift must have the same length")
    return f + bytes(-len(f) % 4) + b"".join(a.tobytes() for a in parts)


def _vec(n, values):
    p = array("i", bytes(4 * n))
    for i, v in values.items():
        p[i] = int(v)
    return p


def conv_params(*, in_w, in_c, out_w, out_c, kh, kw, sh=1, sw=1, dh=1, dw=1, pad_l,
                in_zp, out_zp, out_scale, fused="NONE", dm=1):
    """The spatial p vector of CONV_2D (and, with dm, DEPTHWISE_CONV_2D): slots P_* of device/opdefs.py."""
    lo, hi = activation_range(fused, out_scale, out_zp)
    return _vec(d.P_SPATIAL_LEN, {
        d.P_IN_W: in_w, d.P_IN_C: in_c, d.P_OUT_W: out_w, d.P_OUT_C: out_c, d.P_KH: kh, d.P_KW: kw,
        d.P_SH: sh, d.P_SW: sw, d.P_DH: dh, d.P_DW: dw, d.P_PAD_L: pad_l, d.P_IN_ZP: in_zp,
        d.P_OUT_ZP: out_zp, d.P_ACT_MIN: lo, d.P_ACT_MAX: hi, d.P_DM: dm})


def dwconv_params(*, in_w, in_c, out_w, kh, kw, sh=1, sw=1, dh=1, dw=1, pad_l,
                  in_zp, out_zp, out_scale, fused="NONE", dm=1):
    """The spatial p vector of DEPTHWISE_CONV_2D; out_c = in_c * dm."""
    return conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=in_c * dm, kh=kh, kw=kw, sh=sh, sw=sw,
                       dh=dh, dw=dw, pad_l=pad_l, in_zp=in_zp, out_zp=out_zp, out_scale=out_scale,
                       fused=fused, dm=dm)


def pool_params(*, in_w, in_c, out_w, kh, kw, sh=1, sw=1, pad_l, zp, out_scale, fused="NONE"):
    """The spatial p vector of MAX_POOL_2D / AVERAGE_POOL_2D (input and output share scale and zero point;
    the activation range uses the output's)."""
    return conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=in_c, kh=kh, kw=kw, sh=sh, sw=sw,
                       pad_l=pad_l, in_zp=zp, out_zp=zp, out_scale=out_scale, fused=fused)


def fc_params(*, n, out_c, in_zp, out_zp, out_scale, fused="NONE"):
    """The PF_* p vector of FULLY_CONNECTED (per-feature mult/shift go in the payload; see fc_requant)."""
    lo, hi = activation_range(fused, out_scale, out_zp)
    return _vec(d.PF_LEN, {d.PF_N: n, d.PF_OUT_C: out_c, d.PF_IN_ZP: in_zp, d.PF_OUT_ZP: out_zp,
                           d.PF_ACT_MIN: lo, d.PF_ACT_MAX: hi})


def add_params(*, in1_scale, in1_zp, in2_scale, in2_zp, out_scale, out_zp, fused="NONE"):
    """The PA_* p vector of int8 ADD (add.cc, general rescaling path).

    twice_max = 2 * max(s1, s2) (float32, exact); inputs are scaled by s_i / twice_max after a left shift
    of 20, the sum by twice_max / (2**20 * s_out); each multiplier must be < 1 (shift <= 0)."""
    s1, s2, so = float(_F32(in1_scale)), float(_F32(in2_scale)), float(_F32(out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, e1 = _quantize_multiplier_smaller_than_one(s1 / twice_max)
    m2, e2 = _quantize_multiplier_smaller_than_one(s2 / twice_max)
    mo, eo = _quantize_multiplier_smaller_than_one(twice_max / float(_F32((1 << _ADD_LEFT_SHIFT) * so)))
    lo, hi = activation_range(fused, out_scale, out_zp)
    return _vec(d.PA_LEN, {d.PA_IN1_ZP: in1_zp, d.PA_IN2_ZP: in2_zp, d.PA_OUT_ZP: out_zp,
                           d.PA_LEFT_SHIFT: _ADD_LEFT_SHIFT, d.PA_M1: m1, d.PA_S1: e1, d.PA_M2: m2,
                           d.PA_S2: e2, d.PA_MO: mo, d.PA_SO: eo, d.PA_ACT_MIN: lo, d.PA_ACT_MAX: hi})


def requant_params(*, in_scale, in_zp, out_scale, out_zp):
    """The PR_* p vector of QUANTIZE int8 -> int8: multiplier double(in_scale) / double(out_scale)."""
    m, s = quantize_multiplier(float(in_scale) / float(out_scale))
    return _vec(d.PR_LEN, {d.PR_IN_ZP: in_zp, d.PR_OUT_ZP: out_zp, d.PR_MULT: m, d.PR_SHIFT: s})


def mean_params(*, c, count, in_scale, in_zp, out_scale, out_zp):
    """The PM_* p vector of int8 MEAN over H and W (`count` = H * W elements per channel).

    TFLite (reduce.cc -> reference_ops::QuantizedMeanOrSum) quantizes in_scale / out_scale, then folds
    1/count into it in integers: k = min(floor(log2(count)), 32, 31 + shift), mult = (mult << k) // count,
    shift -= k. PM_MULT / PM_SHIFT hold the folded values; Eval computes
    clamp(MBQM(sum - in_zp * count, mult, shift) + out_zp)."""
    if count <= 0:
        raise ValueError("MEAN over an empty window")
    m, s = quantize_multiplier(float(in_scale) / float(out_scale))
    k = min(int(count).bit_length() - 1, 32, 31 + s)  # >= 0: quantize_multiplier keeps s >= -31
    m = (m << k) // count
    return _vec(d.PM_LEN, {d.PM_C: c, d.PM_COUNT: count, d.PM_IN_ZP: in_zp, d.PM_OUT_ZP: out_zp,
                           d.PM_MULT: m, d.PM_SHIFT: s - k})


def softmax_params(*, n, in_scale, beta=1.0, out_scale=1.0 / 256, out_zp=-128):
    """The PS_* p vector of int8 SOFTMAX (activations.cc, reference path: gemmlowp fixed point).

    PreprocessSoftmaxScaling: real = min(beta * in_scale * 2**(31 - 5), 2**31 - 1), quantized as a
    multiplier >= 1 (left shift >= 0); diff_min = -floor(31 * 2**26 / 2**left_shift) (CalculateInputRadius).
    TFLite requires the output to be scale 1/256, zero point -128."""
    if float(_F32(out_scale)) != 1.0 / 256 or out_zp != -128:
        raise ValueError("int8 SOFTMAX output must have scale 1/256 and zero point -128")
    bits = _SOFTMAX_DIFF_INTEGER_BITS
    real = min(float(beta) * float(in_scale) * float(1 << (31 - bits)), float((1 << 31) - 1))
    m, ls = _quantize_multiplier_greater_than_one(real)
    radius = ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << ls)
    return _vec(d.PS_LEN, {d.PS_N: n, d.PS_INPUT_MULT: m, d.PS_INPUT_LSHIFT: ls,
                           d.PS_DIFF_MIN: -int(math.floor(radius)), d.PS_OUT_ZP: out_zp})


def _quantize_multiplier_signed(real):
    """QuantizeMultiplier for any finite `real`, negative included (TFLite's handles the sign through frexp):
    the magnitude rounds as in quantize_multiplier, but a negative q rounding to -2**31 stays INT32_MIN
    (TFLite halves only +2**31)."""
    real = float(real)
    if real >= 0:
        return quantize_multiplier(real)
    if not math.isfinite(real):
        raise ValueError(f"multiplier must be finite, got {real}")
    q, shift = math.frexp(real)
    q_fixed = -_round_half_away(-q * (1 << 31))
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def leaky_relu_params(*, in_scale, in_zp, out_scale, out_zp, alpha):
    """The PL_* p vector of int8 LEAKY_RELU (activations.cc: LeakyReluPrepare, reference_ops::QuantizeLeakyRelu).

    TFLite forms both multipliers in float32 and widens them to double: alpha_multiplier =
    in_scale * alpha / out_scale, identity_multiplier = in_scale / out_scale (float products and quotients),
    each through QuantizeMultiplier. Eval: d = x - in_zp; out = clamp(out_zp + MBQM(d, identity) if d >= 0
    else out_zp + MBQM(d, alpha), -128, 127), MBQM with double rounding (ts_mbqm)."""
    f = np.float32
    alpha_mult = float(f(f(f(in_scale) * f(alpha)) / f(out_scale)))
    ident_mult = float(f(f(in_scale) / f(out_scale)))
    mi, si = quantize_multiplier(ident_mult)
    ma, sa = _quantize_multiplier_signed(alpha_mult)
    return _vec(d.PL_LEN, {d.PL_IN_ZP: in_zp, d.PL_OUT_ZP: out_zp, d.PL_MULT_ID: mi, d.PL_SHIFT_ID: si,
                           d.PL_MULT_ALPHA: ma, d.PL_SHIFT_ALPHA: sa})
