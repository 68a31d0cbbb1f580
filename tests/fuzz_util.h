/*
 * fuzz_util.h — what the libFuzzer targets share: the fuzzer's bytes as a
 * file the readers can open (in /dev/shm when it exists, one name per
 * process, rewritten each run), a context with a memory budget well below
 * libFuzzer's RSS limit, and a reader of fuzzed numbers.
 */
#ifndef NM_FUZZ_UTIL_H
#define NM_FUZZ_UTIL_H

#include "netmoments.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_MEM ((size_t)512 << 20) /* the contexts' budget: allocations beyond it are refused, not attempted */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to this process's file `name` and returns its path (static). */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[2][256];
    static int k;
    char *p = path[k++ % 2];
    snprintf(p, sizeof path[0], "%s/nm-fuzz-%ld-%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid(), name);
    FILE *f = fopen(p, "wb");
    if (f) {
        if (size) fwrite(data, 1, size, f);
        fclose(f);
    }
    return p;
}

static inline nm_ctx *fuzz_ctx(void)
{
    nm_ctx *ctx = nm_ctx_create();
    if (ctx) nm_ctx_set_mem_limit(ctx, FUZZ_MEM);
    return ctx;
}

/* Bytes read off the fuzzer's input in turn; zeros once it runs out. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint64_t fuzz_u64(fuzz_in *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | (in->n ? (in->n--, *in->p++) : 0);
    return v;
}

static inline double fuzz_double(fuzz_in *in)
{
    uint64_t bits = fuzz_u64(in, 8);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

#endif
