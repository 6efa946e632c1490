/* SOFTMAX, int8 in and out: TFLite's reference path (reference_ops::Softmax on gemmlowp fixed point),
 * which BUILTIN_REF runs for int8 (verified against the interpreter; the optimized resolver's float lookup
 * table rounds differently now and then).
 *
 * Per row: d = x - max(row); terms with d < diff_min are 0. Otherwise d * beta * in_scale becomes a
 * fixed-point number with 5 integer bits (MultiplyByQuantizedMultiplierGreaterThanOne), exp() of it a
 * Q0.31 number; the sum of exps is kept with 12 integer bits, its reciprocal is found by Newton-Raphson,
 * and out = exp * reciprocal / 2**(31 - 8 + bits over one) - 128. */
#include "ts_kernels.h"
#include "ts_util.h"

/* Fixed-point helpers named after gemmlowp's. Raw int32 values; "Qn" = n integer bits. */
static int32_t sat_lshift(int32_t x, int32_t e) /* SaturatingRoundingMultiplyByPOT<e>, e > 0 */
{
    int32_t thr = (int32_t)((1u << (31 - e)) - 1u);
    if (x > thr) return INT32_MAX;
    if (x < -thr) return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

static int32_t wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/* exp(a) for a in [-1/4, 0), Q0 in and out: Taylor series around -1/8. */
static int32_t exp_quarter(int32_t a)
{
    const int32_t exp_m1_8 = 1895147668, one_third = 715827883;
    int32_t x = wrap_add(a, 1 << 28), x2, x3, x4, t;
    x2 = ts_srdhm(x, x);
    x3 = ts_srdhm(x2, x);
    x4 = ts_srdhm(x2, x2);
    t = ts_rdbpot(wrap_add(ts_srdhm(wrap_add(ts_rdbpot(x4, 2), x3), one_third), x2), 1);
    return wrap_add(exp_m1_8, ts_srdhm(exp_m1_8, wrap_add(x, t)));
}

/* gemmlowp exp_on_negative_values: a is Q5 (a <= 0), result Q0. */
static int32_t exp_neg_q5(int32_t a)
{
    static const int32_t mul[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24; /* 1/4 in Q5 */
    int32_t r = wrap_add(a & (quarter - 1), -quarter);
    int32_t rem = wrap_add(r, -a), i, res;
    res = exp_quarter(sat_lshift(r, 5));
    /* exp(-2**(i-2)) for each set bit of the remainder (bit 24 + i of the raw value). */
    for (i = 0; i < 7; i++)
        if (rem & (1 << (24 + i))) res = ts_srdhm(res, mul[i]);
    return a == 0 ? INT32_MAX : res;
}

/* 1 / (1 + x) for x in [0, 1), Q0 in and out (gemmlowp one_over_one_plus_x_for_x_in_0_1). */
static int32_t one_over_one_plus_x(int32_t a)
{
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum */
    int32_t x = wrap_add(1515870810, ts_srdhm(half_den, -1010580540)); /* 48/17 - 32/17 * d, Q2 */
    int i;
    for (i = 0; i < 3; i++) {
        int32_t one_minus = wrap_add(1 << 29, -ts_srdhm(half_den, x));
        x = wrap_add(x, sat_lshift(ts_srdhm(x, one_minus), 2));
    }
    return sat_lshift(x, 1);
}

static int32_t clz32(uint32_t x)
{
    int32_t n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; n++; }
    return n;
}

static int32_t scaled_diff(int32_t d, const int32_t *p)
{
    return ts_mbqm(d, p[TS_PS_INPUT_MULT], p[TS_PS_INPUT_LSHIFT]);
}

ts_status ts_softmax_s8(const int32_t *p, int32_t rows, const int8_t *in, int8_t *out)
{
    int32_t n, r, i, diff_min;
    if (!p || !in || !out || rows < 0 || p[TS_PS_N] < 1) return TS_ERR_ARG;
    if (p[TS_PS_INPUT_LSHIFT] < 0 || p[TS_PS_INPUT_LSHIFT] > 31) return TS_ERR_ARG;
    if (p[TS_PS_OUT_ZP] != -128) return TS_ERR_ARG; /* TFLite adds INT8_MIN, whatever the tensor says */
    n = p[TS_PS_N];
    diff_min = p[TS_PS_DIFF_MIN];
    for (r = 0; r < rows; r++) {
        const int8_t *x = in + r * n;
        int8_t *o = out + r * n;
        int32_t mx = -128, sum = 0, headroom, over_one, recip;
        for (i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
        for (i = 0; i < n; i++) {
            int32_t d = x[i] - mx;
            if (d >= diff_min) sum = wrap_add(sum, ts_rdbpot(exp_neg_q5(scaled_diff(d, p)), 12));
        }
        headroom = clz32((uint32_t)sum);
        over_one = 12 - headroom;
        recip = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        for (i = 0; i < n; i++) {
            int32_t d = x[i] - mx, v = -128;
            if (d >= diff_min) {
                v = ts_rdbpot(ts_srdhm(recip, exp_neg_q5(scaled_diff(d, p))), over_one + 31 - 8);
                v += p[TS_PS_OUT_ZP];
            }
            o[i] = ts_clamp8(v, -128, 127);
        }
    }
    return TS_OK;
}
