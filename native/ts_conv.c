/* CONV_2D and DEPTHWISE_CONV_2D tiles (TFLite reference_integer_ops::ConvPerChannel /
 * DepthwiseConvPerChannel), band convention and payload layout in ts_kernels.h. */
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

static int8_t requant_clamp(int32_t acc, int32_t mult, int32_t shift, const int32_t *p)
{
    int32_t v = ts_mbqm(acc, mult, shift) + p[TS_P_OUT_ZP];
    if (v < p[TS_P_ACT_MIN]) v = p[TS_P_ACT_MIN];
    if (v > p[TS_P_ACT_MAX]) v = p[TS_P_ACT_MAX];
    return (int8_t)v;
}

ts_status ts_conv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
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
                o[k] = requant_clamp(acc, ts_ld32(tail, g + k), ts_ld32(tail, 2 * g + k), p);
            }
        }
    }
    return TS_OK;
}

ts_status ts_dwconv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
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
                    o[k0 + k] = requant_clamp(acc[k], ts_ld32(tail, g + k0 + k), ts_ld32(tail, 2 * g + k0 + k), p);
            }
        }
    }
    return TS_OK;
}
