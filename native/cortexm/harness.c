/* Test-vector harness for the kernels on an emulated Cortex-M4 (QEMU mps2-an386, semihosting).
 *
 *   harness check FILE        run every record of FILE, compare bit for bit, exit 1 on any mismatch
 *   harness one FILE INDEX    run record INDEX only (host/cortexm.py counts its instructions)
 *
 * FILE (written by host/cortexm.py: pack_vectors) is "TSV1", int32 count, then per record 16 int32
 * (op, expected status, six op arguments, p words, input bytes, second input bytes, output bytes, input
 * offset, second input offset, output offset, case id) and five blobs, each padded to 4 bytes: p, input,
 * second input (weights, ADD's b, MEAN's sums), the output buffer before the call and after it. A record
 * passes when the kernel returns the expected status and, if that is TS_OK, leaves the whole output buffer
 * (bytes outside the tile included) exactly as expected. Offsets place the data at any byte alignment. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_kernels.h"

enum {
    OP_CONV = 1, OP_DWCONV = 2, OP_FC = 3, OP_ADD = 4, OP_MAXPOOL = 5, OP_AVGPOOL = 6, OP_MEAN_ACC = 7,
    OP_MEAN_OUT = 8, OP_SOFTMAX = 10, OP_REQUANT = 11, OP_LEAKY_RELU = 12, OP_CONV_ACC = 13, OP_ACC_OUT = 14,
    OP_REF = 100 /* + op: naive kernel */
};

#define CAP (512 * 1024)
static int32_t p[1024];
static uint32_t in_w[CAP / 4], in2_w[CAP / 4], out_w[CAP / 4], want_w[CAP / 4];

static int read_all(int fd, void *dst, int32_t n)
{
    char *d = dst;
    while (n > 0) {
        int r = read(fd, d, n);
        if (r <= 0) return -1;
        d += r;
        n -= r;
    }
    return 0;
}

static int read_blob(int fd, void *dst, int32_t n, int32_t cap)
{
    int32_t padded = (n + 3) & ~3;
    if (n < 0 || padded > cap) return -1;
    return read_all(fd, dst, padded);
}

static ts_status run(const int32_t *h)
{
    const int32_t *a = h + 2;
    const int8_t *in = (const int8_t *)in_w + h[12], *in2 = (const int8_t *)in2_w + h[13];
    int8_t *out = (int8_t *)out_w + h[14];
    int ref = h[0] > OP_REF;
    switch (h[0] % OP_REF) {
    case OP_CONV:
        return (ref ? ts_conv_s8_ref : ts_conv_s8)(p, a[0], a[1], a[2], a[3], in, in2, out);
    case OP_DWCONV:
        return (ref ? ts_dwconv_s8_ref : ts_dwconv_s8)(p, a[0], a[1], a[2], a[3], a[4], in, in2, out);
    case OP_FC:
        return (ref ? ts_fc_s8_ref : ts_fc_s8)(p, a[0], a[1], in, in2, out);
    case OP_ADD:
        return ts_add_s8(p, a[0], in, in2, out);
    case OP_MAXPOOL:
        return ts_maxpool_s8(p, a[0], a[1], a[2], a[3], a[4], in, out);
    case OP_AVGPOOL:
        return ts_avgpool_s8(p, a[0], a[1], a[2], a[3], a[4], in, out);
    case OP_MEAN_ACC:
        return ts_mean_acc_s8(a[0], a[1], in, (int32_t *)(void *)out);
    case OP_MEAN_OUT:
        return ts_mean_out_s8(p, (const int32_t *)(const void *)in2, out);
    case OP_SOFTMAX:
        return ts_softmax_s8(p, a[0], in, out);
    case OP_REQUANT:
        return ts_requant_s8(p, a[0], in, out);
    case OP_LEAKY_RELU:
        return ts_leaky_relu_s8(p, a[0], in, out);
    case OP_CONV_ACC:       /* the int32 sums are the output buffer (offset 0: aligned) */
        return ts_conv_acc_s8(p, a[0], a[1], a[2], a[3], in, in2, (int32_t *)(void *)out);
    case OP_ACC_OUT:        /* the int32 sums are the input (offset 0: aligned) */
        return ts_acc_out_s8(p, a[0], a[1], a[2], (const int32_t *)(const void *)in, in2, out);
    default:
        return (ts_status)99;
    }
}

int main(int argc, char **argv)
{
    int32_t hdr[2], h[16], i, count, failed = 0, ran = 0, only = -1;
    int fd;
    if (argc < 3 || (strcmp(argv[1], "check") && strcmp(argv[1], "one"))) {
        printf("usage: harness check FILE | harness one FILE INDEX\n");
        return 2;
    }
    if (!strcmp(argv[1], "one")) only = argc > 3 ? atoi(argv[3]) : 0;
    fd = open(argv[2], O_RDONLY);
    if (fd < 0 || read_all(fd, hdr, 8) || memcmp(hdr, "TSV1", 4)) {
        printf("harness: %s is not a test-vector file (expected TSV1)\n", argv[2]);
        return 2;
    }
    count = hdr[1];
    for (i = 0; i < count; i++) {
        ts_status st;
        int32_t k, n;
        const uint8_t *got = (const uint8_t *)out_w, *want = (const uint8_t *)want_w;
        if (read_all(fd, h, sizeof h) || h[8] < 0 || h[8] > 1024 || read_blob(fd, p, 4 * h[8], sizeof p) ||
            read_blob(fd, in_w, h[9], CAP) || read_blob(fd, in2_w, h[10], CAP) ||
            read_blob(fd, out_w, h[11], CAP) || read_blob(fd, want_w, h[11], CAP)) {
            printf("harness: record %ld is truncated or too large\n", (long)i);
            return 2;
        }
        if (only >= 0 && i != only) continue;
        st = run(h);
        ran++;
        if ((int32_t)st != h[1]) {
            printf("FAIL case %ld (op %ld): status %d, expected %ld\n", (long)h[15], (long)h[0], (int)st, (long)h[1]);
            failed++;
            continue;
        }
        if (st != TS_OK) continue;
        n = h[11];
        for (k = 0; k < n && got[k] == want[k]; k++) {}
        if (k < n) {
            int32_t bad = 0, j;
            for (j = k; j < n; j++) bad += got[j] != want[j];
            printf("FAIL case %ld (op %ld): %ld of %ld output bytes differ; first at byte %ld: got %d, expected %d\n",
                   (long)h[15], (long)h[0], (long)bad, (long)n, (long)k, (int)(int8_t)got[k], (int)(int8_t)want[k]);
            failed++;
        }
    }
    close(fd);
    printf("cortexm: %ld records run, %ld failed\n", (long)ran, (long)failed);
    return failed ? 1 : 0;
}
