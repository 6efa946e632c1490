/* tileswap tile kernels: int8 Eval, bit-exact with TensorFlow Lite's reference kernels (BUILTIN_REF).
 *
 * Portable C99: no malloc, printf or abort; the same files build for the host (cffi, native/build_cffi.py)
 * and for Cortex-M (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -O2, native/cortexm/). Every parameter that
 * can be computed ahead of time (the `p` vectors, per-channel multipliers) comes from the host-side Prepare
 * in tiler/quant.py. The slot indices below mirror device/opdefs.py; change both together.
 *
 * Two implementations of the arithmetic-heavy ops (docs/native.md):
 *   - ts_conv_s8, ts_dwconv_s8, ts_fc_s8: the fast kernels, the defaults. Blocked over output channels and
 *     pixels with int32 accumulators in registers; inner loops the host compiler vectorises, or, where the
 *     target has the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33), dual 16-bit multiply-accumulates
 *     (SMLAD). Same results, bit for bit, as
 *   - ts_conv_s8_ref, ts_dwconv_s8_ref, ts_fc_s8_ref: the naive kernels, kept as the reference (tests
 *     compare the two on every shape) and used by the fast ones for shapes they do not specialise.
 *
 * Conventions for every function:
 *   - argument order: params `p` (int32, read only), per-tile sizes, then each tensor's dims and data,
 *     output last; inputs are const; all buffers are owned by the caller and never retained.
 *   - tensors are int8, NHWC without the batch ([rows][width][channels]); multi-byte values (weight payload
 *     int32 arrays, `acc`) are little-endian, the byte order of both targets.
 *   - returns TS_OK, or TS_ERR_ARG for arguments a correct caller never passes (output then undefined).
 *   - scratch lives on the stack, bounded at compile time (ts_util.h): ts_conv_s8 about 5 * TS_COL_MAX +
 *     8 * TS_CONV_GC bytes (1.8 KiB on Cortex-M, 10.5 KiB on the host), ts_dwconv_s8 about 0.9 KiB, the
 *     other kernels under 300 bytes.
 *
 * Spatial band convention (CONV_2D, DEPTHWISE_CONV_2D, pools): a tile computes `oh` output rows, all
 * P_OUT_W columns and `g` channels. Output row oy, filter row ky read band row iy = y0 + oy*sh + ky*dh;
 * column ox, filter column kx read ix = ox*sw - pad_l + kx*dw. Positions outside [0, in_h) x [0, in_w)
 * are padding: they add nothing (TFLite's implicit padding with the input zero point) and pools leave them
 * out of the max and the average's count. Output (oy, ox, k) goes to out[oy*out_w*out_c + ox*out_c + k]
 * (out_c = P_OUT_C: `out` points at channel c0 of the tile's first output row).
 *
 * Weight payload (`wts`, conv / depthwise / FC): int8 filter, zero-padded to a multiple of 4 bytes, then
 * int32 bias[g], mult[g], shift[g]. Any byte alignment is accepted.
 */
#ifndef TS_KERNELS_H
#define TS_KERNELS_H

#include <stdint.h>

typedef enum { TS_OK = 0, TS_ERR_ARG = 1 } ts_status;

/* Spatial ops: CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D. */
#define TS_P_IN_W 0     /* input width, >= 1 */
#define TS_P_IN_C 1     /* input channels (pixel stride of the band), >= 1 */
#define TS_P_OUT_W 2    /* output width, >= 1 */
#define TS_P_OUT_C 3    /* output channels of the whole tensor (pixel stride of the output) */
#define TS_P_KH 4       /* filter / window height, >= 1 */
#define TS_P_KW 5       /* filter / window width, >= 1 */
#define TS_P_SH 6       /* stride, rows, >= 1 */
#define TS_P_SW 7       /* stride, columns, >= 1 */
#define TS_P_DH 8       /* dilation, rows, >= 1 (1 for pools) */
#define TS_P_DW 9       /* dilation, columns, >= 1 (1 for pools) */
#define TS_P_PAD_L 10   /* padding on the left, >= 0 */
#define TS_P_IN_ZP 11   /* input zero point, [-128, 127] */
#define TS_P_OUT_ZP 12  /* output zero point, [-128, 127] */
#define TS_P_ACT_MIN 13 /* clamp low, [-128, 127] */
#define TS_P_ACT_MAX 14 /* clamp high, [ACT_MIN, 127] */
#define TS_P_DM 15      /* depth multiplier (depthwise), else 1 */
#define TS_P_SPATIAL_LEN 16

/* FULLY_CONNECTED */
#define TS_PF_N 0       /* input features per row */
#define TS_PF_OUT_C 1   /* output features of the whole tensor (row stride of the output) */
#define TS_PF_IN_ZP 2
#define TS_PF_OUT_ZP 3
#define TS_PF_ACT_MIN 4
#define TS_PF_ACT_MAX 5
#define TS_PF_LEN 6

/* ADD */
#define TS_PA_IN1_ZP 0
#define TS_PA_IN2_ZP 1
#define TS_PA_OUT_ZP 2
#define TS_PA_LEFT_SHIFT 3 /* 20 for int8 */
#define TS_PA_M1 4
#define TS_PA_S1 5         /* shifts are exponents <= 0 (right shifts) */
#define TS_PA_M2 6
#define TS_PA_S2 7
#define TS_PA_MO 8
#define TS_PA_SO 9
#define TS_PA_ACT_MIN 10
#define TS_PA_ACT_MAX 11
#define TS_PA_LEN 12

/* QUANTIZE int8 -> int8 */
#define TS_PR_IN_ZP 0
#define TS_PR_OUT_ZP 1
#define TS_PR_MULT 2
#define TS_PR_SHIFT 3
#define TS_PR_LEN 4

/* MEAN over H and W; MULT / SHIFT already include the 1/COUNT that TFLite folds in (tiler/quant.py). */
#define TS_PM_C 0
#define TS_PM_COUNT 1
#define TS_PM_IN_ZP 2
#define TS_PM_OUT_ZP 3
#define TS_PM_MULT 4
#define TS_PM_SHIFT 5
#define TS_PM_LEN 6

/* LEAKY_RELU (activations.cc, reference_ops::QuantizeLeakyRelu): x - in_zp >= 0 is rescaled by the identity
 * multiplier (in_scale / out_scale), below zero by the alpha multiplier (in_scale * alpha / out_scale). */
#define TS_PL_IN_ZP 0
#define TS_PL_OUT_ZP 1
#define TS_PL_MULT_ID 2
#define TS_PL_SHIFT_ID 3    /* [-31, 31] */
#define TS_PL_MULT_ALPHA 4  /* negative for a negative alpha */
#define TS_PL_SHIFT_ALPHA 5 /* [-31, 31] */
#define TS_PL_LEN 6

/* SOFTMAX over the last axis */
#define TS_PS_N 0
#define TS_PS_INPUT_MULT 1   /* input_beta_multiplier */
#define TS_PS_INPUT_LSHIFT 2 /* input_beta_left_shift, [0, 31] */
#define TS_PS_DIFF_MIN 3     /* x - max below this gives 0 */
#define TS_PS_OUT_ZP 4       /* -128 (output scale 1/256) */
#define TS_PS_LEN 5

/* gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2**31 rounded to nearest; the one overflow
 * (INT32_MIN * INT32_MIN) saturates. gemmlowp nudges by +-2**30 and truncates toward zero; for every
 * other pair that equals floor((a*b + 2**30) / 2**31) (for a*b < 0: trunc((ab + 1 - 2**30) / 2**31) =
 * floor((ab + 1 - 2**30 + 2**31 - 1) / 2**31)), one 64-bit multiply-add and a shift (SMLAL on Cortex-M).
 * Relies on >> of a negative int64 being arithmetic (GCC, Clang). */
static inline int32_t ts_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2**e rounded to nearest, ties away from zero; e in [0, 31].
 * e >= 32 returns 0 (the exact rounded quotient of a non-negative x); TFLite aborts there instead: it is
 * reached only by a softmax row whose sum of exps is >= 2**28, e.g. 512 or more entries equal to the max. */
static inline int32_t ts_rdbpot(int32_t x, int32_t e)
{
    int32_t mask, rem, thr;
    if (e >= 32) return 0;
    mask = (int32_t)((1u << e) - 1u);
    rem = x & mask;
    thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

/* The one requantize: TFLite's MultiplyByQuantizedMultiplier (double rounding, no TFLITE_SINGLE_ROUNDING).
 * Returns x * mult * 2**(shift - 31): x shifted left by max(shift, 0) (wrapping like TFLite's int32
 * multiply), SRDHM by mult (in [0, 2**31)), then a rounding right shift by max(-shift, 0).
 * shift in [-31, 31]; the same function is MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0)
 * and ...GreaterThanOne (shift >= 0). Used by every op except FULLY_CONNECTED (see ts_mbqm_single). */
static inline int32_t ts_mbqm(int32_t x, int32_t mult, int32_t shift)
{
    int32_t ls = shift > 0 ? shift : 0;
    int32_t rs = shift > 0 ? 0 : -shift;
    return ts_rdbpot(ts_srdhm((int32_t)((uint32_t)x << ls), mult), rs);
}

/* TFLite's 64-bit MultiplyByQuantizedMultiplier, used by FULLY_CONNECTED (BUILTIN_REF, TF 2.21, per-tensor
 * and per-channel alike; verified against the interpreter): ONE rounding,
 * (x * mult + 2**(30 - shift)) >> (31 - shift), i.e. ties toward +infinity. shift in [-31, 30]. */
static inline int32_t ts_mbqm_single(int32_t x, int32_t mult, int32_t shift)
{
    int64_t total = 31 - shift;
    return (int32_t)(((int64_t)x * (int64_t)mult + ((int64_t)1 << (total - 1))) >> total);
}

/* CONV_2D, one tile (band convention above).
 *   p    in  int32[TS_P_SPATIAL_LEN]
 *   y0   in  band row read by output row 0, filter row 0 (may be negative: padding above)
 *   oh   in  output rows, >= 1;  g  in  output channels of this tile, [1, out_c]
 *   in_h in  band rows, >= 1;   in  in  int8 [in_h][in_w][in_c]
 *   wts  in  filter int8 [g][kh][kw][in_c] + bias/mult/shift [g]
 *   out  out int8, oh rows of stride out_w*out_c; g channels written per pixel
 * Fast path: pixels in pairs, each pair's receptive fields gathered once into int16 columns (zero point
 * subtracted, padding 0; a 1x1 filter widens its input pixel directly), then 2 channels x 2 pixels per
 * inner product; filters longer than TS_COL_MAX are taken TS_COL_MAX values at a time; on Cortex-M with the
 * DSP extension, requantization fused into the channel-pair loop where SMMLAR is exact (ts_conv.c). */
ts_status ts_conv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                     int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_conv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                         int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);

/* DEPTHWISE_CONV_2D: output channel c0 + k reads input channel (c0 + k) / dm.
 *   c0, g  in  first output channel and count, multiples of dm, c0 + g <= in_c * dm
 *   wts    in  filter int8 [kh][kw][g] + bias/mult/shift [g]; other arguments as ts_conv_s8
 * Fast path (dm == 1, windows of up to 25 taps): the window's valid taps listed once per pixel, channels
 * in blocks with the accumulators in registers, pixels requantized in pairs; a full 3x3 window runs the
 * tap loop with a literal count. Otherwise the reference. */
ts_status ts_dwconv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                       int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_dwconv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                           int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);

/* MAX_POOL_2D / AVERAGE_POOL_2D: output channel c0 + k from input channel c0 + k, c0 + g <= in_c.
 * Average: sum / count of valid positions, rounded half away from zero; both clamp to ACT_MIN..MAX. */
ts_status ts_maxpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out);
ts_status ts_avgpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out);

/* FULLY_CONNECTED: `rows` input vectors of n = p[TS_PF_N] int8 (contiguous), g output features;
 * requantized with ts_mbqm_single, not ts_mbqm.
 *   wts in  filter int8 [g][n] + bias/mult/shift [g] (filter zero point 0)
 *   out out row r, feature k at out[r*out_c + k]
 * Fast path: 4 features per pass over the input row (no scratch). */
ts_status ts_fc_s8(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                   int8_t *out);
ts_status ts_fc_s8_ref(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                       int8_t *out);

/* ADD of n elements, TFLite's int8 scheme (inputs << left_shift, each rescaled, sum rescaled). */
ts_status ts_add_s8(const int32_t *p, int32_t n, const int8_t *a, const int8_t *b, int8_t *out);

/* QUANTIZE int8 -> int8 of n elements: clamp(MBQM(x - in_zp, mult, shift) + out_zp, -128, 127). */
ts_status ts_requant_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out);

/* LEAKY_RELU of n elements: d = x - in_zp; clamp(MBQM(d, d >= 0 ? identity : alpha) + out_zp, -128, 127). */
ts_status ts_leaky_relu_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out);

/* MEAN, first half: acc[ch] += sum of npix pixels of c channels (int8 [npix][c]).
 *   acc in/out int32[c], 4-byte aligned, zeroed by the caller before the first band.
 * Sums wrap at 2**32 like TFLite's int32 accumulator (no overflow below 2**24 pixels). */
ts_status ts_mean_acc_s8(int32_t npix, int32_t c, const int8_t *in, int32_t *acc);

/* MEAN, second half: out[ch] = clamp(MBQM(acc[ch] - in_zp*count, mult, shift) + out_zp), ch < p[TS_PM_C]. */
ts_status ts_mean_out_s8(const int32_t *p, const int32_t *acc, int8_t *out);

/* SOFTMAX over rows of n = p[TS_PS_N]: gemmlowp fixed-point exp of the scaled differences to the row max
 * (5 integer bits), a 12-integer-bit sum, its fixed-point reciprocal; int8 output, scale 1/256, zp -128. */
ts_status ts_softmax_s8(const int32_t *p, int32_t rows, const int8_t *in, int8_t *out);

/* K-split 1x1 convolution (stride 1, no padding), first half: partial sums over one input chunk.
 *   in  int8 [npix][ch]: ch channels of each pixel (one chunk of the input's channels)
 *   w   int8 [q][ch]: the filter of q output channels over those input channels
 *   acc int32 [npix][q], 4-byte aligned: = sum if first, else += sum (wrapping like TFLite's int32 sums),
 *       where sum = sum_k (in[i][k] - in_zp) * w[o][k]; ch < 2**15. */
ts_status ts_conv_acc_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, int32_t first,
                         const int8_t *in, const int8_t *w, int32_t *acc);

/* K-split, second half: out[i*out_c + o] = clamp(MBQM(acc[i][o] + bias[o], mult[o], shift[o]) + out_zp),
 * bias/mult/shift [q] after the filter [q][ch] (padded to 4) in wts, as in a CONV_2D payload.
 * In place: out may equal (int8_t *)acc when out_c == q (device/ops.py run_ksplit requantizes a chunked
 * or one-group output band over its sums): acc[i][o] is read before out[i*out_c + o] is written, in
 * ascending order, so no write reaches a sum not yet read. Keep it so (no restrict, no reordering). */
ts_status ts_acc_out_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, const int32_t *acc,
                        const int8_t *wts, int8_t *out);

#endif /* TS_KERNELS_H */
