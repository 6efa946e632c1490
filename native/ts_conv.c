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
 * again for every group of TS_CONV_GC channels.
 *
 * Cortex-M with the DSP extension has two more paths, each its own function (their stack frames do not add
 * up): conv_fused, requantization inside the channel-pair loop (rq_pairs), and for filters of up to
 * TS_SK_KMAX values conv_short, with the filters widened once per tile (sk_pairs). */
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
/* Sign bit set unless fused_ok's conditions hold for a channel: m >= 0, -21 <= sh <= -1, |b| <= lim. */
static inline uint32_t sk_bad(int32_t b, int32_t m, int32_t sh, int32_t lim)
{
    uint32_t t = (uint32_t)(b ^ (b >> 31));   /* |b| - [b < 0] */
    return (uint32_t)m | ((uint32_t)sh + 21u) | (0xffffffffu - (uint32_t)sh) |
           ((uint32_t)lim - t - ((uint32_t)b >> 31));
}

static int32_t fused_ok(const int32_t *p, const uint8_t *tail, int32_t g, int32_t k)
{
    int32_t j, lim;
    uint32_t bad = 0;
    if (k > 32000 || p[TS_P_IN_ZP] < -128 || p[TS_P_IN_ZP] > 127 || p[TS_P_OUT_ZP] < -128 || p[TS_P_OUT_ZP] > 127)
        return 0;
    lim = (1 << 30) - 1 - k * (128 * 255);
    for (j = 0; j < g; j++) bad |= sk_bad(ts_ld32(tail, j), ts_ld32(tail, g + j), ts_ld32(tail, 2 * g + j), lim);
    return (int32_t)bad >= 0;
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
TS_NOINLINE static void conv_fused(const conv_src *s, int32_t npix, int32_t g, const int8_t *wts, const uint8_t *tail,
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

/* ---- Short filters (K <= TS_SK_KMAX values: 1x1 convolutions of up to 64 input channels, the 3x3 stem of 3
 * channels): the filters of a channel group are widened to int16 once per tile, so the inner product is
 * loads and SMLAD only (11 instructions per 16 MACs, against 17 when every pixel pair widens the filter
 * again), and the work per output is cut to what the requantization needs:
 *   - the column pair is stored doubled (2 * (x - in_zp), still int16), so the accumulators are the 2x that
 *     SMMLAR takes (the stream holds 2 * bias): no LSL per output;
 *   - the filter length is padded to whole groups of 4 (zero column values, so the filter bytes read past a
 *     row's end multiply zeros), and the inner product is a jump into a fully unrolled sequence of groups:
 *     no loop counter;
 *   - one stream per channel pair (filter words, bias, requantization constants in the order the assembly
 *     loads them) read by LDM, the output pointer in a register;
 *   - a clamp below 127 moves into the requantization: with d = 127 - hi (0 <= d <= 127), the output zero
 *     point becomes zp + d (exact inside the floor; |zp + d| <= 254 keeps |c0| below 2**29, the bound
 *     conv_fused's argument needs), SSAT clamps r + d to [-128, 127], and QSUB8 on the four packed bytes
 *     subtracts d again, saturating at -128: min(max(r, -128), hi) for every r; a lower bound above -128 is
 *     one SSUB8 + SEL more.
 * Otherwise as conv_fused (fused_ok's conditions, the same arithmetic and results). */
#ifndef TS_SK_KMAX
#define TS_SK_KMAX 64        /* longest filter: at most 64 (the unrolled sequence) */
#endif
#ifndef TS_SK_BUF
#define TS_SK_BUF 3168       /* bytes of channel-pair streams per channel group, the column pair and the
                              * staging (20 * groups bytes); 3168: 64 channels of 16 values in one group */
#endif
#ifndef TS_SK_MIN_PIX
#define TS_SK_MIN_PIX 4      /* fewer output pixels: widening the filters does not pay, conv_fused */
#endif
#if TS_SK_KMAX > 64 || TS_SK_BUF < 4 * (5 * 16 + 2 * 72)
#error "TS_SK_KMAX is at most 64 (the unrolled groups); TS_SK_BUF must hold two channels of 64 values"
#endif

/* A channel pair's stream (int32 words): the widened filters of group 0 (channel 0's two words), 2 * bias0,
 * 2 * bias1, (channel 1's two words of group 0), then per further group channel 0's and channel 1's two
 * words, then m0, c0_0, m1, c0_1, rs0, rs1: 4 * groups + 8 words. Widened: (w0, w2), (w1, w3) of a group of
 * four as SXTB16 and SXTB16 ROR 8 give them. */
#define SK_WORDS(ng) (4 * (ng) + 8)

/* The state sk_pairs reads, at the byte offsets of its assembly. */
typedef struct {
    int32_t ostep;           /* 0: pixel 1's output - pixel 0's (0: one pixel) */
    int8_t *oend;            /* 4: pixel 0's output after the last channel pair */
    int32_t d4, lo4;         /* 8, 12: d and lo in every byte */
    const int32_t *col;      /* 16: the column pair (16 bytes per group of 4 values) */
    int8_t *o;               /* 20: pixel 0's output of the first channel pair */
    const int32_t *stream;   /* 24: the first channel pair's stream */
    uint32_t entry;          /* 28: in: 44 * (16 - groups); the assembly makes it the jump address */
    uint32_t tail;           /* 32: in: the clamp mode 0, 1, 2, or 3 for one channel (one pair of the channel
                              * twice, any clamp); the assembly makes it its stores' address */
} sk_state;

/* One further group: r0-r3 the column (pixel 0's two words, pixel 1's), r4-r5 a channel's two filter words,
 * r6 r7 channel 0 (pixels 0, 1), r8 r9 channel 1. 44 bytes. */
#define SK_GROUP \
    "ldm.w r10!, {r0-r3}\n\t" \
    "ldrd r4, r5, [r11], #8\n\t" \
    "smlad r6, r4, r0, r6\n\t" \
    "smlad r7, r4, r2, r7\n\t" \
    "smlad r6, r5, r1, r6\n\t" \
    "smlad r7, r5, r3, r7\n\t" \
    "ldrd r4, r5, [r11], #8\n\t" \
    "smlad r8, r4, r0, r8\n\t" \
    "smlad r9, r4, r2, r9\n\t" \
    "smlad r8, r5, r1, r8\n\t" \
    "smlad r9, r5, r3, r9\n\t"

/* Requantize the doubled accumulator R: m in M, c0 in C, rs in S, r10 scratch. */
#define SK_RQ(R, M, C, S) \
    "add r10, " C ", " R ", asr #31\n\t" \
    "smmlar " R ", " R ", " M ", r10\n\t" \
    "asr " R ", " R ", " S "\n\t" \
    "ssat " R ", #8, " R "\n\t"

/* Every channel pair on one column pair: r11 walks the streams, r12 the output, r10 the column. */
__attribute__((naked, noinline)) static void sk_pairs(sk_state *st __attribute__((unused)))
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "mov lr, r0\n\t"
        "ldr r10, [lr, #16]\n\t"
        "ldrd r12, r11, [lr, #20]\n\t"
        "adr.w r0, 8f\n\t"
        "ldrd r1, r2, [lr, #28]\n\t"
        "add r0, r0, r1\n\t"
        "orr r0, r0, #1\n\t"
        "adr.w r1, 20f\n\t"
        "cmp r2, #1\n\t"
        "blo 5f\n\t"
        "adr.w r1, 21f\n\t"
        "beq 5f\n\t"
        "adr.w r1, 22f\n\t"
        "cmp r2, #2\n\t"
        "beq 5f\n\t"
        "adr.w r1, 23f\n\t"
        "5:\n\t"
        "orr r1, r1, #1\n\t"
        "strd r0, r1, [lr, #28]\n\t"
        /* a channel pair: group 0 with the biases */
        "1:\n\t"
        "ldm r11!, {r4, r5, r6, r8}\n\t"
        "ldm.w r10!, {r0-r3}\n\t"
        "smlad r7, r4, r2, r6\n\t"
        "smlad r6, r4, r0, r6\n\t"
        "smlad r7, r5, r3, r7\n\t"
        "smlad r6, r5, r1, r6\n\t"
        "ldrd r4, r5, [r11], #8\n\t"
        "smlad r9, r4, r2, r8\n\t"
        "smlad r8, r4, r0, r8\n\t"
        "smlad r9, r5, r3, r9\n\t"
        "smlad r8, r5, r1, r8\n\t"
        "ldr pc, [lr, #28]\n\t"
        /* groups 1 .. 15, entered at 16 - groups */
        ".p2align 2\n\t"
        "8:\n\t"
        SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP
        SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP SK_GROUP
        "ldm r11!, {r0-r5}\n\t"
        SK_RQ("r6", "r0", "r1", "r4") SK_RQ("r7", "r0", "r1", "r4")
        SK_RQ("r8", "r2", "r3", "r5") SK_RQ("r9", "r2", "r3", "r5")
        "ldr pc, [lr, #32]\n\t"
        /* stores, the whole int8 range */
        ".p2align 2\n\t"
        "20:\n\t"
        "ldm lr, {r1-r4, r10}\n\t"
        "strb r8, [r12, #1]\n\t"
        "strb r7, [r12, r1]\n\t"
        "add r1, r12, r1\n\t"
        "strb r9, [r1, #1]\n\t"
        "strb r6, [r12], #2\n\t"
        "cmp r12, r2\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        /* stores, min with hi: pack, QSUB8 d */
        ".p2align 2\n\t"
        "21:\n\t"
        "ldm lr, {r1-r4, r10}\n\t"
        "bfi r6, r8, #8, #8\n\t"
        "bfi r7, r9, #8, #8\n\t"
        "pkhbt r6, r6, r7, lsl #16\n\t"
        "qsub8 r6, r6, r3\n\t"
        "lsr r5, r6, #16\n\t"
        "strh r5, [r12, r1]\n\t"
        "strh r6, [r12], #2\n\t"
        "cmp r12, r2\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        /* stores, min with hi and max with lo */
        ".p2align 2\n\t"
        "22:\n\t"
        "ldm lr, {r1-r4, r10}\n\t"
        "bfi r6, r8, #8, #8\n\t"
        "bfi r7, r9, #8, #8\n\t"
        "pkhbt r6, r6, r7, lsl #16\n\t"
        "qsub8 r6, r6, r3\n\t"
        "ssub8 r5, r6, r4\n\t"
        "sel r6, r6, r4\n\t"
        "lsr r5, r6, #16\n\t"
        "strh r5, [r12, r1]\n\t"
        "strh r6, [r12], #2\n\t"
        "cmp r12, r2\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        /* one channel (a stream of the channel twice), any clamp: channel 0's bytes only */
        ".p2align 2\n\t"
        "23:\n\t"
        "ldm lr, {r1-r4, r10}\n\t"
        "bfi r6, r7, #8, #8\n\t"
        "qsub8 r6, r6, r3\n\t"
        "ssub8 r5, r6, r4\n\t"
        "sel r6, r6, r4\n\t"
        "lsr r5, r6, #8\n\t"
        "strb r5, [r12, r1]\n\t"
        "strb r6, [r12]\n\t"
        "pop {r4-r11, pc}\n\t");
}

/* ng groups of 4 int8 values from src into one pixel's slot of the column pair: 2 * (x + off) as (x0, x2)
 * (x1, x3) (off2: -in_zp in both halves). */
static inline void sk_widen(int32_t *col, const int8_t *src, int32_t ng, int32_t off2)
{
    int32_t *end = col + 4 * ng;
    uint32_t x;
    int32_t lo, hi;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[x], [%[src]], #4\n\t"
        "sxtab16 %[lo], %[off2], %[x]\n\t"
        "sxtab16 %[hi], %[off2], %[x], ror #8\n\t"
        "sadd16 %[lo], %[lo], %[lo]\n\t"
        "sadd16 %[hi], %[hi], %[hi]\n\t"
        "strd %[lo], %[hi], [%[col]], #16\n\t"
        "cmp %[col], %[end]\n\t"
        "bne 1b"
        : [col] "+r"(col), [src] "+r"(src), [x] "=&r"(x), [lo] "=&r"(lo), [hi] "=&r"(hi)
        : [end] "r"(end), [off2] "r"(off2)
        : "cc", "memory");
}

/* A tile's geometry for sk_gather, read once. */
typedef struct {
    const int8_t *in;
    int32_t in_w, in_h, in_c, kh, kw, sh, sw, dh, dw, out_w, y0, pad_l, off2, ng, direct, in_zp;
} sk_geom;

/* Output pixel pix into the pixel slot `col` of the column pair. 1x1 filters of whole groups (`direct`)
 * widen the input pixel in place; other filters are staged as int8 first (padding and the values past the
 * filter as in_zp: 0 after the subtraction), a filter row of taps inside the input copied as one run. */
static void sk_gather(const sk_geom *q, int32_t pix, int32_t *col, int8_t *stage)
{
    int32_t oy = pix / q->out_w, iy0 = q->y0 + oy * q->sh, ix0 = (pix - oy * q->out_w) * q->sw - q->pad_l;
    int32_t in_c = q->in_c, in_w = q->in_w, ng = q->ng, ky, kx, c;
    int8_t *d = stage, *end = stage + 4 * ng;
    if (q->direct) {
        if ((uint32_t)iy0 < (uint32_t)q->in_h && (uint32_t)ix0 < (uint32_t)in_w) {
            sk_widen(col, q->in + (iy0 * in_w + ix0) * in_c, ng, q->off2);
        } else {
            for (c = 0; c < ng; c++, col += 4) col[0] = col[1] = 0;
        }
        return;
    }
    {
        int32_t run = q->kw * in_c, whole = q->dw == 1 && ix0 >= 0 && ix0 + q->kw <= in_w;
        for (ky = 0; ky < q->kh; ky++, d += run) {
            int32_t iy = iy0 + ky * q->dh;
            const int8_t *row;
            if ((uint32_t)iy >= (uint32_t)q->in_h) {
                for (c = 0; c < run; c++) d[c] = (int8_t)q->in_zp;
                continue;
            }
            row = q->in + iy * in_w * in_c;
            if (whole) {   /* the filter row's taps are one run of the input row */
                const int8_t *x = row + ix0 * in_c;
                for (c = 0; c + 4 <= run; c += 4) ts_stu32(d + c, (int32_t)ts_ldu32(x + c));
                for (; c < run; c++) d[c] = x[c];
                continue;
            }
            for (kx = 0; kx < q->kw; kx++) {
                int32_t ix = ix0 + kx * q->dw, i;
                int8_t *dt = d + kx * in_c;
                if ((uint32_t)ix < (uint32_t)in_w)
                    for (i = 0; i < in_c; i++) dt[i] = row[ix * in_c + i];
                else
                    for (i = 0; i < in_c; i++) dt[i] = (int8_t)q->in_zp;
            }
        }
        for (; d < end; d++) *d = (int8_t)q->in_zp;
        sk_widen(col, stage, ng, q->off2);
    }
}

/* Streams (SK_WORDS) of channel pairs [0, pairs) of the filter w (k values per channel, groups of ng) and
 * the payload constants from `tail` (channel 0 of the group at c, g channels); cz = 2 * (zp + d) + 1, so
 * that c0 = cz * 2**(rs-1). Returns fused_ok's verdict on these channels (sign bit set: not all ok). Two
 * passes (filters, then constants), each with few enough live values for the registers. */
TS_NOINLINE static uint32_t sk_streams(int32_t *f, const int8_t *w, int32_t k, int32_t ng, int32_t pairs,
                                       const uint8_t *tail, int32_t g, int32_t c, int32_t cz, int32_t lim)
{
    const uint8_t *tb = tail + 4 * c;
    int32_t *f0 = f, *end = f + pairs * SK_WORDS(ng), step = SK_WORDS(ng);
    uint32_t bad = 0;
    for (; f != end; w += 2 * k) {   /* the filters: group 0 around the bias slots, then groups 1 .. ng-1 */
        const int8_t *f1 = w + k;
        uint32_t x0 = ts_ldu32(w), x1 = ts_ldu32(f1);
        f[0] = __sxtb16(x0);
        f[1] = ts_sxtb16_ror8(x0);
        f[4] = __sxtb16(x1);
        f[5] = ts_sxtb16_ror8(x1);
        f += 6;
        if (ng > 1) {
            const int8_t *a = w + 4, *b = f1 + 4, *aend = w + 4 * ng;
            int32_t v0, v1, v2, v3;
            __asm__ volatile(
                "1:\n\t"
                "ldr %[x0], [%[a]], #4\n\t"
                "ldr %[x1], [%[b]], #4\n\t"
                "sxtb16 %[v0], %[x0]\n\t"
                "sxtb16 %[v1], %[x0], ror #8\n\t"
                "sxtb16 %[v2], %[x1]\n\t"
                "sxtb16 %[v3], %[x1], ror #8\n\t"
                "strd %[v0], %[v1], [%[f]], #8\n\t"
                "strd %[v2], %[v3], [%[f]], #8\n\t"
                "cmp %[a], %[aend]\n\t"
                "bne 1b"
                : [f] "+r"(f), [a] "+r"(a), [b] "+r"(b), [x0] "=&r"(x0), [x1] "=&r"(x1), [v0] "=&r"(v0),
                  [v1] "=&r"(v1), [v2] "=&r"(v2), [v3] "=&r"(v3)
                : [aend] "r"(aend)
                : "cc", "memory");
        }
        f += 6;
    }
    for (f = f0; f != end; f += step, tb += 8) {   /* biases and requantization constants */
        int32_t b0 = ts_ld32(tb, 0), b1 = ts_ld32(tb, 1), m0 = ts_ld32(tb, g), m1 = ts_ld32(tb, g + 1);
        int32_t s0 = ts_ld32(tb, 2 * g), s1 = ts_ld32(tb, 2 * g + 1);
        int32_t *q = f + step - 6;
        bad |= sk_bad(b0, m0, s0, lim) | sk_bad(b1, m1, s1, lim);
        f[2] = (int32_t)((uint32_t)b0 << 1);
        f[3] = (int32_t)((uint32_t)b1 << 1);
        q[0] = m0;
        q[1] = (int32_t)((uint32_t)cz << (-s0 & 31)) >> 1;
        q[2] = m1;
        q[3] = (int32_t)((uint32_t)cz << (-s1 & 31)) >> 1;
        q[4] = -s0;
        q[5] = -s1;
    }
    return bad;
}

/* The stream of channel c twice (for sk_pairs's one-channel stores; its checks are conv_short's). */
static void sk_stream1(int32_t *f, const int8_t *w, int32_t ng, const uint8_t *tail, int32_t g, int32_t c, int32_t cz)
{
    int32_t t, b = 2 * ts_ld32(tail, c), m = ts_ld32(tail, g + c), rs = -ts_ld32(tail, 2 * g + c);
    for (t = 0; t < ng; t++, w += 4) {
        uint32_t x = ts_ldu32(w);
        int32_t lo = __sxtb16(x), hi = ts_sxtb16_ror8(x);
        f[0] = lo;
        f[1] = hi;
        if (!t) {
            f[2] = f[3] = b;
            f += 2;
        }
        f[2] = lo;
        f[3] = hi;
        f += 4;
    }
    f[0] = f[2] = m;
    f[1] = f[3] = (int32_t)((uint32_t)cz << (rs & 31)) >> 1;
    f[4] = f[5] = rs;
}

/* ts_conv_s8 on the short-filter path, when K <= TS_SK_KMAX, act_max >= 0 and fused_ok's conditions hold;
 * returns 0 without writing anything when they do not. Channel groups of equal size (at most what TS_SK_BUF
 * holds), outermost; per group the streams built, then every pixel pair: gather, sk_pairs (and once more
 * for an odd last channel). */
TS_NOINLINE static int32_t conv_short(const conv_src *s, int32_t npix, int32_t g, const int8_t *wts,
                                      const uint8_t *tail, int8_t *out)
{
    int32_t buf[TS_SK_BUF / 4];   /* the streams, then the column pair (4 * ng words), then the staging */
    const int32_t *p = s->p;
    int32_t k = s->k, ng = (k + 3) >> 2, out_c = p[TS_P_OUT_C], zp = p[TS_P_OUT_ZP], lo = p[TS_P_ACT_MIN];
    int32_t hi = p[TS_P_ACT_MAX], d = 127 - hi, lim = (1 << 30) - 1 - k * (128 * 255);
    int32_t *col = buf + TS_SK_BUF / 4 - 5 * ng, gmax = 2 * ((TS_SK_BUF / 4 - 5 * ng) / SK_WORDS(ng));
    int32_t parts = (g + gmax - 1) / gmax, cz = 2 * (zp + d) + 1, gsz, k0, i, j;
    int8_t *stage = (int8_t *)(col + 4 * ng);   /* 4 * ng bytes */
    sk_geom q;
    sk_state st;
    if (p[TS_P_IN_ZP] < -128 || p[TS_P_IN_ZP] > 127 || zp < -128 || zp > 127) return 0;
    gsz = ((g + parts - 1) / parts + 1) & ~1;   /* <= gmax */
    q.in = s->in; q.in_w = p[TS_P_IN_W]; q.in_h = s->in_h; q.in_c = p[TS_P_IN_C]; q.kh = p[TS_P_KH];
    q.kw = p[TS_P_KW]; q.sh = p[TS_P_SH]; q.sw = p[TS_P_SW]; q.dh = p[TS_P_DH]; q.dw = p[TS_P_DW];
    q.out_w = p[TS_P_OUT_W]; q.y0 = s->y0; q.pad_l = p[TS_P_PAD_L]; q.off2 = ts_dup16(-p[TS_P_IN_ZP]);
    q.ng = ng; q.direct = q.kh == 1 && q.kw == 1 && (q.in_c & 3) == 0; q.in_zp = p[TS_P_IN_ZP];
    st.d4 = (int32_t)((uint32_t)(uint8_t)d * 0x01010101u);
    st.lo4 = (int32_t)((uint32_t)(uint8_t)lo * 0x01010101u);
    st.col = col;
    for (k0 = 0; k0 < g; k0 += gsz) {
        int32_t gn = g - k0 < gsz ? g - k0 : gsz, pairs = gn >> 1;
        uint32_t bad = sk_streams(buf, wts + k0 * k, k, ng, pairs, tail, g, k0, cz, lim);
        if (gn & 1)      /* room: gn < gsz, so pairs < gsz / 2 */
            sk_stream1(buf + pairs * SK_WORDS(ng), wts + (k0 + gn - 1) * k, ng, tail, g, k0 + gn - 1, cz);
        if (k0 == 0) {   /* the first group's streams checked its pairs: check every other channel too */
            for (j = 2 * pairs; j < g; j++)
                bad |= sk_bad(ts_ld32(tail, j), ts_ld32(tail, g + j), ts_ld32(tail, 2 * g + j), lim);
            if ((int32_t)bad < 0) return 0;
        }
        for (i = 0; i < npix; i += 2) {
            int32_t two = i + 1 < npix;
            int8_t *o = out + i * out_c + k0;
            sk_gather(&q, i, col, stage);
            sk_gather(&q, i + two, col + 2, stage);
            if (pairs) {
                st.o = o;
                st.oend = o + 2 * pairs;
                st.ostep = two ? out_c : 0;
                st.stream = buf;
                st.entry = 44u * (uint32_t)(16 - ng);
                st.tail = lo > -128 ? 2 : hi < 127 ? 1 : 0;
                sk_pairs(&st);
            }
            if (gn & 1) {   /* the odd last channel: its stream after the pairs', one call more */
                st.o = o + gn - 1;
                st.oend = st.o + 2;
                st.ostep = two ? out_c : 0;
                st.stream = buf + pairs * SK_WORDS(ng);
                st.entry = 44u * (uint32_t)(16 - ng);
                st.tail = 3;
                sk_pairs(&st);
            }
        }
    }
    return 1;
}
#endif

/* The generic fast path: pair_dots, then ts_requant_row per channel group. Out of line on Cortex-M with the
 * DSP extension, so that its stack and the fused paths' do not add up in ts_conv_s8's frame. */
#if TS_DSP
#define TS_PLAIN_INLINE TS_NOINLINE static
#elif defined(__GNUC__)
#define TS_PLAIN_INLINE static inline __attribute__((always_inline))
#else
#define TS_PLAIN_INLINE static inline
#endif
TS_PLAIN_INLINE void conv_plain(const conv_src *s, int32_t npix, int32_t g, const int8_t *wts, const uint8_t *tail,
                                   int8_t *out)
{
    int16_t col[2 * TS_COL_MAX + 8] TS_ALIGN4;
    int8_t stage[TS_COL_MAX];
    int32_t acc[2][TS_CONV_GC];   /* [pixel][channel] */
    const int32_t *p = s->p;
    int32_t out_c = p[TS_P_OUT_C], simple = ts_requant_simple(tail, g), i, k0, c, kn;
    for (i = 0; i < npix; i += 2) {
        int32_t two = i + 1 < npix, single = s->k <= TS_COL_MAX;
        int8_t *o = out + i * out_c;
        if (single) {   /* the whole filter length in one column pair, gathered once */
            gather(s, i, 0, s->k, col, 0, stage);
            gather(s, i + two, 0, s->k, col, 1, stage);
        }
        for (k0 = 0; k0 < g; k0 += TS_CONV_GC) {
            int32_t gn = g - k0 < TS_CONV_GC ? g - k0 : TS_CONV_GC;
            for (c = 0; c < s->k; c += TS_COL_MAX) {
                kn = s->k - c < TS_COL_MAX ? s->k - c : TS_COL_MAX;
                if (!single) {
                    gather(s, i, c, kn, col, 0, stage);
                    gather(s, i + two, c, kn, col, 1, stage);
                }
                pair_dots(wts + k0 * s->k + c, s->k, col, kn, gn, c ? 0 : tail + 4 * k0, acc[0]);
            }
            ts_requant_row(acc[0], two ? acc[1] : 0, gn, tail, g, k0, p, o + k0, o + out_c + k0, simple);
        }
    }
}

TS_HOT
ts_status ts_conv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                     int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out)
{
    int32_t npix;
    const uint8_t *tail;
    conv_src s;
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK || !wts) return TS_ERR_ARG;
    if (g < 1 || g > p[TS_P_OUT_C]) return TS_ERR_ARG;
    s.p = p; s.in = in; s.y0 = y0; s.in_h = in_h;
    s.k = p[TS_P_KH] * p[TS_P_KW] * p[TS_P_IN_C];
    tail = (const uint8_t *)wts + ts_align4(g * s.k);
    npix = oh * p[TS_P_OUT_W];
#if TS_DSP
    if (s.k <= TS_SK_KMAX && npix >= TS_SK_MIN_PIX && p[TS_P_ACT_MAX] >= 0 && conv_short(&s, npix, g, wts, tail, out))
        return TS_OK;
    if (fused_ok(p, tail, g, s.k)) {
        conv_fused(&s, npix, g, wts, tail, out);
        return TS_OK;
    }
#endif
    conv_plain(&s, npix, g, wts, tail, out);
    return TS_OK;
}
