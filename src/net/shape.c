/*
 * shape.c — shape arithmetic for the graph and the op files (net.h):
 * element counts, broadcasting (numpy rules), the strided visitor the
 * broadcasting ops run on, and the window geometry of Conv and pooling
 * (auto_pad, ceil_mode) that their shape inference resolves.
 */
#include "../net.h"

#include <stdio.h>
#include <string.h>

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

/* One axis of a window: the padded extent and the output size, with every
 * step checked against overflow (the values come from the file). */
static nm_status window_axis(nm_ctx *ctx, const nm_node *nd, nm_attrs *a, int k, int64_t in, int64_t *out)
{
    const char *op = nm_op_name(nd->op);
    int64_t ek, s = a->stride[k], o, total, padded, span;
    if (a->stride[k] < 1 || a->dil[k] < 1 || a->kernel[k] < 1)
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): kernel, strides and dilations must be positive", nd->name, op);
    if (!nm_mul_ok(a->kernel[k] - 1, a->dil[k], &ek) || !nm_add_ok(ek, 1, &ek))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): kernel %lld with dilation %lld overflows", nd->name, op,
                       (long long)a->kernel[k], (long long)a->dil[k]);
    if (a->auto_pad == NM_AUTOPAD_VALID) {
        a->pad[k] = a->pad[k + 2] = 0;
    } else if (a->auto_pad == NM_AUTOPAD_SAME_UPPER || a->auto_pad == NM_AUTOPAD_SAME_LOWER) {
        o = in / s + (in % s != 0);
        if (!nm_mul_ok(o - 1, s, &total) || !nm_add_ok(total, ek - in, &total))
            return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): the SAME padding overflows", nd->name, op);
        if (total < 0) total = 0;
        a->pad[k] = a->auto_pad == NM_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
        a->pad[k + 2] = total - a->pad[k];
    }
    if (a->pad[k] < 0 || a->pad[k + 2] < 0) return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): negative pads", nd->name, op);
    if (!nm_add_ok(in, a->pad[k], &padded) || !nm_add_ok(padded, a->pad[k + 2], &padded))
        return nm_fail(ctx, NM_ERR_FORMAT, "node '%s' (%s): pads %lld and %lld overflow", nd->name, op, (long long)a->pad[k],
                       (long long)a->pad[k + 2]);
    span = padded - ek;
    if (span < 0)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (%s): the window (%lld) is larger than the padded input (%lld)", nd->name, op,
                       (long long)ek, (long long)padded);
    *out = (a->ceil_mode ? span / s + (span % s != 0) : span / s) + 1;
    int64_t start;
    if (a->ceil_mode && (!nm_mul_ok(*out - 1, s, &start) || start >= in + a->pad[k])) (*out)--; /* no window starts in the end padding */
    return NM_OK;
}

nm_status nm_window_resolve(nm_ctx *ctx, const nm_node *nd, nm_attrs *a, int64_t H, int64_t W, int64_t *OH, int64_t *OW)
{
    nm_status st = window_axis(ctx, nd, a, 0, H, OH);
    if (st == NM_OK) st = window_axis(ctx, nd, a, 1, W, OW);
    if (st == NM_OK) a->auto_pad = NM_AUTOPAD_NOTSET;
    return st;
}


int nm_axis(int64_t a, int r, int64_t *out)
{
    if (a < -r || a >= r) return 0;
    *out = a < 0 ? a + r : a;
    return 1;
}

nm_status nm_infer_elementwise(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    (void)ctx;
    const nm_value *X = NM_IN(net, nd, 0);
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = X->shape;
    Y->batched = X->batched;
    return NM_OK;
}

nm_status nm_pass_folded_only(const nm_node *nd, nm_pass *p)
{
    return nm_fail(p->ctx, NM_ERR_UNSUPPORTED, "node '%s' (%s) runs only on constants, folded at load", nd->name, nm_op_name(nd->op));
}

void nm_strided_any(const nm_shape *o, const int64_t *st, void *y, const void *src, size_t esize)
{
    int r = o->ndim;
    int64_t n = nm_shape_numel(o);
    if (n == 0) return;
    int64_t inner = r ? o->d[r - 1] : 1, sin = r ? st[r - 1] : 0;
    int64_t idx[NM_MAX_DIMS] = {0}, off = 0;
    char *yb = y;
    const char *sb = src;
    for (int64_t base = 0; base < n; base += inner) {
        if (sin == 1) memcpy(yb + (size_t)base * esize, sb + (size_t)off * esize, (size_t)inner * esize);
        else
            for (int64_t j = 0; j < inner; j++) memcpy(yb + (size_t)(base + j) * esize, sb + (size_t)(off + j * sin) * esize, esize);
        for (int k = r - 2; k >= 0; k--) {
            idx[k]++;
            off += st[k];
            if (idx[k] < o->d[k]) break;
            off -= st[k] * o->d[k];
            idx[k] = 0;
        }
    }
}
