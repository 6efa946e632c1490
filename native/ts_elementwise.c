/* Element-wise int8 ops: ADD (add.cc general rescaling path), QUANTIZE int8 -> int8 (Requantize), LEAKY_RELU
 * (activations.cc -> reference_ops::QuantizeLeakyRelu) and MEAN over H and W (reduce.cc -> QuantizedMeanOrSum),
 * the last split in two so the tiler can feed row bands. */
#include "ts_kernels.h"
#include "ts_util.h"

ts_status ts_add_s8(const int32_t *p, int32_t n, const int8_t *a, const int8_t *b, int8_t *out)
{
    int32_t i, ls;
    if (!p || !a || !b || !out || n < 0) return TS_ERR_ARG;
    ls = p[TS_PA_LEFT_SHIFT];
    if (ls < 0 || ls > 23 || p[TS_PA_S1] > 0 || p[TS_PA_S2] > 0 || p[TS_PA_SO] > 0) return TS_ERR_ARG;
    for (i = 0; i < n; i++) {
        /* (x - zp) fits 9 bits, so << 20 cannot overflow. */
        int32_t x1 = ((int32_t)a[i] - p[TS_PA_IN1_ZP]) * (1 << ls);
        int32_t x2 = ((int32_t)b[i] - p[TS_PA_IN2_ZP]) * (1 << ls);
        int32_t s = ts_mbqm(x1, p[TS_PA_M1], p[TS_PA_S1]) + ts_mbqm(x2, p[TS_PA_M2], p[TS_PA_S2]);
        int32_t v = ts_mbqm(s, p[TS_PA_MO], p[TS_PA_SO]) + p[TS_PA_OUT_ZP];
        out[i] = ts_clamp8(v, p[TS_PA_ACT_MIN], p[TS_PA_ACT_MAX]);
    }
    return TS_OK;
}

ts_status ts_requant_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out)
{
    int32_t i;
    if (!p || !in || !out || n < 0) return TS_ERR_ARG;
    for (i = 0; i < n; i++) {
        int32_t v = ts_mbqm((int32_t)in[i] - p[TS_PR_IN_ZP], p[TS_PR_MULT], p[TS_PR_SHIFT]) + p[TS_PR_OUT_ZP];
        out[i] = ts_clamp8(v, -128, 127);
    }
    return TS_OK;
}

ts_status ts_leaky_relu_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out)
{
    int32_t i, zp, mid, sid, ma, sa;
    if (!p || !in || !out || n < 0) return TS_ERR_ARG;
    zp = p[TS_PL_IN_ZP]; mid = p[TS_PL_MULT_ID]; sid = p[TS_PL_SHIFT_ID];
    ma = p[TS_PL_MULT_ALPHA]; sa = p[TS_PL_SHIFT_ALPHA];
    if (sid < -31 || sid > 31 || sa < -31 || sa > 31) return TS_ERR_ARG;
    for (i = 0; i < n; i++) {
        int32_t d = (int32_t)in[i] - zp;
        int32_t v = (d >= 0 ? ts_mbqm(d, mid, sid) : ts_mbqm(d, ma, sa)) + p[TS_PL_OUT_ZP];
        out[i] = ts_clamp8(v, -128, 127);
    }
    return TS_OK;
}

ts_status ts_mean_acc_s8(int32_t npix, int32_t c, const int8_t *in, int32_t *acc)
{
    int32_t i, k;
    if (!in || !acc || npix < 0 || c < 1) return TS_ERR_ARG;
    for (i = 0; i < npix; i++) {
        const int8_t *x = in + i * c;
        for (k = 0; k < c; k++) acc[k] = (int32_t)((uint32_t)acc[k] + (uint32_t)(int32_t)x[k]);
    }
    return TS_OK;
}

ts_status ts_mean_out_s8(const int32_t *p, const int32_t *acc, int8_t *out)
{
    int32_t k, c;
    int64_t zp_count;
    if (!p || !acc || !out || p[TS_PM_C] < 1 || p[TS_PM_COUNT] < 1) return TS_ERR_ARG;
    if (p[TS_PM_SHIFT] < -31 || p[TS_PM_SHIFT] > 31) return TS_ERR_ARG;
    c = p[TS_PM_C];
    zp_count = (int64_t)p[TS_PM_IN_ZP] * p[TS_PM_COUNT];
    for (k = 0; k < c; k++) {
        /* TFLite computes the difference in int64 and narrows it to int32 (wrapping). */
        int32_t d = (int32_t)(uint32_t)(uint64_t)((int64_t)acc[k] - zp_count);
        int32_t v = ts_mbqm(d, p[TS_PM_MULT], p[TS_PM_SHIFT]) + p[TS_PM_OUT_ZP];
        out[k] = ts_clamp8(v, -128, 127);
    }
    return TS_OK;
}
