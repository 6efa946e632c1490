/* tskernels: the C tile kernels (native/) as a MicroPython module, for firmware built with them as a user C
 * module (docs/native.md). The same API as tileswap.host.native.Kernels and device/kernels_viper.py
 * (docs/kernels.md), which device/app.py picks when the firmware has it:
 *
 *     import tskernels
 *     k = tskernels.Kernels()
 *     k.conv_s8(p, out, out_off, inp, in_off, in_h, y0, oh, wts, g)
 *
 * A thin binding: it checks once per call that every byte a kernel will touch lies inside the buffers given
 * (in 64-bit arithmetic, so no size wraps), copies the small int32 `p` vector to the stack (any alignment),
 * and lets C do the arithmetic. Kernels never allocate; the binding raises ValueError for a buffer too small
 * or arguments the kernel refuses, as the host binding does. */
#include <string.h>

#include "py/obj.h"
#include "py/runtime.h"

#include "ts_kernels.h"

#define P_MAX 16

static uint8_t *buf_at(mp_obj_t obj, mp_int_t off, int64_t need, int writable)
{
    mp_buffer_info_t bi;
    mp_get_buffer_raise(obj, &bi, writable ? MP_BUFFER_WRITE : MP_BUFFER_READ);
    if (off < 0 || need < 0 || (int64_t)off + need > (int64_t)bi.len) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: a buffer is too small for the tile"));
    }
    return (uint8_t *)bi.buf + off;
}

/* The int32 p vector (array('i') or any buffer of at least n words) into pv. */
static const int32_t *params(mp_obj_t obj, int32_t *pv, size_t n)
{
    mp_buffer_info_t bi;
    mp_get_buffer_raise(obj, &bi, MP_BUFFER_READ);
    if (bi.len < 4 * n) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: p is too short"));
    }
    memcpy(pv, bi.buf, 4 * n);
    return pv;
}

static mp_obj_t done(ts_status st)
{
    if (st != TS_OK) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: the kernel refused its arguments"));
    }
    return mp_const_none;
}

static mp_int_t arg(const mp_obj_t *args, size_t i) { return mp_obj_get_int(args[i]); }

/* Bytes the output of a spatial tile spans: oh rows of out_w pixels of out_c, the last pixel g wide. */
static int64_t spatial_out(const int32_t *p, mp_int_t oh, mp_int_t g)
{
    return ((int64_t)(oh - 1) * p[TS_P_OUT_W] + p[TS_P_OUT_W] - 1) * p[TS_P_OUT_C] + g;
}

static int64_t band(const int32_t *p, mp_int_t in_h) { return (int64_t)in_h * p[TS_P_IN_W] * p[TS_P_IN_C]; }

static int64_t payload(int64_t filter, mp_int_t g) { return ((filter + 3) & ~(int64_t)3) + 12 * (int64_t)g; }

/* conv_s8(p, out, out_off, inp, in_off, in_h, y0, oh, wts, g) */
static mp_obj_t k_conv_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_P_SPATIAL_LEN);
    mp_int_t in_h = arg(args, 6), oh = arg(args, 8), g = arg(args, 10);
    const uint8_t *w = buf_at(args[9], 0, payload((int64_t)g * p[TS_P_KH] * p[TS_P_KW] * p[TS_P_IN_C], g), 0);
    const uint8_t *in = buf_at(args[4], arg(args, 5), band(p, in_h), 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), spatial_out(p, oh, g), 1);
    return done(ts_conv_s8(p, arg(args, 7), oh, g, in_h, (const int8_t *)in, (const int8_t *)w, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_conv_s8_obj, 11, 11, k_conv_s8);

/* dwconv_s8(p, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g) */
static mp_obj_t k_dwconv_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_P_SPATIAL_LEN);
    mp_int_t in_h = arg(args, 6), oh = arg(args, 8), g = arg(args, 11);
    const uint8_t *w = buf_at(args[9], 0, payload((int64_t)g * p[TS_P_KH] * p[TS_P_KW], g), 0);
    const uint8_t *in = buf_at(args[4], arg(args, 5), band(p, in_h), 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), spatial_out(p, oh, g), 1);
    return done(ts_dwconv_s8(p, arg(args, 7), oh, arg(args, 10), g, in_h, (const int8_t *)in, (const int8_t *)w,
                             (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_dwconv_s8_obj, 12, 12, k_dwconv_s8);

/* maxpool_s8 / avgpool_s8(p, out, out_off, inp, in_off, in_h, y0, oh, c0, g) */
static mp_obj_t pool(const mp_obj_t *args, int avg)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_P_SPATIAL_LEN);
    mp_int_t in_h = arg(args, 6), oh = arg(args, 8), g = arg(args, 10);
    const uint8_t *in = buf_at(args[4], arg(args, 5), band(p, in_h), 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), spatial_out(p, oh, g), 1);
    return done((avg ? ts_avgpool_s8 : ts_maxpool_s8)(p, arg(args, 7), oh, arg(args, 9), g, in_h, (const int8_t *)in,
                                                     (int8_t *)out));
}
static mp_obj_t k_maxpool_s8(size_t n_args, const mp_obj_t *args) { return pool(args, 0); }
static mp_obj_t k_avgpool_s8(size_t n_args, const mp_obj_t *args) { return pool(args, 1); }
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_maxpool_s8_obj, 11, 11, k_maxpool_s8);
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_avgpool_s8_obj, 11, 11, k_avgpool_s8);

/* fc_s8(p, out, out_off, inp, in_off, rows, wts, g) */
static mp_obj_t k_fc_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_PF_LEN);
    mp_int_t rows = arg(args, 6), g = arg(args, 8);
    int64_t need = rows > 0 ? (int64_t)(rows - 1) * p[TS_PF_OUT_C] + g : 0;
    const uint8_t *w = buf_at(args[7], 0, payload((int64_t)g * p[TS_PF_N], g), 0);
    const uint8_t *in = buf_at(args[4], arg(args, 5), (int64_t)rows * p[TS_PF_N], 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), need, 1);
    return done(ts_fc_s8(p, rows, g, (const int8_t *)in, (const int8_t *)w, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_fc_s8_obj, 9, 9, k_fc_s8);

/* add_s8(p, out, out_off, a, a_off, b, b_off, n) */
static mp_obj_t k_add_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_PA_LEN);
    mp_int_t n = arg(args, 8);
    const uint8_t *a = buf_at(args[4], arg(args, 5), n, 0), *b = buf_at(args[6], arg(args, 7), n, 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), n, 1);
    return done(ts_add_s8(p, n, (const int8_t *)a, (const int8_t *)b, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_add_s8_obj, 9, 9, k_add_s8);

/* requant_s8 / leaky_relu_s8(p, out, out_off, inp, in_off, n) */
static mp_obj_t unary(const mp_obj_t *args, size_t plen,
                      ts_status (*fn)(const int32_t *, int32_t, const int8_t *, int8_t *))
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, plen);
    mp_int_t n = arg(args, 6);
    const uint8_t *in = buf_at(args[4], arg(args, 5), n, 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), n, 1);
    return done(fn(p, n, (const int8_t *)in, (int8_t *)out));
}
static mp_obj_t k_requant_s8(size_t n_args, const mp_obj_t *args) { return unary(args, TS_PR_LEN, ts_requant_s8); }
static mp_obj_t k_leaky_relu_s8(size_t n_args, const mp_obj_t *args)
{
    return unary(args, TS_PL_LEN, ts_leaky_relu_s8);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_requant_s8_obj, 7, 7, k_requant_s8);
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_leaky_relu_s8_obj, 7, 7, k_leaky_relu_s8);

/* mean_acc_s8(acc, inp, in_off, npix, c): acc is a 4-byte aligned bytearray of 4*c (int32 sums) */
static mp_obj_t k_mean_acc_s8(size_t n_args, const mp_obj_t *args)
{
    mp_int_t npix = arg(args, 4), c = arg(args, 5);
    uint8_t *acc = buf_at(args[1], 0, 4 * (int64_t)c, 1);
    const uint8_t *in = buf_at(args[2], arg(args, 3), (int64_t)npix * c, 0);
    if ((uintptr_t)acc & 3) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: acc must be 4-byte aligned"));
    }
    return done(ts_mean_acc_s8(npix, c, (const int8_t *)in, (int32_t *)(void *)acc));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_mean_acc_s8_obj, 6, 6, k_mean_acc_s8);

/* mean_out_s8(p, out, out_off, acc) */
static mp_obj_t k_mean_out_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_PM_LEN);
    const uint8_t *acc = buf_at(args[4], 0, 4 * (int64_t)p[TS_PM_C], 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), p[TS_PM_C], 1);
    if ((uintptr_t)acc & 3) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: acc must be 4-byte aligned"));
    }
    return done(ts_mean_out_s8(p, (const int32_t *)(const void *)acc, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_mean_out_s8_obj, 5, 5, k_mean_out_s8);

/* softmax_s8(p, out, out_off, inp, in_off, rows) */
static mp_obj_t k_softmax_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_PS_LEN);
    mp_int_t rows = arg(args, 6);
    const uint8_t *in = buf_at(args[4], arg(args, 5), (int64_t)rows * p[TS_PS_N], 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), (int64_t)rows * p[TS_PS_N], 1);
    return done(ts_softmax_s8(p, rows, (const int8_t *)in, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_softmax_s8_obj, 7, 7, k_softmax_s8);

/* conv_acc_s8(p, acc, inp, in_off, npix, wts, q, ch, first): acc a 4-byte aligned buffer of 4*npix*q */
static mp_obj_t k_conv_acc_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_P_SPATIAL_LEN);
    mp_int_t npix = arg(args, 5), q = arg(args, 7), ch = arg(args, 8);
    uint8_t *acc = buf_at(args[2], 0, 4 * (int64_t)npix * q, 1);
    const uint8_t *in = buf_at(args[3], arg(args, 4), (int64_t)npix * ch, 0);
    const uint8_t *w = buf_at(args[6], 0, (int64_t)q * ch, 0);
    if ((uintptr_t)acc & 3) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: acc must be 4-byte aligned"));
    }
    return done(ts_conv_acc_s8(p, npix, q, ch, mp_obj_is_true(args[9]), (const int8_t *)in, (const int8_t *)w,
                               (int32_t *)(void *)acc));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_conv_acc_s8_obj, 10, 10, k_conv_acc_s8);

/* acc_out_s8(p, out, out_off, acc, npix, wts, q, ch): out may be acc's own memory (docs/kernels.md) */
static mp_obj_t k_acc_out_s8(size_t n_args, const mp_obj_t *args)
{
    int32_t pv[P_MAX];
    const int32_t *p = params(args[1], pv, TS_P_SPATIAL_LEN);
    mp_int_t npix = arg(args, 5), q = arg(args, 7), ch = arg(args, 8);
    const uint8_t *acc = buf_at(args[4], 0, 4 * (int64_t)npix * q, 0);
    const uint8_t *w = buf_at(args[6], 0, payload((int64_t)q * ch, q), 0);
    uint8_t *out = buf_at(args[2], arg(args, 3), npix > 0 ? (int64_t)(npix - 1) * p[TS_P_OUT_C] + q : 0, 1);
    if ((uintptr_t)acc & 3) {
        mp_raise_ValueError(MP_ERROR_TEXT("tskernels: acc must be 4-byte aligned"));
    }
    return done(ts_acc_out_s8(p, npix, q, ch, (const int32_t *)(const void *)acc, (const int8_t *)w, (int8_t *)out));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(k_acc_out_s8_obj, 9, 9, k_acc_out_s8);

static mp_obj_t kernels_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args)
{
    mp_arg_check_num(n_args, n_kw, 0, 0, false);
    return MP_OBJ_FROM_PTR(mp_obj_malloc(mp_obj_base_t, type));
}

static const mp_rom_map_elem_t kernels_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_conv_s8), MP_ROM_PTR(&k_conv_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_dwconv_s8), MP_ROM_PTR(&k_dwconv_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_maxpool_s8), MP_ROM_PTR(&k_maxpool_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_avgpool_s8), MP_ROM_PTR(&k_avgpool_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_fc_s8), MP_ROM_PTR(&k_fc_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_add_s8), MP_ROM_PTR(&k_add_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_requant_s8), MP_ROM_PTR(&k_requant_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_leaky_relu_s8), MP_ROM_PTR(&k_leaky_relu_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_mean_acc_s8), MP_ROM_PTR(&k_mean_acc_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_mean_out_s8), MP_ROM_PTR(&k_mean_out_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_softmax_s8), MP_ROM_PTR(&k_softmax_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_conv_acc_s8), MP_ROM_PTR(&k_conv_acc_s8_obj) },
    { MP_ROM_QSTR(MP_QSTR_acc_out_s8), MP_ROM_PTR(&k_acc_out_s8_obj) },
};
static MP_DEFINE_CONST_DICT(kernels_locals, kernels_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    tskernels_type_Kernels,
    MP_QSTR_Kernels,
    MP_TYPE_FLAG_NONE,
    make_new, kernels_make_new,
    locals_dict, &kernels_locals
    );

static const mp_rom_map_elem_t tskernels_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_tskernels) },
    { MP_ROM_QSTR(MP_QSTR_Kernels), MP_ROM_PTR(&tskernels_type_Kernels) },
};
static MP_DEFINE_CONST_DICT(tskernels_globals, tskernels_globals_table);

const mp_obj_module_t tskernels_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&tskernels_globals,
};

MP_REGISTER_MODULE(MP_QSTR_tskernels, tskernels_user_cmodule);
