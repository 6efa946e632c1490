/* DEPTHWISE_CONV_2D tile, the fast kernel. Same results as ts_dwconv_s8_ref (ts_dwconv_ref.c), which spells
 * out the arithmetic; band convention and payload layout in ts_kernels.h.
 *
 * Depth multiplier 1 (every MobileNet): per output pixel the window's valid taps are listed once (input and
 * filter offsets), then TS_DW_GC channels at a time are accumulated over the taps (ts_dw_acc: four channels
 * in registers on Cortex-M, a vectorised pass per tap on the host) and requantized a pair of pixels at a
 * time (ts_requant_row). A full 3x3 window (the depthwise 3x3 path) runs the tap loop with a literal count.
 * Depth multipliers > 1 and windows of more than TS_DW_MAXTAPS taps run the reference kernel. */
#include "ts_kernels.h"
#include "ts_simd.h"

#define TS_DW_MAXTAPS 25   /* up to 5x5 windows; larger ones run the reference */
#define TS_DW_GC 64

/* The valid taps of the window of output pixel (oy, ox) as (input offset, filter offset) pairs; returns how
 * many. */
static int32_t list_taps(const int32_t *p, int32_t y0, int32_t in_h, int32_t g, int32_t oy, int32_t ox, int32_t *tap)
{
    int32_t in_w = p[TS_P_IN_W], in_c = p[TS_P_IN_C], kw = p[TS_P_KW], ky, kx, ky0, ky1, kx0, kx1, nt = 0;
    int32_t iy0 = y0 + oy * p[TS_P_SH], ix0 = ox * p[TS_P_SW] - p[TS_P_PAD_L];
    ts_tap_range(iy0, p[TS_P_DH], p[TS_P_KH], in_h, &ky0, &ky1);
    ts_tap_range(ix0, p[TS_P_DW], kw, in_w, &kx0, &kx1);
    for (ky = ky0; ky < ky1; ky++) {
        for (kx = kx0; kx < kx1; kx++, nt++) {
            tap[2 * nt] = ((iy0 + ky * p[TS_P_DH]) * in_w + ix0 + kx * p[TS_P_DW]) * in_c;
            tap[2 * nt + 1] = (ky * kw + kx) * g;
        }
    }
    return nt;
}

/* acc[j] = bias + the window's taps, channels k .. k + n - 1. */
static TS_HOST_INLINE void window(const int8_t *in, const int8_t *f, const uint8_t *tail, const int32_t *tap, int32_t nt,
                   int32_t off, int32_t k, int32_t n, int32_t *acc)
{
    int32_t j;
    for (j = 0; j < n; j++) acc[j] = ts_ld32(tail, k + j);
    if (nt == 9)   /* the depthwise 3x3 path: a full window, the tap loop unrolled */
        ts_dw_acc(in + k, f + k, tap, 9, off, n, acc);
    else
        ts_dw_acc(in + k, f + k, tap, nt, off, n, acc);
}

TS_HOT
ts_status ts_dwconv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                       int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out)
{
    int32_t tap[2][2 * TS_DW_MAXTAPS], acc[2][TS_DW_GC];
    int32_t in_c, out_w, out_c, kh, kw, dm, off, oy, ox, k, nt0, nt1, simple;
    const uint8_t *tail;
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK || !wts) return TS_ERR_ARG;
    in_c = p[TS_P_IN_C]; out_w = p[TS_P_OUT_W]; out_c = p[TS_P_OUT_C];
    kh = p[TS_P_KH]; kw = p[TS_P_KW]; dm = p[TS_P_DM]; off = -p[TS_P_IN_ZP];
    if (g < 1 || c0 < 0 || c0 % dm || g % dm || c0 + g > in_c * dm || c0 + g > out_c) return TS_ERR_ARG;
    if (dm != 1 || kh * kw > TS_DW_MAXTAPS) return ts_dwconv_s8_ref(p, y0, oh, c0, g, in_h, in, wts, out);
    tail = (const uint8_t *)wts + ts_align4(kh * kw * g);
    simple = ts_requant_simple(tail, g);
    in += c0;
    /* Pixels of a row in pairs, so that requantization shares each channel's values between the two. */
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < out_w; ox += 2) {
            int32_t two = ox + 1 < out_w;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            nt0 = list_taps(p, y0, in_h, g, oy, ox, tap[0]);
            nt1 = two ? list_taps(p, y0, in_h, g, oy, ox + 1, tap[1]) : 0;
            for (k = 0; k < g; k += TS_DW_GC) {
                int32_t n = g - k < TS_DW_GC ? g - k : TS_DW_GC;
                window(in, wts, tail, tap[0], nt0, off, k, n, acc[0]);
                if (two) window(in, wts, tail, tap[1], nt1, off, k, n, acc[1]);
                ts_requant_row(acc[0], two ? acc[1] : 0, n, tail, g, k, p, o + k, o + out_c + k, simple);
            }
        }
    }
    return TS_OK;
}
