/* FULLY_CONNECTED tile, the fast kernel: four output features per pass over an input row, the row widened
 * as it is read (ts_dot_4x1: SMLAD on DSP targets, vectorised plain C elsewhere). Same results as
 * ts_fc_s8_ref (ts_fc_ref.c), which documents the arithmetic. */
#include "ts_kernels.h"
#include "ts_simd.h"

TS_HOT
ts_status ts_fc_s8(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                   int8_t *out)
{
    int32_t n, out_c, in_off, out_zp, lo, hi, r, k, j;
    const uint8_t *tail;
    if (!p || !in || !wts || !out || rows < 0) return TS_ERR_ARG;
    if (ts_fc_check(p, g, wts) != TS_OK) return TS_ERR_ARG;
    n = p[TS_PF_N]; out_c = p[TS_PF_OUT_C]; in_off = -p[TS_PF_IN_ZP];
    out_zp = p[TS_PF_OUT_ZP]; lo = p[TS_PF_ACT_MIN]; hi = p[TS_PF_ACT_MAX];
    tail = (const uint8_t *)wts + ts_align4(g * n);
    for (r = 0; r < rows; r++) {
        const int8_t *x = in + r * n;
        int8_t *o = out + r * out_c;
        for (k = 0; k < g; k += 4) {
            /* Slot j of the four accumulators holds feature k + order[m][j] (rows f0, f1, f0 + s2, f1 + s2 of
             * ts_dot_4x1); a last group of m < 4 features repeats some, which then write the same byte twice. */
            static const int8_t order[5][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 1, 0, 1}, {1, 0, 2, 1}, {0, 1, 2, 3}};
            int32_t m = g - k < 4 ? g - k : 4, acc[4];
            const int8_t *sel = order[m];
            for (j = 0; j < 4; j++) acc[j] = ts_ld32(tail, k + sel[j]);
            ts_dot_4x1(wts + (k + sel[0]) * n, wts + (k + sel[1]) * n, (sel[2] - sel[0]) * n, x, n, in_off, acc);
            for (j = 0; j < 4; j++) {
                int32_t c = k + sel[j];
                int32_t v = ts_mbqm_single(acc[j], ts_ld32(tail, g + c), ts_ld32(tail, 2 * g + c)) + out_zp;
                o[c] = ts_clamp8(v, lo, hi);
            }
        }
    }
    return TS_OK;
}
