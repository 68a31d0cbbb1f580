/*
 * shape.c — shape arithmetic for the graph and the op files (net.h):
 * element counts, broadcasting (numpy rules), the strided visitor the
 * broadcasting ops run on, and the window geometry of Conv and pooling
 * (auto_pad, ceil_mode) that their shape inference resolves.
 */
#include "../net.h"

#include <stdio.h>

int64_t nm_shape_numel(const nm_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

int64_t nm_shape_tail(const nm_shape *s, int from)
{
    int64_t n = 1;
    for (int i = from; i < s->ndim; i++) n *= s->d[i];
    return n;
}

int nm_shape_equal(const nm_shape *a, const nm_shape *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

const char *nm_shape_str(const nm_shape *s, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < s->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
    return buf;
}

nm_status nm_broadcast_shape(nm_ctx *ctx, const nm_node *nd, const nm_shape *a, const nm_shape *b, nm_shape *out)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    out->ndim = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (%s): shapes %s and %s do not broadcast", nd->name,
                           nm_op_name(nd->op), nm_shape_str(a, sa, sizeof sa), nm_shape_str(b, sb, sizeof sb));
        }
        out->d[i] = da == 1 ? db : da;
    }
    return NM_OK;
}

void nm_broadcast_strides(const nm_shape *in, const nm_shape *out, int64_t *strides)
{
    int64_t s = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        int k = i - (out->ndim - in->ndim);
        if (k < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = in->d[k] == 1 ? 0 : s;
        s *= in->d[k];
    }
}

/* Visits every element of shape o with the matching offset under strides
 * st: y[i] = (acc ? y[i] : 0) + src[off] (gather), or dst[off] += y[i]
 * (scatter, reduce = 1). */
void nm_strided(const nm_shape *o, const int64_t *st, float *y, float *other, int reduce, int acc)
{
    int r = o->ndim;
    int64_t n = nm_shape_numel(o);
    if (n == 0) return;
    int64_t inner = r ? o->d[r - 1] : 1, sin = r ? st[r - 1] : 0;
    int64_t idx[NM_MAX_DIMS] = {0}, off = 0;
    for (int64_t base = 0; base < n; base += inner) {
        float *yr = y + base;
        if (reduce) {
            for (int64_t j = 0; j < inner; j++) other[off + j * sin] += yr[j];
        } else if (acc) {
            for (int64_t j = 0; j < inner; j++) yr[j] += other[off + j * sin];
        } else {
            for (int64_t j = 0; j < inner; j++) yr[j] = other[off + j * sin];
        }
        for (int k = r - 2; k >= 0; k--) { /* odometer over the outer axes */
            idx[k]++;
            off += st[k];
            if (idx[k] < o->d[k]) break;
            off -= st[k] * o->d[k];
            idx[k] = 0;
        }
    }
}

int nm_const_spares_batch(const nm_value *c, int r)
{
    return c->shape.ndim < r || c->shape.d[0] == 1;
}

nm_status nm_window_resolve(nm_ctx *ctx, const nm_node *nd, nm_attrs *a, int64_t H, int64_t W, int64_t *OH, int64_t *OW)
{
    int64_t in[2] = {H, W}, out[2];
    for (int k = 0; k < 2; k++) {
        if (a->stride[k] < 1 || a->dil[k] < 1 || a->kernel[k] < 1)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): kernel, strides and dilations must be positive", nd->name,
                           nm_op_name(nd->op));
        int64_t ek = (a->kernel[k] - 1) * a->dil[k] + 1, s = a->stride[k];
        if (a->auto_pad == NM_AUTOPAD_VALID) {
            a->pad[k] = a->pad[k + 2] = 0;
        } else if (a->auto_pad == NM_AUTOPAD_SAME_UPPER || a->auto_pad == NM_AUTOPAD_SAME_LOWER) {
            int64_t o = (in[k] + s - 1) / s, total = (o - 1) * s + ek - in[k];
            if (total < 0) total = 0;
            a->pad[k] = a->auto_pad == NM_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            a->pad[k + 2] = total - a->pad[k];
        }
        if (a->pad[k] < 0 || a->pad[k + 2] < 0)
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): negative pads", nd->name, nm_op_name(nd->op));
        int64_t span = in[k] + a->pad[k] + a->pad[k + 2] - ek;
        if (span < 0)
            return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (%s): the window (%lld) is larger than the padded input (%lld)",
                           nd->name, nm_op_name(nd->op), (long long)ek, (long long)(in[k] + a->pad[k] + a->pad[k + 2]));
        out[k] = (a->ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (a->ceil_mode && (out[k] - 1) * s >= in[k] + a->pad[k]) out[k]--; /* no window may start in the end padding */
    }
    a->auto_pad = NM_AUTOPAD_NOTSET;
    *OH = out[0];
    *OW = out[1];
    return NM_OK;
}

