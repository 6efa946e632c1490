/* Internal helpers shared by the kernel files (not part of the public API). */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <string.h>

#include "ts_kernels.h"

/* Channels a reference depthwise or pool tile accumulates at once (stack scratch: 4 bytes each). */
#define TS_DW_CHUNK 64

/* Longest filter (kh * kw * in_c values) ts_conv_s8 gathers at once; longer ones are gathered in pieces of
 * this many. Stack: 5 bytes each (two int16 columns and an int8 staging row). Must be a multiple of 4. */
#ifndef TS_COL_MAX
#if defined(__arm__) || defined(__thumb__)
#define TS_COL_MAX 256
#else
#define TS_COL_MAX 2048
#endif
#endif

/* Output channels ts_conv_s8 accumulates at once when a filter is longer than TS_COL_MAX (stack: 8 bytes
 * each). Must be even. */
#ifndef TS_CONV_GC
#define TS_CONV_GC 64
#endif

/* The DSP extension (SMLAD and friends): Cortex-M4, M7, M33, M55. TS_NO_DSP forces the plain C. */
#if defined(__ARM_FEATURE_DSP) && !defined(TS_NO_DSP)
#define TS_DSP 1
#else
#define TS_DSP 0
#endif

/* Scratch read with LDRD on Cortex-M must be word aligned (GCC and Clang; the DSP path needs them anyway). */
#if defined(__GNUC__)
#define TS_ALIGN4 __attribute__((aligned(4)))
#else
#define TS_ALIGN4
#endif
/* Cortex-M: a loop that needs every register is kept out of line (GCC spills less), and helpers called from
 * several places stay functions (smaller code). The host inlines both into each (AVX2 / baseline) clone of
 * their caller, so that the clone's vector loops are the ones that run. */
#if defined(__GNUC__) && (defined(__arm__) || defined(__thumb__))
#define TS_NOINLINE __attribute__((noinline))
#define TS_HOST_INLINE
#else
#define TS_NOINLINE inline
#define TS_HOST_INLINE inline
#endif

static inline int32_t ts_align4(int32_t n) { return (n + 3) & ~3; }

/* The i-th little-endian int32 after `base`; memcpy because payloads need not be 4-byte aligned (it
 * compiles to one load on Cortex-M4 and x86). */
static inline int32_t ts_ld32(const uint8_t *base, int32_t i)
{
    int32_t v;
    memcpy(&v, base + 4 * i, 4);
    return v;
}

static inline int8_t ts_clamp8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* Requantize one convolution accumulator of channel k: MBQM with the payload's mult/shift, + out_zp,
 * clamped to the fused activation range. `tail` is the payload's int32 part, g channels. */
static inline int8_t ts_requant_ch(int32_t acc, const uint8_t *tail, int32_t g, int32_t k, const int32_t *p)
{
    int32_t v = ts_mbqm(acc, ts_ld32(tail, g + k), ts_ld32(tail, 2 * g + k)) + p[TS_P_OUT_ZP];
    return ts_clamp8(v, p[TS_P_ACT_MIN], p[TS_P_ACT_MAX]);
}

/* Host x86-64 builds (native/build_cffi.py defines TS_X86_CLONES): the fast kernels are compiled twice, for
 * AVX2 and for the x86-64 baseline, and the loader picks one for the CPU it runs on (GCC target_clones). */
#if defined(TS_X86_CLONES) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TS_HOT __attribute__((target_clones("avx2", "default")))
#else
#define TS_HOT
#endif

/* Requantize n accumulators of channels k0 .. k0 + n - 1 into o[0 .. n) (one pixel), and with acc1 / o1 a
 * second pixel's (acc1 may be NULL): o[j] = clamp(MBQM(acc[j], mult, shift) + out_zp, act_min, act_max),
 * mult/shift from the payload tail of g channels; `simple` = ts_requant_simple(tail, g) (ts_spatial.c).
 * The outputs overlap none of the inputs. */
void ts_requant_row(const int32_t *restrict acc, const int32_t *restrict acc1, int32_t n,
                    const uint8_t *restrict tail, int32_t g, int32_t k0, const int32_t *restrict p, int8_t *restrict o,
                    int8_t *restrict o1, int32_t simple);
int32_t ts_requant_simple(const uint8_t *tail, int32_t g);
ts_status ts_spatial_check(const int32_t *p, int32_t oh, int32_t in_h, const void *in, const void *out);
void ts_tap_range(int32_t start, int32_t dil, int32_t k, int32_t size, int32_t *k0, int32_t *k1);
ts_status ts_fc_check(const int32_t *p, int32_t g, const int8_t *wts);

#endif /* TS_UTIL_H */
