/* FULLY_CONNECTED tile, the naive kernel (TFLite reference_integer_ops::FullyConnected[PerChannel]): the
 * reference of ts_fc_s8 (ts_fc.c). The filter zero point is 0 (symmetric int8 weights), so
 * acc = bias + sum filter * (x - in_zp). Unlike convolutions, TFLite (2.21, BUILTIN_REF) requantizes FC
 * accumulators with the single-rounding 64-bit multiply. */
#include "ts_kernels.h"
#include "ts_util.h"

/* The FC p vector and the payload's shifts (the single-rounding multiply needs shift <= 30). */
ts_status ts_fc_check(const int32_t *p, int32_t g, const int8_t *wts)
{
    int32_t k, n = p[TS_PF_N];
    const uint8_t *tail;
    if (n < 1 || g < 1 || g > p[TS_PF_OUT_C]) return TS_ERR_ARG;
    if (p[TS_PF_ACT_MIN] < -128 || p[TS_PF_ACT_MAX] > 127 || p[TS_PF_ACT_MIN] > p[TS_PF_ACT_MAX]) return TS_ERR_ARG;
    tail = (const uint8_t *)wts + ts_align4(g * n);
    for (k = 0; k < g; k++) {
        int32_t s = ts_ld32(tail, 2 * g + k);
        if (s < -31 || s > 30) return TS_ERR_ARG;
    }
    return TS_OK;
}

ts_status ts_fc_s8_ref(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                       int8_t *out)
{
    int32_t n, out_c, in_off, r, k, i;
    const uint8_t *tail;
    if (!p || !in || !wts || !out || rows < 0) return TS_ERR_ARG;
    if (ts_fc_check(p, g, wts) != TS_OK) return TS_ERR_ARG;
    n = p[TS_PF_N]; out_c = p[TS_PF_OUT_C]; in_off = -p[TS_PF_IN_ZP];
    tail = (const uint8_t *)wts + ts_align4(g * n);
    for (r = 0; r < rows; r++) {
        const int8_t *x = in + r * n;
        for (k = 0; k < g; k++) {
            const int8_t *f = wts + k * n;
            int32_t acc = ts_ld32(tail, k);
            for (i = 0; i < n; i++) acc += (int32_t)f[i] * ((int32_t)x[i] + in_off);
            acc = ts_mbqm_single(acc, ts_ld32(tail, g + k), ts_ld32(tail, 2 * g + k)) + p[TS_PF_OUT_ZP];
            out[r * out_c + k] = ts_clamp8(acc, p[TS_PF_ACT_MIN], p[TS_PF_ACT_MAX]);
        }
    }
    return TS_OK;
}
