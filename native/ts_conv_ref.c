/* CONV_2D tile, the naive kernel (TFLite reference_integer_ops::ConvPerChannel written out): the reference
 * that ts_conv_s8 (ts_conv.c) is tested against, and its fallback. Band convention and payload layout in
 * ts_kernels.h. */
#include "ts_kernels.h"
#include "ts_util.h"

ts_status ts_conv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                         int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out)
{
    int32_t in_w, in_c, out_w, out_c, kh, kw, sh, sw, dh, dw, pad_l, in_off;
    int32_t oy, ox, k, ky, kx, c, ky0, ky1, kx0, kx1;
    const uint8_t *tail;
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK || !wts) return TS_ERR_ARG;
    in_w = p[TS_P_IN_W]; in_c = p[TS_P_IN_C]; out_w = p[TS_P_OUT_W]; out_c = p[TS_P_OUT_C];
    kh = p[TS_P_KH]; kw = p[TS_P_KW]; sh = p[TS_P_SH]; sw = p[TS_P_SW];
    dh = p[TS_P_DH]; dw = p[TS_P_DW]; pad_l = p[TS_P_PAD_L]; in_off = -p[TS_P_IN_ZP];
    if (g < 1 || g > out_c) return TS_ERR_ARG;
    tail = (const uint8_t *)wts + ts_align4(g * kh * kw * in_c);
    for (oy = 0; oy < oh; oy++) {
        ts_tap_range(y0 + oy * sh, dh, kh, in_h, &ky0, &ky1);
        for (ox = 0; ox < out_w; ox++) {
            int8_t *o = out + (oy * out_w + ox) * out_c;
            ts_tap_range(ox * sw - pad_l, dw, kw, in_w, &kx0, &kx1);
            for (k = 0; k < g; k++) {
                int32_t acc = ts_ld32(tail, k);
                for (ky = ky0; ky < ky1; ky++) {
                    const int8_t *row = in + (y0 + oy * sh + ky * dh) * in_w * in_c;
                    const int8_t *f = wts + ((k * kh + ky) * kw) * in_c;
                    for (kx = kx0; kx < kx1; kx++) {
                        const int8_t *x = row + (ox * sw - pad_l + kx * dw) * in_c;
                        const int8_t *fk = f + kx * in_c;
                        for (c = 0; c < in_c; c++) acc += (int32_t)fk[c] * ((int32_t)x[c] + in_off);
                    }
                }
                o[k] = ts_requant_ch(acc, tail, g, k, p);
            }
        }
    }
    return TS_OK;
}
