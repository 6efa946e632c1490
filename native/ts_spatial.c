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

/* The requantization check of ts_requant_row's fast paths, once per tile: 0 if some multiplier is INT32_MIN
 * or some shift is outside [-31, 31] (TFLite's Prepare makes neither), 2 if every multiplier is >= 0 and
 * every shift in [-31, -1] (every convolution TFLite quantizes), else 1. */
int32_t ts_requant_simple(const uint8_t *tail, int32_t g)
{
    int32_t k, mode = 2;
    for (k = 0; k < g; k++) {
        int32_t m = ts_ld32(tail, g + k), s = ts_ld32(tail, 2 * g + k);
        if (m == INT32_MIN || s < -31 || s > 31) return 0;
        if (m < 0 || s > -1) mode = 1;
    }
    return mode;
}

#if defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#define ts_sat8(v) __ssat((v), 8)
#else
#define ts_sat8(v) ts_clamp8((v), -128, 127)
#endif

/* One output of ts_requant_row's Cortex-M mode 1: ts_mbqm for a multiplier other than INT32_MIN and a
 * shift in [-31, 31] (ls = max(shift, 0), rs = max(-shift, 0), mask = 2**rs - 1), where SRDHM is
 * floor((x * mult + 2**30) / 2**31) (one SMLAL) and RDBPOT needs no guard; clamped to [lz, hz]. */
static inline int32_t rq_fast(int32_t x, int32_t mult, int32_t ls, int32_t rs, int32_t mask, int32_t lz, int32_t hz)
{
    int32_t h = (int32_t)(((int64_t)(int32_t)((uint32_t)x << ls) * mult + ((int64_t)1 << 30)) >> 31);
    int32_t v = (h >> rs) + ((h & mask) > (mask >> 1) + (int32_t)((uint32_t)h >> 31));
    v = v < lz ? lz : v;
    return v > hz ? hz : v;
}

/* The same for a multiplier >= 0 and a shift in [-31, -1] (every convolution TFLite quantizes), both
 * roundings in one 64-bit multiply-add. With h = floor((P + 2**30) / 2**31), P = x * mult, RDBPOT by rs
 * is floor((h + 2**(rs-1) - [h < 0]) / 2**rs); h is an integer, so that is
 * floor((P + 2**30 + 2**(rs+30) - [h < 0] * 2**31) / 2**(31+rs)): the high word of P + k - [x < 0] * 2**31
 * (k = 2**30 + 2**(rs+30)) shifted right by rs - 1. [h < 0] and [x < 0] differ only where h = 0, and
 * there both give 0. About 12 instructions per output instead of 20. */
static inline int32_t rq_dbl(int32_t x, int32_t mult, uint32_t klo, int32_t khi, int32_t rs1)
{
#if defined(__thumb2__)
    /* GCC makes a 64 x 64 multiply of this (UMULL + MLA + carries): spell out SMLAL and the borrow. */
    uint32_t lo = klo;
    int32_t hi = khi, neg = x >> 31;
    __asm__("smlal %0, %1, %2, %3\n\t"
            "adds %0, %0, %4, lsl #31\n\t"
            "adc %1, %1, %4"
            : "+&r"(lo), "+&r"(hi) : "r"(x), "r"(mult), "r"(neg) : "cc");
    return hi >> rs1;
#else
    int64_t k = (int64_t)(((uint64_t)(uint32_t)khi << 32) | klo);
    int64_t v = (int64_t)x * mult + k - (x < 0 ? ((int64_t)1 << 31) : 0);
    return (int32_t)(v >> 32) >> rs1;
#endif
}

/* Mode 2 of ts_requant_row: rq_dbl on every channel; `pair` and `full` are literals at each call, so each
 * specialised copy keeps its values in registers. o1 = o + ostep. */
static inline void rq_dbl_loop(const int32_t *acc, const int32_t *acc1, int32_t n, const uint8_t *m, int32_t g,
                               int32_t zp, int32_t lz, int32_t hz, int8_t *o, int32_t ostep, const int pair,
                               const int full)
{
    const int32_t *end = acc + n;
    for (; acc != end; acc++, acc1++, m += 4, o++) {
        int32_t mj = ts_ld32(m, 0), sj = ts_ld32(m, g), v;
        uint32_t klo = sj == -1 ? 0xC0000000u : 0x40000000u;   /* k = 2**30 + 2**(rs+30) as two words */
        int32_t khi = sj == -1 ? 0 : (int32_t)(1u << (-sj - 2));
        v = rq_dbl(*acc, mj, klo, khi, -sj - 1);
        *o = (int8_t)(full ? ts_sat8(v + zp) : (v < lz ? lz : v > hz ? hz : v) + zp);
        if (!pair) continue;
        v = rq_dbl(*acc1, mj, klo, khi, -sj - 1);
        o[ostep] = (int8_t)(full ? ts_sat8(v + zp) : (v < lz ? lz : v > hz ? hz : v) + zp);
    }
}

/* On the host a plain loop over channels that the compiler vectorises with AVX2 (the x86 clones), 64-bit
 * products and all. On Cortex-M, by ts_requant_simple's mode: 2, rq_dbl with each channel's values shared
 * by both pixels (about 19 instructions per output, 22 with an activation clamp, against 45 through
 * ts_mbqm); 1, rq_fast; 0, ts_mbqm itself. */
TS_HOT
void ts_requant_row(const int32_t *restrict acc, const int32_t *restrict acc1, int32_t n,
                    const uint8_t *restrict tail, int32_t g, int32_t k0, const int32_t *restrict p, int8_t *restrict o,
                    int8_t *restrict o1, int32_t simple)
{
    int32_t zp = p[TS_P_OUT_ZP], lo = p[TS_P_ACT_MIN], hi = p[TS_P_ACT_MAX], j;
    const uint8_t *m = tail + 4 * (g + k0), *s = tail + 4 * (2 * g + k0);
#if defined(__arm__) || defined(__thumb__)
    if (simple == 2) {
        int32_t lz = lo - zp, hz = hi - zp, ostep = (int32_t)(o1 - o);
        if (acc1 && lo == -128 && hi == 127)
            rq_dbl_loop(acc, acc1, n, m, g, zp, lz, hz, o, ostep, 1, 1);
        else if (acc1)
            rq_dbl_loop(acc, acc1, n, m, g, zp, lz, hz, o, ostep, 1, 0);
        else if (lo == -128 && hi == 127)
            rq_dbl_loop(acc, acc, n, m, g, zp, lz, hz, o, 0, 0, 1);
        else
            rq_dbl_loop(acc, acc, n, m, g, zp, lz, hz, o, 0, 0, 0);
        return;
    }
    if (simple) {   /* mode 1: some channel scales up (shift >= 0) or has a negative multiplier */
        int32_t lz = lo - zp, hz = hi - zp;
        for (j = 0; j < n; j++) {
            int32_t mj = ts_ld32(m, j), sj = ts_ld32(s, j);
            int32_t ls = sj > 0 ? sj : 0, rs = ls - sj, mask = (int32_t)((1u << rs) - 1u);
            o[j] = (int8_t)(rq_fast(acc[j], mj, ls, rs, mask, lz, hz) + zp);
            if (acc1) o1[j] = (int8_t)(rq_fast(acc1[j], mj, ls, rs, mask, lz, hz) + zp);
        }
        return;
    }
#else
    (void)simple;
#endif
    /* One pixel at a time: each loop vectorises (restrict: the int8 stores touch nothing else). */
    for (j = 0; j < n; j++) o[j] = ts_clamp8(ts_mbqm(acc[j], ts_ld32(m, j), ts_ld32(s, j)) + zp, lo, hi);
    if (acc1)
        for (j = 0; j < n; j++) o1[j] = ts_clamp8(ts_mbqm(acc1[j], ts_ld32(m, j), ts_ld32(s, j)) + zp, lo, hi);
}
