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
    simple = ts_requant_simple(tail, g);
    npix = oh * p[TS_P_OUT_W];
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
