/* K-split 1x1 convolution (tiler/plan.py _tile_ksplit, device/ops.py run_ksplit): int32 sums over one
 * input-channel chunk at a time, then one requantization. Plain loops (the compiler vectorises the dot
 * products); these ops are bound by the card reads they save, not by their MACs. */
#include <string.h>

#include "ts_kernels.h"
#include "ts_util.h"

TS_HOT ts_status ts_conv_acc_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, int32_t first,
                                const int8_t *in, const int8_t *w, int32_t *acc)
{
    int32_t i, o, k, zp;
    if (!p || !in || !w || !acc || npix < 0 || q < 1 || ch < 1 || ch >= 32768) return TS_ERR_ARG;
    zp = p[TS_P_IN_ZP];
    for (i = 0; i < npix; i++) {
        const int8_t *x = in + i * ch;
        int32_t *a = acc + i * q;
        for (o = 0; o < q; o++) {
            const int8_t *f = w + o * ch;
            int32_t s = 0;              /* |s| < 255 * 128 * 2**15 < 2**31 */
            for (k = 0; k < ch; k++) s += ((int32_t)x[k] - zp) * f[k];
            a[o] = first ? s : (int32_t)((uint32_t)a[o] + (uint32_t)s);
        }
    }
    return TS_OK;
}

/* out may lie over acc (out_c == q): see ts_kernels.h. */
ts_status ts_acc_out_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, const int32_t *acc,
                        const int8_t *wts, int8_t *out)
{
    const uint8_t *tail;
    int32_t i, k, out_c;
    if (!p || !acc || !wts || !out || npix < 0 || q < 1 || ch < 1) return TS_ERR_ARG;
    out_c = p[TS_P_OUT_C];
    if (q > out_c || p[TS_P_ACT_MIN] < -128 || p[TS_P_ACT_MAX] > 127 || p[TS_P_ACT_MIN] > p[TS_P_ACT_MAX])
        return TS_ERR_ARG;
    tail = (const uint8_t *)wts + ts_align4(q * ch);
    for (k = 0; k < q; k++) {
        int32_t s = ts_ld32(tail, 2 * q + k);
        if (s < -31 || s > 30) return TS_ERR_ARG;
    }
    for (i = 0; i < npix; i++)
        for (k = 0; k < q; k++) {
            int32_t v = (int32_t)((uint32_t)acc[i * q + k] + (uint32_t)ts_ld32(tail, k));   /* + bias, wrapping */
            out[i * out_c + k] = ts_requant_ch(v, tail, q, k, p);
        }
    return TS_OK;
}
