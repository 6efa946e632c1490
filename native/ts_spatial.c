/* Shared by the spatial kernels (convolutions and pools): the p vector check, the valid taps of a window
 * along one axis, and the requantization of a row of convolution accumulators. */
#include "ts_kernels.h"
#include "ts_util.h"

/* The spatial p vector, checked once per call so the loops can trust it. */
ts_status ts_spatial_check(const int32_t *p, int32_t oh, int32_t in_h, const void *in, const void *out)
{
    if (!p || !in || !out || oh < 1 || in_h < 1) return TS_ERR_ARG;
    if (p[TS_P_IN_W] < 1 || p[TS_P_IN_C] < 1 || p[TS_P_OUT_W] < 1 || p[TS_P_OUT_C] < 1) return TS_ERR_ARG;
    if (p[TS_P_KH] < 1 || p[TS_P_KW] < 1 || p[TS_P_SH] < 1 || p[TS_P_SW] < 1) return TS_ERR_ARG;
    if (p[TS_P_DH] < 1 || p[TS_P_DW] < 1 || p[TS_P_PAD_L] < 0 || p[TS_P_DM] < 1) return TS_ERR_ARG;
    if (p[TS_P_ACT_MIN] < -128 || p[TS_P_ACT_MAX] > 127 || p[TS_P_ACT_MIN] > p[TS_P_ACT_MAX]) return TS_ERR_ARG;
    return TS_OK;
}

/* Valid filter taps [*k0, *k1) along one axis for a window whose tap 0 reads `start`:
 * start + k*dil in [0, size). */
void ts_tap_range(int32_t start, int32_t dil, int32_t k, int32_t size, int32_t *k0, int32_t *k1)
{
    int32_t a = 0, b = k;
    if (start < 0) a = (-start + dil - 1) / dil;
    if (start + (k - 1) * dil >= size) b = (size - 1 - start) / dil + 1;
    if (b < a || size - 1 - start < 0) b = a;
    *k0 = a;
    *k1 = b;
}

/* The requantization check of ts_requant_row's fast path, once per tile: every multiplier other than
 * INT32_MIN (TFLite's Prepare makes [2**30, 2**31) or 0) and every shift in [-31, 31]. */
int32_t ts_requant_simple(const uint8_t *tail, int32_t g)
{
    int32_t k;
    for (k = 0; k < g; k++) {
        int32_t m = ts_ld32(tail, g + k), s = ts_ld32(tail, 2 * g + k);
        if (m == INT32_MIN || s < -31 || s > 31) return 0;
    }
    return 1;
}

#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#define ts_sat8(v) __ssat((v), 8)
#else
#define ts_sat8(v) ts_clamp8((v), -128, 127)
#endif

/* One output of ts_requant_row's Cortex-M fast path: ts_mbqm for a multiplier other than INT32_MIN and a
 * shift in [-31, 31] (ls = max(shift, 0), rs = max(-shift, 0), mask = 2**rs - 1), where SRDHM is
 * floor((x * mult + 2**30) / 2**31) (one SMLAL) and RDBPOT needs no guard; clamped to [lz, hz]. */
static inline int32_t rq_fast(int32_t x, int32_t mult, int32_t ls, int32_t rs, int32_t mask, int32_t lz, int32_t hz)
{
    int32_t h = (int32_t)(((int64_t)(int32_t)((uint32_t)x << ls) * mult + ((int64_t)1 << 30)) >> 31);
    int32_t v = (h >> rs) + ((h & mask) > (mask >> 1) + (int32_t)((uint32_t)h >> 31));
    v = v < lz ? lz : v;
    return v > hz ? hz : v;
}

/* On the host a plain loop over channels that the compiler vectorises with AVX2 (the x86 clones), 64-bit
 * products and all. On Cortex-M, when `simple` (ts_requant_simple), rq_fast with each channel's values
 * computed once for both pixels, in pointer loops whose every value fits a register (GCC -O2): about 32
 * instructions for one pixel, 50 for a pair, against 45 per output through ts_mbqm. */
TS_HOT
void ts_requant_row(const int32_t *acc, const int32_t *acc1, int32_t n, const uint8_t *tail, int32_t g, int32_t k0,
                    const int32_t *p, int8_t *o, int8_t *o1, int32_t simple)
{
    int32_t zp = p[TS_P_OUT_ZP], lo = p[TS_P_ACT_MIN], hi = p[TS_P_ACT_MAX], j;
    const uint8_t *m = tail + 4 * (g + k0), *s = tail + 4 * (2 * g + k0);
#if defined(__arm__) || defined(__thumb__)
    if (simple) {
        const int32_t *end = acc + n;
        int32_t lz = lo - zp, hz = hi - zp;
        if (lo == -128 && hi == 127) {   /* no fused activation: one SSAT clamps */
            for (; acc != end; acc++, m += 4, o++) {
                int32_t mj = ts_ld32(m, 0), sj = ts_ld32(m, g);
                int32_t ls = sj > 0 ? sj : 0, rs = ls - sj, mask = (int32_t)((1u << rs) - 1u);
                *o = (int8_t)ts_sat8(rq_fast(*acc, mj, ls, rs, mask, INT32_MIN, INT32_MAX) + zp);
                if (acc1) *o1++ = (int8_t)ts_sat8(rq_fast(*acc1++, mj, ls, rs, mask, INT32_MIN, INT32_MAX) + zp);
            }
            return;
        }
        for (; acc != end; acc++, m += 4, o++) {
            int32_t mj = ts_ld32(m, 0), sj = ts_ld32(m, g);
            int32_t ls = sj > 0 ? sj : 0, rs = ls - sj, mask = (int32_t)((1u << rs) - 1u);
            *o = (int8_t)(rq_fast(*acc, mj, ls, rs, mask, lz, hz) + zp);
            if (acc1) *o1++ = (int8_t)(rq_fast(*acc1++, mj, ls, rs, mask, lz, hz) + zp);
        }
        return;
    }
#else
    (void)simple;
#endif
    if (acc1) {
        for (j = 0; j < n; j++) {
            int32_t mj = ts_ld32(m, j), sj = ts_ld32(s, j);
            o[j] = ts_clamp8(ts_mbqm(acc[j], mj, sj) + zp, lo, hi);
            o1[j] = ts_clamp8(ts_mbqm(acc1[j], mj, sj) + zp, lo, hi);
        }
    } else {
        for (j = 0; j < n; j++) o[j] = ts_clamp8(ts_mbqm(acc[j], ts_ld32(m, j), ts_ld32(s, j)) + zp, lo, hi);
    }
}
