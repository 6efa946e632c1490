/* Inner loops of the fast kernels (ts_conv.c, ts_dwconv.c, ts_fc.c), two builds of each with identical
 * results:
 *   - TS_DSP (Cortex-M4 and up, __ARM_FEATURE_DSP): four int8 values per 32-bit load, split into two pairs
 *     of int16 by SXTB16 (bytes 0 and 2) and SXTB16 ROR 8 (bytes 1 and 3), two multiply-accumulates per
 *     SMLAD (or one per SMLABB / SMLATT in the depthwise loop);
 *   - plain C written so that host compilers vectorise it (int16 operands, int32 sums: PMADDWD on x86).
 * Products of an int8 weight and (x - zp), |x - zp| <= 255, fit int16; sums wrap at 2**32 like TFLite's
 * int32 accumulators (no overflow for filters shorter than 2**16 values).
 *
 * Column pair (ts_col_put, ts_col_zero, ts_dot_2x2): the values (x - in_zp) of two pixels' receptive fields,
 * n per pixel (padding stored as 0), in `col` of at least 2 * n + 8 int16:
 *   plain: pixel w's value i at col[w * n + i];
 *   DSP:   groups of four values x0 x1 x2 x3 stored as the int16 pairs (x0, x2) (x1, x3), pixel 0's group
 *          then pixel 1's (8 int16 per group), so a filter word's SXTB16 halves meet them without repacking;
 *          the n % 4 last values follow plainly, pixel 0's from col[2*(n & ~3)], pixel 1's 4 further on. */
#ifndef TS_SIMD_H
#define TS_SIMD_H

#include "ts_util.h"

#if TS_DSP
#include <arm_acle.h>
#endif

static inline uint32_t ts_ldu32(const void *src)
{
    uint32_t v;
    memcpy(&v, src, 4);
    return v;
}

#if TS_DSP
static inline void ts_stu32(void *dst, int32_t v) { memcpy(dst, &v, 4); }

/* GCC does not fold a rotate into SXTB16's operand: spell the ROR #8 forms out, as CMSIS-NN does. */
static inline int32_t ts_sxtb16_ror8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline int32_t ts_sxtab16_ror8(int32_t a, uint32_t x)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* off in both halves of a word, for SXTAB16. */
static inline int32_t ts_dup16(int32_t off) { return (int32_t)((uint32_t)(uint16_t)off * 0x10001u); }
#endif

/* Values [at, at + len) of pixel w (0 or 1) of a column pair of n values per pixel: src[i] + off. `at` is a
 * multiple of 4, and so is len unless the piece ends the column (at + len == n). */
static inline void ts_col_put(int16_t *col, int32_t n, int32_t w, int32_t at, const int8_t *src, int32_t len,
                              int32_t off)
{
    int32_t i;
#if TS_DSP
    int32_t off2 = ts_dup16(off);
    int16_t *d = col + 2 * at + 4 * w;
    for (i = 0; i + 4 <= len; i += 4, d += 8) {
        uint32_t x = ts_ldu32(src + i);
        ts_stu32(d, __sxtab16(off2, x));
        ts_stu32(d + 2, ts_sxtab16_ror8(off2, x));
    }
    d = col + 2 * (n & ~3) + 4 * w;
    for (; i < len; i++) *d++ = (int16_t)(src[i] + off);
#else
    int16_t *d = col + w * n + at;
    for (i = 0; i < len; i++) d[i] = (int16_t)(src[i] + off);
#endif
}

/* The same piece of a pixel in the padding: zeros. */
static inline void ts_col_zero(int16_t *col, int32_t n, int32_t w, int32_t at, int32_t len)
{
    int32_t i;
#if TS_DSP
    int16_t *d = col + 2 * at + 4 * w;
    for (i = 0; i + 4 <= len; i += 4, d += 8) {
        ts_stu32(d, 0);
        ts_stu32(d + 2, 0);
    }
    d = col + 2 * (n & ~3) + 4 * w;
    for (; i < len; i++) *d++ = 0;
#else
    int16_t *d = col + w * n + at;
    for (i = 0; i < len; i++) d[i] = 0;
#endif
}

/* Two filters against a column pair: acc[0] += f0.pixel0, acc[1] += f0.pixel1, acc[2] += f1.pixel0,
 * acc[3] += f1.pixel1, over n values. */
static inline void ts_dot_2x2(const int8_t *f0, const int8_t *f1, const int16_t *col, int32_t n, int32_t *acc)
{
    int32_t a = acc[0], b = acc[1], c = acc[2], d = acc[3], i;
#if TS_DSP
    /* Hand-scheduled: 17 instructions per 16 MACs (the loop runs two groups of four values per pass; an odd
     * group count enters at the second). GCC -O2 keeps the same 14 values live but reloads some of them each
     * iteration (22 instructions per group). LDRD needs `col` 4-byte aligned. */
    const int16_t *x = col;
    const int8_t *end = f0 + (n & ~3);
    int32_t t0 = n, t1, t2, t3, w, v;
    if (f0 != end)
        __asm__ volatile(
            "lsls %[t0], %[t0], #29\n\t"     /* t0 = n on entry; N = its bit 2: an odd number of groups */
            "bmi 2f\n\t"
            "1:\n\t"
            "ldrd %[t2], %[t3], [%[x], #8]\n\t"
            "ldrd %[t0], %[t1], [%[x]], #16\n\t"
            "ldr %[w], [%[f0]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[a], %[v], %[t0], %[a]\n\t"
            "smlad %[b], %[v], %[t2], %[b]\n\t"
            "smlad %[a], %[w], %[t1], %[a]\n\t"
            "smlad %[b], %[w], %[t3], %[b]\n\t"
            "ldr %[w], [%[f1]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[c], %[v], %[t0], %[c]\n\t"
            "smlad %[d], %[v], %[t2], %[d]\n\t"
            "smlad %[c], %[w], %[t1], %[c]\n\t"
            "smlad %[d], %[w], %[t3], %[d]\n\t"
            "2:\n\t"
            "ldrd %[t2], %[t3], [%[x], #8]\n\t"
            "ldrd %[t0], %[t1], [%[x]], #16\n\t"
            "ldr %[w], [%[f0]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[a], %[v], %[t0], %[a]\n\t"
            "smlad %[b], %[v], %[t2], %[b]\n\t"
            "smlad %[a], %[w], %[t1], %[a]\n\t"
            "smlad %[b], %[w], %[t3], %[b]\n\t"
            "ldr %[w], [%[f1]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[c], %[v], %[t0], %[c]\n\t"
            "smlad %[d], %[v], %[t2], %[d]\n\t"
            "smlad %[c], %[w], %[t1], %[c]\n\t"
            "smlad %[d], %[w], %[t3], %[d]\n\t"
            "cmp %[f0], %[end]\n\t"
            "bne 1b"
            : [a] "+r"(a), [b] "+r"(b), [c] "+r"(c), [d] "+r"(d), [x] "+r"(x), [f0] "+r"(f0), [f1] "+r"(f1),
              [t0] "+&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [w] "=&r"(w), [v] "=&r"(v)
            : [end] "r"(end)
            : "cc", "memory");
    for (i = 0; i < (n & 3); i++, x++) {
        int32_t w0 = f0[i], w1 = f1[i];
        a += w0 * x[0];
        b += w0 * x[4];
        c += w1 * x[0];
        d += w1 * x[4];
    }
#else
    const int16_t *x0 = col, *x1 = col + n;
    for (i = 0; i < n; i++) {
        int16_t w0 = f0[i], w1 = f1[i];
        a += (int32_t)w0 * x0[i];
        b += (int32_t)w0 * x1[i];
        c += (int32_t)w1 * x0[i];
        d += (int32_t)w1 * x1[i];
    }
#endif
    acc[0] = a;
    acc[1] = b;
    acc[2] = c;
    acc[3] = d;
}

/* Four filter rows f0, f1, f0 + s2, f1 + s2 against one int8 vector x (zero point -off):
 * acc[0..3] += sum_i row[i] * (x[i] + off), i < n, in that row order. No scratch: x is widened as it is
 * read. The DSP loop is hand-scheduled (25 instructions per 16 MACs; GCC -O2 spills to the stack). */
static inline void ts_dot_4x1(const int8_t *f0, const int8_t *f1, int32_t s2, const int8_t *x, int32_t n,
                              int32_t off, int32_t *acc)
{
    int32_t a = acc[0], b = acc[1], c = acc[2], d = acc[3], i;
#if TS_DSP
    int32_t off2 = ts_dup16(off), xe, xo, w, v;
    const int8_t *end = x + (n & ~3);
    if (x != end)
        __asm__ volatile(
            "1:\n\t"
            "ldr %[w], [%[x]], #4\n\t"
            "sxtab16 %[xe], %[off2], %[w]\n\t"
            "sxtab16 %[xo], %[off2], %[w], ror #8\n\t"
            "ldr %[w], [%[f0], %[s2]]\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[c], %[v], %[xe], %[c]\n\t"
            "smlad %[c], %[w], %[xo], %[c]\n\t"
            "ldr %[w], [%[f1], %[s2]]\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[d], %[v], %[xe], %[d]\n\t"
            "smlad %[d], %[w], %[xo], %[d]\n\t"
            "ldr %[w], [%[f0]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[a], %[v], %[xe], %[a]\n\t"
            "smlad %[a], %[w], %[xo], %[a]\n\t"
            "ldr %[w], [%[f1]], #4\n\t"
            "sxtb16 %[v], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[b], %[v], %[xe], %[b]\n\t"
            "smlad %[b], %[w], %[xo], %[b]\n\t"
            "cmp %[x], %[end]\n\t"
            "bne 1b"
            : [a] "+r"(a), [b] "+r"(b), [c] "+r"(c), [d] "+r"(d), [x] "+r"(x), [f0] "+r"(f0), [f1] "+r"(f1),
              [xe] "=&r"(xe), [xo] "=&r"(xo), [w] "=&r"(w), [v] "=&r"(v)
            : [s2] "r"(s2), [end] "r"(end), [off2] "r"(off2)
            : "cc", "memory");
    n &= 3;
#endif
    {
        const int8_t *f2 = f0 + s2, *f3 = f1 + s2;
        for (i = 0; i < n; i++) {
            int16_t xv = (int16_t)(x[i] + off);
            a += (int32_t)(int16_t)f0[i] * xv;
            b += (int32_t)(int16_t)f1[i] * xv;
            c += (int32_t)(int16_t)f2[i] * xv;
            d += (int32_t)(int16_t)f3[i] * xv;
        }
    }
    acc[0] = a;
    acc[1] = b;
    acc[2] = c;
    acc[3] = d;
}

/* Depthwise: acc[j] += sum over the nt taps t of f[tap[2t+1] + j] * (x[tap[2t] + j] + off), j < n (`tap`
 * holds each valid tap's input and filter offsets). Cortex-M: four channels at a time with their
 * accumulators in registers across the taps (with the DSP extension SMLABB/SMLATT on the halves of
 * SXTAB16/SXTB16, hand-scheduled: 13 instructions per tap and 4 channels), then the leftover channels one
 * by one. Host: one vectorised pass over the n channels per tap; there and in the plain Cortex-M build a
 * literal nt (9) unrolls the tap loop. */
static inline void ts_dw_acc(const int8_t *x, const int8_t *f, const int32_t *tap, int32_t nt, int32_t off,
                             int32_t n, int32_t *acc)
{
    int32_t t, j = 0;
#if defined(__arm__) || defined(__thumb__)
#if TS_DSP
    int32_t off2 = ts_dup16(off);
#endif
    for (; j + 4 <= n; j += 4) {
        int32_t a0 = acc[j], a1 = acc[j + 1], a2 = acc[j + 2], a3 = acc[j + 3];
#if TS_DSP
        const int32_t *tp = tap, *tend = tap + 2 * nt;
        const int8_t *xj = x + j, *fj = f + j;
        int32_t xo, fo, xw, fw;
        if (nt > 0)
            __asm__ volatile(
                "1:\n\t"
                "ldrd %[xo], %[fo], [%[tp]], #8\n\t"
                "ldr %[xw], [%[x], %[xo]]\n\t"
                "ldr %[fw], [%[f], %[fo]]\n\t"
                "sxtab16 %[xo], %[off2], %[xw]\n\t"
                "sxtab16 %[xw], %[off2], %[xw], ror #8\n\t"
                "sxtb16 %[fo], %[fw]\n\t"
                "sxtb16 %[fw], %[fw], ror #8\n\t"
                "smlabb %[a0], %[xo], %[fo], %[a0]\n\t"
                "smlatt %[a2], %[xo], %[fo], %[a2]\n\t"
                "smlabb %[a1], %[xw], %[fw], %[a1]\n\t"
                "smlatt %[a3], %[xw], %[fw], %[a3]\n\t"
                "cmp %[tp], %[tend]\n\t"
                "bne 1b"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [tp] "+r"(tp),
                  [xo] "=&r"(xo), [fo] "=&r"(fo), [xw] "=&r"(xw), [fw] "=&r"(fw)
                : [tend] "r"(tend), [x] "r"(xj), [f] "r"(fj), [off2] "r"(off2)
                : "cc", "memory");
#else
        for (t = 0; t < nt; t++) {
            const int8_t *xt = x + tap[2 * t] + j, *ft = f + tap[2 * t + 1] + j;
            a0 += ft[0] * (xt[0] + off);
            a1 += ft[1] * (xt[1] + off);
            a2 += ft[2] * (xt[2] + off);
            a3 += ft[3] * (xt[3] + off);
        }
#endif
        acc[j] = a0;
        acc[j + 1] = a1;
        acc[j + 2] = a2;
        acc[j + 3] = a3;
    }
    for (; j < n; j++)
        for (t = 0; t < nt; t++) acc[j] += f[tap[2 * t + 1] + j] * (x[tap[2 * t] + j] + off);
#else
    for (t = 0; t < nt; t++) {
        const int8_t *xt = x + tap[2 * t], *ft = f + tap[2 * t + 1];
        for (j = 0; j < n; j++) acc[j] += (int16_t)((int16_t)ft[j] * (int16_t)(xt[j] + off));
    }
#endif
}

#endif /* TS_SIMD_H */
