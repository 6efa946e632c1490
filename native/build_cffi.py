"""cffi build of the C tile kernels into `tileswap.host._tskernels` (setup.py's cffi_modules).

The cdef below is the public part of native/ts_kernels.h; keep the two in step."""
import os

from cffi import FFI

_SOURCES = ["ts_spatial.c", "ts_conv.c", "ts_conv_ref.c", "ts_dwconv.c", "ts_dwconv_ref.c", "ts_pool.c", "ts_fc.c",
            "ts_fc_ref.c", "ts_elementwise.c", "ts_softmax.c", "ts_acc.c"]

ffibuilder = FFI()
ffibuilder.cdef("""
typedef enum { TS_OK = 0, TS_ERR_ARG = 1 } ts_status;
int32_t ts_mbqm(int32_t x, int32_t mult, int32_t shift);
int32_t ts_mbqm_single(int32_t x, int32_t mult, int32_t shift);
ts_status ts_conv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                     int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_conv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t g,
                         int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_dwconv_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                       int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_dwconv_s8_ref(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                           int32_t in_h, const int8_t *in, const int8_t *wts, int8_t *out);
ts_status ts_maxpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out);
ts_status ts_avgpool_s8(const int32_t *p, int32_t y0, int32_t oh, int32_t c0, int32_t g,
                        int32_t in_h, const int8_t *in, int8_t *out);
ts_status ts_fc_s8(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                   int8_t *out);
ts_status ts_fc_s8_ref(const int32_t *p, int32_t rows, int32_t g, const int8_t *in, const int8_t *wts,
                       int8_t *out);
ts_status ts_add_s8(const int32_t *p, int32_t n, const int8_t *a, const int8_t *b, int8_t *out);
ts_status ts_requant_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out);
ts_status ts_leaky_relu_s8(const int32_t *p, int32_t n, const int8_t *in, int8_t *out);
ts_status ts_mean_acc_s8(int32_t npix, int32_t c, const int8_t *in, int32_t *acc);
ts_status ts_mean_out_s8(const int32_t *p, const int32_t *acc, int8_t *out);
ts_status ts_softmax_s8(const int32_t *p, int32_t rows, const int8_t *in, int8_t *out);
ts_status ts_conv_acc_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, int32_t first,
                         const int8_t *in, const int8_t *w, int32_t *acc);
ts_status ts_acc_out_s8(const int32_t *p, int32_t npix, int32_t q, int32_t ch, const int32_t *acc,
                        const int8_t *wts, int8_t *out);
""")
ffibuilder.set_source(
    "tileswap.host._tskernels",
    '#include "ts_kernels.h"\n',
    sources=[os.path.join("native", s) for s in _SOURCES],
    include_dirs=["native"],
    # No FP in the kernels, but keep the build strict and free of fast-math.
    extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-fno-fast-math"],
    # x86-64 with GCC: the fast kernels get an AVX2 clone beside the baseline one (ts_util.h: TS_HOT).
    define_macros=[("TS_X86_CLONES", "1")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
