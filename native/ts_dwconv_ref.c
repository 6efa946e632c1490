/* DEPTHWISE_CONV_2D tile, the naive kernel (TFLite reference_integer_ops::DepthwiseConvPerChannel): the
 * reference that ts_dwconv_s8 (ts_dwconv.c) is tested against, and its fallback for depth multipliers > 1.
 * Band convention and payload layout in ts_kernels.h. */
#include "ts_kernels.h"
#include "ts_util.h"

ts_status ts_dwconv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                           int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out)
{
    int32_t in_w, in_c, out_w, out_c, kh, kw, sh, sw, dh, dw, pad_l, in_off, dm;
    int32_t oy, ox, k, ky, kx, ky0, ky1, kx0, kx1;
    int32_t acc[TS_DW_CHUNK];
    const uint8_t *tail;
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK || !wts) return TS_ERR_ARG;
    in_w = p[TS_P_IN_W]; in_c = p[TS_P_IN_C]; out_w = p[TS_P_OUT_W]; out_c = p[TS_P_OUT_C];
    kh = p[TS_P_KH]; kw = p[TS_P_KW]; sh = p[TS_P_SH]; sw = p[TS_P_SW];
    dh = p[TS_P_DH]; dw = p[TS_P_DW]; pad_l = p[TS_P_PAD_L]; in_off = -p[TS_P_IN_ZP]; dm = p[TS_P_DM];
    if (g < 1 || c0 < 0 || c0 % dm || g % dm || c0 + g > in_c * dm || c0 + g > out_c) return TS_ERR_ARG;
    tail = (const uint8_t *)wts + ts_align4(kh * kw * g);
    for (oy = 0; oy < oh; oy++) {
        ts_tap_range(y0 + oy * sh, dh, kh, in_h, &ky0, &ky1);
        for (ox = 0; ox < out_w; ox++) {
            int8_t *o = out + (oy * out_w + ox) * out_c;
            int32_t k0, kn;
            ts_tap_range(ox * sw - pad_l, dw, kw, in_w, &kx0, &kx1);
            /* Channels in chunks so the taps' inner loop runs over contiguous channels. */
            for (k0 = 0; k0 < g; k0 += TS_DW_CHUNK) {
                kn = g - k0 < TS_DW_CHUNK ? g - k0 : TS_DW_CHUNK;
                for (k = 0; k < kn; k++) acc[k] = ts_ld32(tail, k0 + k);
                for (ky = ky0; ky < ky1; ky++) {
                    const int8_t *row = in + (y0 + oy * sh + ky * dh) * in_w * in_c;
                    for (kx = kx0; kx < kx1; kx++) {
                        const int8_t *x = row + (ox * sw - pad_l + kx * dw) * in_c;
                        const int8_t *f = wts + (ky * kw + kx) * g + k0;
                        for (k = 0; k < kn; k++)
                            acc[k] += (int32_t)f[k] * ((int32_t)x[(c0 + k0 + k) / dm] + in_off);
                    }
                }
                for (k = 0; k < kn; k++)
                    o[k0 + k] = ts_requant_ch(acc[k], tail, g, k0 + k, p);
            }
        }
    }
    return TS_OK;
}
