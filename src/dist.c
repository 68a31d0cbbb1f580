/*
 * dist.c — work shared among processes (nm_dist, set by nm_ctx_set_dist):
 * items assigned cyclically (item i to the process with i mod size ==
 * rank), and the one exchange every collective call goes through, which
 * carries each process's status and message beside its data so that a
 * failure on one process fails the call on all of them with its message.
 * Without a distribution every function here is the one-process identity.
 */
#include "internal.h"

#include <string.h>

/* What precedes each process's data in an exchange: its status and message. */
typedef struct {
    int32_t status, pad;
    char message[504];
} dist_header;

nm_status nm_ctx_set_dist(nm_ctx *ctx, const nm_dist *dist)
{
    if (!ctx) return NM_ERR_ARG;
    memset(&ctx->dist, 0, sizeof ctx->dist);
    if (!dist || dist->size == 1) return NM_OK;
    if (dist->size < 1 || dist->rank < 0 || dist->rank >= dist->size || !dist->allgather)
        return nm_fail(ctx, NM_ERR_ARG, "a distribution needs size >= 1, 0 <= rank < size and an allgather (got rank %d of %d)", dist->rank,
                       dist->size);
    ctx->dist = *dist;
    return NM_OK;
}

int nm_dist_rank(const nm_ctx *ctx)
{
    return ctx && ctx->dist.size > 1 ? ctx->dist.rank : 0;
}

int nm_dist_size(const nm_ctx *ctx)
{
    return ctx && ctx->dist.size > 1 ? ctx->dist.size : 1;
}

int64_t nm_dist_items(const nm_ctx *ctx, int64_t count)
{
    int64_t r = nm_dist_rank(ctx), P = nm_dist_size(ctx);
    return count > r ? (count - r + P - 1) / P : 0;
}

int64_t nm_dist_item(const nm_ctx *ctx, int64_t j)
{
    return nm_dist_rank(ctx) + j * nm_dist_size(ctx);
}

nm_status nm_dist_exchange(nm_ctx *ctx, nm_status st, const void *mine, size_t bytes, void *all)
{
    int P = nm_dist_size(ctx);
    if (P == 1) {
        if (st == NM_OK && bytes && all != mine) memcpy(all, mine, bytes);
        return st;
    }
    size_t per = sizeof(dist_header) + bytes;
    unsigned char *send = nm_alloc_zero(ctx, per, 1), *recv = send ? nm_alloc(ctx, per, (size_t)P) : NULL;
    dist_header h = {(int32_t)st, 0, ""};
    if (st != NM_OK) snprintf(h.message, sizeof h.message, "%s", nm_ctx_message(ctx));
    if (send && st == NM_OK && bytes) memcpy(send + sizeof h, mine, bytes);
    if (!recv) { /* the others will wait for this process: the caller's failure ends the run (the CLI aborts it) */
        nm_free(ctx, send);
        return nm_fail(ctx, NM_ERR_NOMEM, "out of memory for the exchange between processes (%zu bytes from each of %d)", per, P);
    }
    int lost = 0;
    memcpy(send, &h, sizeof h);
    nm_status out = st;
    if (ctx->dist.allgather(ctx->dist.user, send, recv, per) != 0) {
        out = nm_fail(ctx, NM_ERR_IO, "the exchange between the %d processes failed", P);
        lost = 1;
    }
    for (int q = 0; !lost && q < P; q++) {
        dist_header hq;
        memcpy(&hq, recv + (size_t)q * per, sizeof hq);
        if (hq.status == NM_OK) continue;
        if (out == NM_OK) out = nm_fail(ctx, (nm_status)hq.status, "rank %d: %s", q, hq.message);
    }
    for (int q = 0; out == NM_OK && q < P; q++)
        if (bytes) memcpy((unsigned char *)all + (size_t)q * bytes, recv + (size_t)q * per + sizeof h, bytes);
    nm_free(ctx, send), nm_free(ctx, recv);
    return out;
}

nm_status nm_dist_gather_items(nm_ctx *ctx, nm_status st, int64_t count, const nm_dist_slab *slab, int nslab)
{
    int P = nm_dist_size(ctx);
    if (P == 1) return st;
    size_t rec = 0;
    for (int s = 0; s < nslab; s++) rec += slab[s].base ? slab[s].bytes : 0;
    int64_t most = (count + P - 1) / P, mine = nm_dist_items(ctx, count);
    size_t bytes = rec * (size_t)most;
    unsigned char *send = nm_alloc_zero(ctx, bytes ? bytes : 1, 1), *all = send ? nm_alloc(ctx, bytes ? bytes : 1, (size_t)P) : NULL;
    if (!all) {
        nm_free(ctx, send);
        return nm_fail(ctx, NM_ERR_NOMEM, "out of memory gathering the results of %lld items from %d processes", (long long)count, P);
    }
    unsigned char *w = send;
    for (int64_t j = 0; st == NM_OK && j < mine; j++)
        for (int s = 0; s < nslab; s++)
            if (slab[s].base) {
                memcpy(w, (unsigned char *)slab[s].base + (size_t)nm_dist_item(ctx, j) * slab[s].bytes, slab[s].bytes);
                w += slab[s].bytes;
            }
    st = nm_dist_exchange(ctx, st, send, bytes, all);
    for (int q = 0; st == NM_OK && q < P; q++) {
        const unsigned char *r = all + (size_t)q * bytes;
        for (int64_t item = q; item < count; item += P)
            for (int s = 0; s < nslab; s++)
                if (slab[s].base) {
                    memcpy((unsigned char *)slab[s].base + (size_t)item * slab[s].bytes, r, slab[s].bytes);
                    r += slab[s].bytes;
                }
    }
    nm_free(ctx, send), nm_free(ctx, all);
    return st;
}
