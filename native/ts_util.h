/* Internal helpers shared by the kernel files (not part of the public API). */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <string.h>

#include "ts_kernels.h"

/* Channels a depthwise or pool tile accumulates at once (stack scratch: 4 bytes each). */
#define TS_DW_CHUNK 64

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

ts_status ts_spatial_check(const int32_t *p, int32_t oh, int32_t in_h, const void *in, const void *out);
void ts_tap_range(int32_t start, int32_t dil, int32_t k, int32_t size, int32_t *k0, int32_t *k1);

#endif /* TS_UTIL_H */
