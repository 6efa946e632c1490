/* CONV_2D tile, the fast kernel. Same results as ts_conv_s8_ref (ts_conv_ref.c), which spells out the
 * arithmetic; band convention and payload layout in ts_kernels.h.
 *
 * The tile's output pixels go in pairs (row-major over the band, so a pair may straddle two rows). A pair's
 * receptive fields are gathered once into a column pair of int16 (x - in_zp, padding 0: ts_simd.h), then
 * every pair of output channels is one ts_dot_2x2 with four accumulators in registers: each filter value
 * loaded serves two pixels and each column value two channels. A 1x1 filter (the fast 1x1 path) widens the
 * input pixel straight into the column; other filters are staged tap by tap first. An odd last pixel or
 * channel runs as a duplicate of its pair and is written once. Results go TS_CONV_GC channels at a time
 * through ts_requant_row (vectorised on the host).
 *
 * Filters longer than TS_COL_MAX values are taken TS_COL_MAX values at a time, the column pair gathered
 * again for every group of TS_CONV_GC channels. */
#include "ts_kernels.h"
#include "ts_simd.h"

typedef struct {
    const int32_t *p;
    const int8_t *in;
    int32_t y0, in_h, k;   /* k = kh * kw * in_c, the filter length */
} conv_src;

/* Values [c, c + n) of the receptive field of output pixel `pix` into pixel w of the column pair (c is a
 * multiple of 4). A 1x1 filter widens the input pixel in one piece; taps of a multiple of 4 channels are
 * widened tap by tap; others are staged as int8 first (the DSP layout groups values by 4). */
static TS_HOST_INLINE void gather(const conv_src *s, int32_t pix, int32_t c, int32_t n, int16_t *col, int32_t w, int8_t *stage)
{
    const int32_t *p = s->p;
    int32_t in_w = p[TS_P_IN_W], in_c = p[TS_P_IN_C], kw = p[TS_P_KW], out_w = p[TS_P_OUT_W], off = -p[TS_P_IN_ZP];
    int32_t iy0 = s->y0 + (pix / out_w) * p[TS_P_SH], ix0 = (pix % out_w) * p[TS_P_SW] - p[TS_P_PAD_L];
    int32_t t = c / in_c, ch = c % in_c, ky = t / kw, kx = t % kw, at, i, direct = in_c % 4 == 0;
    if (p[TS_P_KH] == 1 && kw == 1) {
        if (iy0 >= 0 && iy0 < s->in_h && ix0 >= 0 && ix0 < in_w)
            ts_col_put(col, n, w, 0, s->in + (iy0 * in_w + ix0) * in_c + c, n, off);
        else
            ts_col_zero(col, n, w, 0, n);
        return;
    }
    for (at = 0; at < n; ch = 0) {   /* tap (ky, kx), from its channel ch */
        int32_t iy = iy0 + ky * p[TS_P_DH], ix = ix0 + kx * p[TS_P_DW];
        int32_t run = in_c - ch < n - at ? in_c - ch : n - at;
        int32_t valid = iy >= 0 && iy < s->in_h && ix >= 0 && ix < in_w;
        const int8_t *x = s->in + (iy * in_w + ix) * in_c + ch;
        if (direct && valid)
            ts_col_put(col, n, w, at, x, run, off);
        else if (direct)
            ts_col_zero(col, n, w, at, run);
        else if (valid)
            for (i = 0; i < run; i++) stage[at + i] = x[i];
        else
            for (i = 0; i < run; i++) stage[at + i] = (int8_t)p[TS_P_IN_ZP];   /* x - zp = 0 */
        at += run;
        if (++kx == kw) {
            kx = 0;
            ky++;
        }
    }
    if (!direct) ts_col_put(col, n, w, 0, stage, n, off);
}

/* Dot products of the column pair (n values per pixel) with gn filter rows from f (row stride `stride`),
 * two rows at a time, into acc0[j] (pixel 0) and acc0[TS_CONV_GC + j] (pixel 1), starting from the
 * payload's bias (`bias`, int32 little-endian) when given, else from their current values. An odd last
 * row runs as a pair with itself. Not inlined: the inner loop needs every register. */
TS_NOINLINE static void pair_dots(const int8_t *f, int32_t stride, const int16_t *col, int32_t n, int32_t gn,
                                  const uint8_t *bias, int32_t *acc0)
{
    int32_t *end = acc0 + (gn & ~1), a[4];
    for (; acc0 != end; acc0 += 2, f += 2 * stride) {
        if (bias) {
            a[0] = a[1] = ts_ld32(bias, 0);
            a[2] = a[3] = ts_ld32(bias, 1);
            bias += 8;
        } else {
            a[0] = acc0[0]; a[1] = acc0[TS_CONV_GC]; a[2] = acc0[1]; a[3] = acc0[TS_CONV_GC + 1];
        }
        ts_dot_2x2(f, f + stride, col, n, a);
        acc0[0] = a[0]; acc0[TS_CONV_GC] = a[1]; acc0[1] = a[2]; acc0[TS_CONV_GC + 1] = a[3];
    }
    if (gn & 1) {
        a[0] = a[2] = bias ? ts_ld32(bias, 0) : acc0[0];
        a[1] = a[3] = bias ? a[0] : acc0[TS_CONV_GC];
        ts_dot_2x2(f, f, col, n, a);
        acc0[0] = a[0]; acc0[TS_CONV_GC] = a[1];
    }
}

#if TS_DSP
/* Cortex-M4 with the DSP extension: requantization fused into the channel-pair loop (the four accumulators
 * go from the 2x2 inner product straight to output bytes), when ts_conv_fused_ok says SMMLAR gives TFLite's
 * double rounding exactly:
 *
 *   MBQM(x, m, -rs) + zp = floor((SMMLAR(2x, m) + c0 - [x < 0]) / 2**rs),  c0 = 2**(rs-1) + zp * 2**rs,
 *
 * SMMLAR(a, m) = floor((a*m + 2**31) / 2**32). For |x| < 2**30 (so 2x fits int32), that is
 * floor((x*m + 2**30) / 2**31), gemmlowp's SRDHM h (its nudge-and-truncate equals this floor: ts_srdhm);
 * RoundingDivideByPOT(h, rs) is floor((h + 2**(rs-1) - [h < 0]) / 2**rs); [h < 0] may be replaced by
 * [x < 0] for m >= 0 (x < 0 gives h <= 0, and where h = 0 both corrections give 0 since rs >= 1); and
 * adding zp inside the floor as zp * 2**rs is exact. SMMLAR's accumulate operand takes c0 - [x < 0]:
 * |h| <= 2**30 and |c0| <= 2**(rs+8) <= 2**29, so h + c0 never wraps. Six instructions per output
 * (LSL, ADD ..., ASR #31, SMMLAR, ASR, SSAT, STRB) against about 19 through ts_requant_row. */
typedef struct {
    int32_t bias, m, c0, rs;   /* the layout rq_pairs reads */
} rq3_ch;

/* 1 when every channel of the tile meets the conditions above: multiplier >= 0, shift in [-21, -1], and
 * |bias| + k * 128 * 255 < 2**30 (|filter| <= 128 and |x - in_zp| <= 255 bound every accumulator), with
 * both zero points in [-128, 127]. Else the tile takes pair_dots + ts_requant_row. */
static int32_t fused_ok(const int32_t *p, const uint8_t *tail, int32_t g, int32_t k)
{
    int32_t j, lim;
    if (k > 32000 || p[TS_P_IN_ZP] < -128 || p[TS_P_IN_ZP] > 127 || p[TS_P_OUT_ZP] < -128 || p[TS_P_OUT_ZP] > 127)
        return 0;
    lim = (1 << 30) - 1 - k * (128 * 255);
    for (j = 0; j < g; j++) {
        int32_t b = ts_ld32(tail, j), m = ts_ld32(tail, g + j), sh = ts_ld32(tail, 2 * g + j);
        if (m < 0 || sh < -21 || sh > -1 || b > lim || b < -lim) return 0;
    }
    return 1;
}

static inline int32_t rq3(int32_t x, int32_t m, int32_t c0, int32_t rs)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"((int32_t)((uint32_t)x << 1)), "r"(m), "r"(c0 + (x >> 31)));
    return r >> rs;
}

/* r clamped to [lo, hi]; `full` (a literal): the whole int8 range, one SSAT. */
static inline int32_t rq3_clamp(int32_t r, int32_t lo, int32_t hi, const int full)
{
    if (full) return __ssat(r, 8);
    return r < lo ? lo : r > hi ? hi : r;
}

/* pair_dots for the last (or only) piece of the filter, requantized and written: channel j of pixel 0 to o[j],
 * of pixel 1 to o[ostep + j] (ostep 0 for a single pixel: the same byte twice). Pixel 0's accumulators start
 * from the int32 `init[j]` (little-endian, any alignment), pixel 1's from those `pstep` bytes further: the
 * payload's bias with pstep 0, or pair_dots's acc[0] with pstep 4 * TS_CONV_GC. */
static inline __attribute__((always_inline)) void pair_dots_rq_body(
    const int8_t *f, int32_t stride, const int16_t *col, int32_t n, int32_t gn, const uint8_t *init, int32_t pstep,
    const rq3_ch *q, int8_t *o, int32_t ostep, int32_t lo, int32_t hi, const int full)
{
    int32_t a[4], j, r0, r1, r2, r3;
    for (j = 0; j + 1 < gn; j += 2, f += 2 * stride, q += 2, o += 2, init += 8) {
        a[0] = ts_ld32(init, 0);
        a[1] = ts_ld32(init + pstep, 0);
        a[2] = ts_ld32(init, 1);
        a[3] = ts_ld32(init + pstep, 1);
        ts_dot_2x2(f, f + stride, col, n, a);
        {
            int32_t m = q[0].m, c0 = q[0].c0, rs = q[0].rs;
            r0 = rq3_clamp(rq3(a[0], m, c0, rs), lo, hi, full);
            r1 = rq3_clamp(rq3(a[1], m, c0, rs), lo, hi, full);
        }
        {
            int32_t m = q[1].m, c0 = q[1].c0, rs = q[1].rs;
            r2 = rq3_clamp(rq3(a[2], m, c0, rs), lo, hi, full);
            r3 = rq3_clamp(rq3(a[3], m, c0, rs), lo, hi, full);
        }
        o[0] = (int8_t)r0;
        o[1] = (int8_t)r2;
        o[ostep] = (int8_t)r1;
        o[ostep + 1] = (int8_t)r3;
    }
    if (gn & 1) {
        a[0] = a[2] = ts_ld32(init, 0);
        a[1] = a[3] = ts_ld32(init + pstep, 0);
        ts_dot_2x2(f, f, col, n, a);
        r0 = rq3_clamp(rq3(a[0], q->m, q->c0, q->rs), lo, hi, full);
        r1 = rq3_clamp(rq3(a[1], q->m, q->c0, q->rs), lo, hi, full);
        o[0] = (int8_t)r0;
        o[ostep] = (int8_t)r1;
    }
}

/* The DSP loop of ts_dot_2x2 (ts_simd.h), two groups of four values per pass. */
#define RQ_GROUP \
    "ldrd %[t2], %[t3], [%[x], #8]\n\t" \
    "ldrd %[t0], %[t1], [%[x]], #16\n\t" \
    "ldr %[w], [%[f0]], #4\n\t" \
    "sxtb16 %[v], %[w]\n\t" \
    "sxtb16 %[w], %[w], ror #8\n\t" \
    "smlad %[a], %[v], %[t0], %[a]\n\t" \
    "smlad %[b], %[v], %[t2], %[b]\n\t" \
    "smlad %[a], %[w], %[t1], %[a]\n\t" \
    "smlad %[b], %[w], %[t3], %[b]\n\t" \
    "ldr %[w], [%[f1]], #4\n\t" \
    "sxtb16 %[v], %[w]\n\t" \
    "sxtb16 %[w], %[w], ror #8\n\t" \
    "smlad %[c], %[v], %[t0], %[c]\n\t" \
    "smlad %[d], %[v], %[t2], %[d]\n\t" \
    "smlad %[c], %[w], %[t1], %[c]\n\t" \
    "smlad %[d], %[w], %[t3], %[d]\n\t"

/* rq3 of accumulator R with the channel's m in t0, c0 in t1, rs in t2, then SSAT (t3 scratch). */
#define RQ_OUT(R) \
    "add %[t3], %[t1], %[" R "], asr #31\n\t" \
    "lsl %[" R "], %[" R "], #1\n\t" \
    "smmlar %[" R "], %[" R "], %[t0], %[t3]\n\t" \
    "asr %[" R "], %[" R "], %[t2]\n\t" \
    "ssat %[" R "], #8, %[" R "]\n\t"

/* Everything of a channel pair but the stores, from x = its table entry and e = the state: the bias, the 2x2
 * inner product, requantization to a, b (channel 0, pixels 0 and 1) and c, d (channel 1); then e = the
 * state again, x = the next table entry (also stored), t0 = o, t1 = ostep. */
#define RQ_PAIR_HEAD \
    "push {%[e]}\n\t" \
    "1:\n\t" \
    "ldr %[a], [%[x]]\n\t" \
    "ldr %[c], [%[x], #16]\n\t" \
    "ldrd %[x], %[t1], [%[e], #16]\n\t" \
    "mov %[b], %[a]\n\t" \
    "mov %[d], %[c]\n\t" \
    "add %[e], %[f0], %[t1]\n\t" \
    "lsls %[t1], %[t1], #29\n\t" \
    "bmi 3f\n\t" \
    "2:\n\t" RQ_GROUP "3:\n\t" RQ_GROUP \
    "cmp %[f0], %[e]\n\t" \
    "bne 2b\n\t" \
    "ldr %[e], [sp]\n\t" \
    "ldr %[x], [%[e]]\n\t" \
    "ldrd %[t0], %[t1], [%[x], #4]\n\t" \
    "ldr %[t2], [%[x], #12]\n\t" \
    RQ_OUT("a") RQ_OUT("b") \
    "ldrd %[t0], %[t1], [%[x], #20]\n\t" \
    "ldr %[t2], [%[x], #28]\n\t" \
    RQ_OUT("c") RQ_OUT("d") \
    "add %[x], %[x], #32\n\t" \
    "str %[x], [%[e]]\n\t" \
    "ldrd %[t0], %[t1], [%[e], #8]\n\t"

/* Next pair: o += 2, filter rows to the next pair's, until the table's end (t2 = fstep, t3 = qend). */
#define RQ_PAIR_TAIL \
    "add %[t0], %[t0], #2\n\t" \
    "str %[t0], [%[e], #8]\n\t" \
    "ldrd %[t2], %[t3], [%[e], #24]\n\t" \
    "add %[f0], %[f0], %[t2]\n\t" \
    "add %[f1], %[f1], %[t2]\n\t" \
    "cmp %[x], %[t3]\n\t" \
    "bne 1b\n\t" \
    "add sp, sp, #4\n\t"

/* The whole int8 range: four STRB. */
#define RQ_STORE_FULL \
    "strb %[a], [%[t0]]\n\t" \
    "strb %[c], [%[t0], #1]\n\t" \
    "strb %[b], [%[t0], %[t1]]\n\t" \
    "add %[t1], %[t0], %[t1]\n\t" \
    "strb %[d], [%[t1], #1]\n\t"

/* A clamp: the four bytes packed (pixel 0's two channels, then pixel 1's), min with hi in every byte
 * (SSUB8 sets GE where a >= hi, SEL picks), max with lo when LO, two STRH. */
#define RQ_STORE_CLAMP(LO) \
    "bfi %[a], %[c], #8, #8\n\t" \
    "bfi %[b], %[d], #8, #8\n\t" \
    "pkhbt %[a], %[a], %[b], lsl #16\n\t" \
    "ldrd %[t2], %[t3], [%[e], #32]\n\t" \
    "ssub8 %[c], %[a], %[t2]\n\t" \
    "sel %[a], %[t2], %[a]\n\t" \
    LO \
    "strh %[a], [%[t0]]\n\t" \
    "lsr %[a], %[a], #16\n\t" \
    "strh %[a], [%[t0], %[t1]]\n\t"
#define RQ_MAX_LO \
    "ssub8 %[c], %[a], %[t3]\n\t" \
    "sel %[a], %[a], %[t3]\n\t"

/* rq_pairs's state, at the byte offsets its assembly uses. */
typedef struct {
    const rq3_ch *q;             /* 0: the next channel pair's table entry */
    int32_t unused;              /* 4 */
    int8_t *o;                   /* 8: its pixel 0 output */
    int32_t ostep;               /* 12: pixel 1's output - pixel 0's (0: one pixel) */
    const int16_t *col;          /* 16: the column pair */
    int32_t n;                   /* 20: the filter length, a multiple of 4 */
    int32_t fstep;               /* 24: 2 * stride - n, from the end of a pair's rows to the next pair's */
    const rq3_ch *qend;          /* 28: the table entry after the last pair */
    int32_t hi4, lo4;            /* 32, 36: the clamp in every byte */
} rq_state;

/* Channel pairs [0, 2 * pairs) of a whole filter (n = its length, a multiple of 4) on a column pair, from the
 * table's bias to output bytes, in one assembly loop (the inner product needs all 14 registers; the rest
 * lives in `st`). mode: 0 the whole int8 range, 1 min with hi, 2 min with hi and max with lo. */
TS_NOINLINE static void rq_pairs(const int8_t *f, int32_t stride, rq_state *st, int32_t mode)
{
    const int8_t *f0 = f, *f1 = f + stride;
    int32_t a, b, c, d, t0, t1, t2, t3, w, v;
    const void *x = st->q, *e = st;
#define RQ_OPERANDS \
    : [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d), [x] "+&r"(x), [f0] "+&r"(f0), [f1] "+&r"(f1), \
      [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [w] "=&r"(w), [v] "=&r"(v), [e] "+&r"(e) \
    : : "cc", "memory"
    if (mode == 0)
        __asm__ volatile(RQ_PAIR_HEAD RQ_STORE_FULL RQ_PAIR_TAIL RQ_OPERANDS);
    else if (mode == 1)
        __asm__ volatile(RQ_PAIR_HEAD RQ_STORE_CLAMP("") RQ_PAIR_TAIL RQ_OPERANDS);
    else
        __asm__ volatile(RQ_PAIR_HEAD RQ_STORE_CLAMP(RQ_MAX_LO) RQ_PAIR_TAIL RQ_OPERANDS);
#undef RQ_OPERANDS
}

TS_NOINLINE static void pair_dots_rq(const int8_t *f, int32_t stride, const int16_t *col, int32_t n, int32_t gn,
                                     const uint8_t *init, int32_t pstep, const rq3_ch *q, int8_t *o, int32_t ostep,
                                     int32_t lo, int32_t hi)
{
    if (lo == -128 && hi == 127)
        pair_dots_rq_body(f, stride, col, n, gn, init, pstep, q, o, ostep, lo, hi, 1);
    else
        pair_dots_rq_body(f, stride, col, n, gn, init, pstep, q, o, ostep, lo, hi, 0);
}

/* ts_conv_s8 on the fused path: channel groups of TS_CONV_GC outermost (their requantization constants
 * computed once), then pixel pairs, then pieces of the filter. */
static void conv_fused(const conv_src *s, int32_t npix, int32_t g, const int8_t *wts, const uint8_t *tail,
                       int8_t *out)
{
    int16_t col[2 * TS_COL_MAX + 8] TS_ALIGN4;
    int8_t stage[TS_COL_MAX];
    int32_t acc[2][TS_CONV_GC];   /* [pixel][channel], filters longer than TS_COL_MAX */
    rq3_ch q[TS_CONV_GC];
    const int32_t *p = s->p;
    int32_t out_c = p[TS_P_OUT_C], zp = p[TS_P_OUT_ZP], lo = p[TS_P_ACT_MIN], hi = p[TS_P_ACT_MAX];
    int32_t k0, i, j, c, kn, mode = hi == 127 && lo == -128 ? 0 : lo == -128 ? 1 : 2;
    rq_state st;
    st.col = col; st.n = s->k; st.fstep = s->k; st.unused = 0;   /* fstep: 2 * stride - n, stride = n */
    st.hi4 = (int32_t)((uint32_t)(uint8_t)hi * 0x01010101u);
    st.lo4 = (int32_t)((uint32_t)(uint8_t)lo * 0x01010101u);
    for (k0 = 0; k0 < g; k0 += TS_CONV_GC) {
        int32_t gn = g - k0 < TS_CONV_GC ? g - k0 : TS_CONV_GC, pairs = gn >> 1;
        /* rq_pairs: the whole filter in one piece of whole groups of 4, from the bias */
        int32_t asm_pairs = s->k <= TS_COL_MAX && (s->k & 3) == 0 ? pairs : 0;
        for (j = 0; j < gn; j++) {
            int32_t rs = -ts_ld32(tail, 2 * g + k0 + j);
            q[j].bias = ts_ld32(tail, k0 + j);
            q[j].m = ts_ld32(tail, g + k0 + j);
            q[j].rs = rs;
            q[j].c0 = (2 * zp + 1) * (int32_t)(1u << (rs - 1));
        }
        st.qend = q + 2 * pairs;
        for (i = 0; i < npix; i += 2) {
            int32_t two = i + 1 < npix;
            int8_t *o = out + i * out_c + k0;
            for (c = 0; c < s->k; c += TS_COL_MAX) {
                const int8_t *f = wts + k0 * s->k + c;
                kn = s->k - c < TS_COL_MAX ? s->k - c : TS_COL_MAX;
                gather(s, i, c, kn, col, 0, stage);
                gather(s, i + two, c, kn, col, 1, stage);
                if (c + kn < s->k) {
                    pair_dots(f, s->k, col, kn, gn, c ? 0 : tail + 4 * k0, acc[0]);
                    continue;
                }
                if (asm_pairs) {
                    st.q = q; st.o = o; st.ostep = two ? out_c : 0;
                    rq_pairs(f, s->k, &st, mode);
                }
                j = 2 * asm_pairs;
                if (j < gn)
                    pair_dots_rq(f + j * s->k, s->k, col, kn, gn - j,
                                 c ? (const uint8_t *)(acc[0] + j) : tail + 4 * (k0 + j), c ? 4 * TS_CONV_GC : 0,
                                 q + j, o + j, two ? out_c : 0, lo, hi);
            }
        }
    }
}
#endif

TS_HOT
ts_status ts_conv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                     int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out)
{
    int16_t col[2 * TS_COL_MAX + 8] TS_ALIGN4;
    int8_t stage[TS_COL_MAX];
    int32_t acc[2][TS_CONV_GC];   /* [pixel][channel] */
    int32_t npix, out_c, i, k0, c, kn, simple;
    const uint8_t *tail;
    conv_src s;
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK || !wts) return TS_ERR_ARG;
    if (g < 1 || g > p[TS_P_OUT_C]) return TS_ERR_ARG;
    s.p = p; s.in = in; s.y0 = y0; s.in_h = in_h;
    s.k = p[TS_P_KH] * p[TS_P_KW] * p[TS_P_IN_C];
    tail = (const uint8_t *)wts + ts_align4(g * s.k);
    npix = oh * p[TS_P_OUT_W];
#if TS_DSP
    if (fused_ok(p, tail, g, s.k)) {
        conv_fused(&s, npix, g, wts, tail, out);
        return TS_OK;
    }
#endif
    simple = ts_requant_simple(tail, g);
    out_c = p[TS_P_OUT_C];
    for (i = 0; i < npix; i += 2) {
        int32_t two = i + 1 < npix, single = s.k <= TS_COL_MAX;
        int8_t *o = out + i * out_c;
        if (single) {   /* the whole filter length in one column pair, gathered once */
            gather(&s, i, 0, s.k, col, 0, stage);
            gather(&s, i + two, 0, s.k, col, 1, stage);
        }
        for (k0 = 0; k0 < g; k0 += TS_CONV_GC) {
            int32_t gn = g - k0 < TS_CONV_GC ? g - k0 : TS_CONV_GC;
            for (c = 0; c < s.k; c += TS_COL_MAX) {
                kn = s.k - c < TS_COL_MAX ? s.k - c : TS_COL_MAX;
                if (!single) {
                    gather(&s, i, c, kn, col, 0, stage);
                    gather(&s, i + two, c, kn, col, 1, stage);
                }
                pair_dots(wts + k0 * s.k + c, s.k, col, kn, gn, c ? 0 : tail + 4 * k0, acc[0]);
            }
            ts_requant_row(acc[0], two ? acc[1] : 0, gn, tail, g, k0, p, o + k0, o + out_c + k0, simple);
        }
    }
    return TS_OK;
}
