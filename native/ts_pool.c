/* MAX_POOL_2D and AVERAGE_POOL_2D tiles (TFLite reference_integer_ops::MaxPool / AveragePool).
 * Padding positions are left out of the window: the max ignores them, the average divides by the number
 * of valid positions. Inner loops run over the contiguous channels of one pixel. */
#include "ts_kernels.h"
#include "ts_util.h"

static ts_status pool_check(const int32_t *p, int32_t oh, int32_t c0, int32_t g, int32_t in_h,
                            const int8_t *in, int8_t *out)
{
    if (ts_spatial_check(p, oh, in_h, in, out) != TS_OK) return TS_ERR_ARG;
    if (g < 1 || c0 < 0 || c0 + g > p[TS_P_IN_C] || c0 + g > p[TS_P_OUT_C]) return TS_ERR_ARG;
    return TS_OK;
}

ts_status ts_maxpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out)
{
    int32_t oy, ox, ky, kx, k, ky0, ky1, kx0, kx1, in_w, in_c, out_w, out_c;
    int32_t k0, kn;
    int8_t m[TS_DW_CHUNK];
    if (pool_check(p, oh, c0, g, in_h, in, out) != TS_OK) return TS_ERR_ARG;
    in_w = p[TS_P_IN_W]; in_c = p[TS_P_IN_C]; out_w = p[TS_P_OUT_W]; out_c = p[TS_P_OUT_C];
    for (oy = 0; oy < oh; oy++) {
        ts_tap_range(y0 + oy * p[TS_P_SH], 1, p[TS_P_KH], in_h, &ky0, &ky1);
        for (ox = 0; ox < out_w; ox++) {
            int8_t *o = out + (oy * out_w + ox) * out_c;
            int32_t x0 = ox * p[TS_P_SW] - p[TS_P_PAD_L];
            ts_tap_range(x0, 1, p[TS_P_KW], in_w, &kx0, &kx1);
            for (k0 = 0; k0 < g; k0 += TS_DW_CHUNK) {
                kn = g - k0 < TS_DW_CHUNK ? g - k0 : TS_DW_CHUNK;
                for (k = 0; k < kn; k++) m[k] = -128;
                for (ky = ky0; ky < ky1; ky++) {
                    for (kx = kx0; kx < kx1; kx++) {
                        const int8_t *x = in + ((y0 + oy * p[TS_P_SH] + ky) * in_w + x0 + kx) * in_c + c0 + k0;
                        for (k = 0; k < kn; k++) if (x[k] > m[k]) m[k] = x[k];
                    }
                }
                for (k = 0; k < kn; k++) o[k0 + k] = ts_clamp8(m[k], p[TS_P_ACT_MIN], p[TS_P_ACT_MAX]);
            }
        }
    }
    return TS_OK;
}

ts_status ts_avgpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out)
{
    int32_t oy, ox, ky, kx, k, ky0, ky1, kx0, kx1, in_w, in_c, out_w, out_c, n;
    int32_t k0, kn;
    int32_t s[TS_DW_CHUNK];
    if (pool_check(p, oh, c0, g, in_h, in, out) != TS_OK) return TS_ERR_ARG;
    in_w = p[TS_P_IN_W]; in_c = p[TS_P_IN_C]; out_w = p[TS_P_OUT_W]; out_c = p[TS_P_OUT_C];
    for (oy = 0; oy < oh; oy++) {
        ts_tap_range(y0 + oy * p[TS_P_SH], 1, p[TS_P_KH], in_h, &ky0, &ky1);
        for (ox = 0; ox < out_w; ox++) {
            int8_t *o = out + (oy * out_w + ox) * out_c;
            int32_t x0 = ox * p[TS_P_SW] - p[TS_P_PAD_L];
            ts_tap_range(x0, 1, p[TS_P_KW], in_w, &kx0, &kx1);
            n = (ky1 - ky0) * (kx1 - kx0);
            if (n == 0) return TS_ERR_ARG; /* a window entirely in padding: TFLite refuses it too */
            for (k0 = 0; k0 < g; k0 += TS_DW_CHUNK) {
                kn = g - k0 < TS_DW_CHUNK ? g - k0 : TS_DW_CHUNK;
                for (k = 0; k < kn; k++) s[k] = 0;
                for (ky = ky0; ky < ky1; ky++) {
                    for (kx = kx0; kx < kx1; kx++) {
                        const int8_t *x = in + ((y0 + oy * p[TS_P_SH] + ky) * in_w + x0 + kx) * in_c + c0 + k0;
                        for (k = 0; k < kn; k++) s[k] += x[k];
                    }
                }
                /* Round half away from zero; C division truncates toward zero, as in TFLite. */
                for (k = 0; k < kn; k++) {
                    int32_t v = s[k] > 0 ? (s[k] + n / 2) / n : (s[k] - n / 2) / n;
                    o[k0 + k] = ts_clamp8(v, p[TS_P_ACT_MIN], p[TS_P_ACT_MAX]);
                }
            }
        }
    }
    return TS_OK;
}
