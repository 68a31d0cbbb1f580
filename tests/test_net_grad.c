/*
 * test_net_grad.c — jvp and vjp of the network engine.
 *
 * Per op (a one-op net for each op and attribute variant): jvp against
 * central finite differences of the library's forward pass, taken in double
 * from float evaluations at a step inside the primal's linear region (for
 * the piecewise-linear ops the jvp must be identical at x − hv, x and x + hv,
 * else x is redrawn); vjp against jvp by the adjoint identity
 * ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ summed in double; batched tangents against one at a
 * time; per-sample cotangents (primal batch 2) against separate calls.
 *
 * Whole nets in the LeNet layout (DESIGN §2, full size) and the AlexNet
 * layout (5 conv with LRN, 3 Linear, 7 ReLU; scaled down): the library's
 * forward against an independent naive double-precision interpreter written
 * here; jvp against central differences of that interpreter, with the step
 * halved until every ReLU sign and max-pool argmax agrees at x ± hv; the
 * adjoint identity; and ranges split at each ReLU (§1.6) composing to the
 * whole.
 */
#include "netmoments.h"
#include "../src/net.h"
#include "check.h"

#include <string.h>

#define TOL_FD_OP 2e-3     /* per op: float forward, so FD carries ~1e-5 relative rounding */
#define TOL_ADJOINT 1e-5   /* ⟨u, Jv⟩ vs ⟨Jᵀu, v⟩, relative to Σ|u_i (Jv)_i| */
#define TOL_NET_FWD 1e-4   /* float forward vs double reference, relative to max |y| */
#define TOL_NET_FD 1e-4    /* float jvp vs double FD, relative to max |FD| */
#define TOL_SAME 1e-6      /* batched vs one-by-one */

#include "netbuild.h"

/* ---------------------------------------------------------------- array helpers */

static nm_array arr(nm_shape s, const float *data)
{
    nm_array a;
    memset(&a, 0, sizeof a);
    a.dtype = NM_F32;
    a.ndim = s.ndim;
    memcpy(a.shape, s.d, sizeof(int64_t) * (size_t)s.ndim);
    a.data = (void *)data;
    return a;
}

static double dot(const float *a, const float *b, int64_t n, double *absdot)
{
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        sa += fabs((double)a[i] * b[i]);
    }
    if (absdot) *absdot = sa;
    return s;
}

static nm_shape batch_of(nm_shape s, int64_t b)
{
    s.d[0] = b;
    return s;
}

static int must(nm_status st, const char *what)
{
    if (st != NM_OK) fprintf(stderr, "FAIL %s: %s\n", what, nm_ctx_message(ctx));
    return check_true(what, st == NM_OK);
}

/* ---------------------------------------------------------------- per-op checks */

/* y = f(x) for a single float input; returns an owned copy. */
static float *fwd(nm_net *net, nm_shape s, const float *x, int64_t *ny)
{
    nm_array xa = arr(s, x), y;
    if (nm_net_forward(ctx, net, 0, -1, &xa, &y) != NM_OK) return NULL;
    *ny = nm_array_numel(&y);
    return y.data;
}

static float *jvp(nm_net *net, nm_shape s, const float *t, int64_t *ny)
{
    nm_array ta = arr(s, t), y;
    if (nm_net_jvp(ctx, net, 0, -1, &ta, &y) != NM_OK) return NULL;
    *ny = nm_array_numel(&y);
    return y.data;
}

static void check_op(const char *name, nm_net *net, int piecewise, double xscale);

/* An AveragePool window 100,001 wide, stride 1, padded by 50,000 on each side
 * of a 3x4 plane: every window holds the whole plane, so each output is the
 * plane's sum over 12 (count_include_pad 0) or over the window's positions
 * inside the padded plane (1). The window's size must cost only the plane:
 * the fuzzer's AveragePool of this kind took minutes. */
static void avgpool_beyond_plane(void)
{
    for (int cip = 0; cip < 2; cip++) {
        int x;
        nm_net *net = start(SHAPE(1, 2, 3, 4), &x);
        nm_attrs a = nm_attrs_default(NM_OP_AVERAGEPOOL);
        a.kernel[0] = a.kernel[1] = 100001;
        a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 50000;
        a.count_include_pad = cip;
        finish(net, NODE(net, NM_OP_AVERAGEPOOL, &a, x));
        float *xv = fill_rand(24, 1.0);
        int64_t ny = 0;
        float *y = fwd(net, SHAPE(1, 2, 3, 4), xv, &ny);
        double worst = must(y ? NM_OK : NM_ERR_ARG, "AveragePool 100001x100001: forward") && ny == 24 ? 0 : INFINITY;
        for (int64_t o = 0; y && o < ny; o++) {
            int64_t c = o / 12, oh = o / 4 % 3, ow = o % 4;
            double s = 0, sa = 0;
            for (int i = 0; i < 12; i++) s += xv[c * 12 + i], sa += fabs(xv[c * 12 + i]);
            /* positions of the window [oh - 50000, oh + 50000] inside the padded rows [-50000, 50002], and
             * of [ow - 50000, ow + 50000] inside the padded columns [-50000, 50003] */
            double rows = fmin(oh + 50000, 50002) - (oh - 50000) + 1, cols = fmin(ow + 50000, 50003) - (ow - 50000) + 1;
            double div = cip ? rows * cols : 12, want = s / div;
            worst = fmax(worst, fabs(y[o] - want) / (sa / div)); /* float sums: relative to the sum of |x| */
        }
        char what[96];
        snprintf(what, sizeof what, "AveragePool 100001x100001 pad 50000%s: the plane's average (rel %.1e)",
                 cip ? " count_include_pad" : "", worst);
        check_true(what, worst < 1e-5);
        free(y), free(xv);
        check_op(cip ? "AveragePool beyond the plane, count_include_pad" : "AveragePool beyond the plane", net, 0, 1);
    }
}

static void check_op(const char *name, nm_net *net, int piecewise, double xscale)
{
    char what[256];
    int iv = net->input;
    nm_shape s1 = net->v[iv].shape; /* batch 1 */
    int64_t n = nm_shape_numel(&s1), ny = 0;
    const int T = 3;
    /* piecewise-linear: a step inside the region makes FD exact up to float
     * rounding, so it may be large; smooth ops: a small step bounds the
     * truncation error */
    double h = (piecewise ? 0.05 : 0.01) * xscale;
    float *x = NULL, *v = NULL, *J = NULL;
    int tries = 0, region = 0;
    /* halve the step, then redraw, until x − hv, x, x + hv share one linear
     * region (the jvp, which depends on the region only, is identical) */
    while (!region && tries < 20) {
        tries++;
        free(x), free(v), free(J);
        x = fill_rand(n, xscale);
        v = fill_rand(n, 1.0);
        free(fwd(net, s1, x, &ny));
        J = jvp(net, s1, v, &ny);
        region = 1;
        if (!piecewise) break;
        h = 0.05 * xscale;
        for (int halve = 0; halve < 8; halve++, h /= 2) {
            region = 1;
            for (int sgn = -1; sgn <= 1 && region; sgn += 2) {
                float *xs = malloc((size_t)n * sizeof(float));
                for (int64_t i = 0; i < n; i++) xs[i] = x[i] + (float)(sgn * h) * v[i];
                free(fwd(net, s1, xs, &ny));
                float *Js = jvp(net, s1, v, &ny);
                for (int64_t i = 0; i < ny; i++) region &= Js[i] == J[i];
                free(Js);
                free(xs);
            }
            if (region) break;
        }
        free(fwd(net, s1, x, &ny));
    }
    snprintf(what, sizeof what, "%s: found a linear region in %d draws", name, tries);
    check_true(what, region);
    /* central differences, in double, of float evaluations */
    float *xp = malloc((size_t)n * sizeof(float)), *xm = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        xp[i] = x[i] + (float)h * v[i];
        xm[i] = x[i] - (float)h * v[i];
    }
    int64_t ny2;
    float *yp = fwd(net, s1, xp, &ny2), *ym = fwd(net, s1, xm, &ny2);
    double scale = 0;
    for (int64_t i = 0; i < ny; i++) scale = fmax(scale, fabs(J[i]));
    for (int64_t i = 0; i < ny; i++) {
        /* the step actually taken, in float */
        double fd = ((double)yp[i] - ym[i]) / (2 * h);
        snprintf(what, sizeof what, "%s: jvp vs central difference [%lld]", name, (long long)i);
        check_close(what, J[i], fd, TOL_FD_OP * (scale + 1e-3), 0);
    }
    /* batched tangents at the primal x: T at once equals one at a time */
    free(fwd(net, s1, x, &ny2));
    float *V = fill_rand(T * n, 1.0);
    nm_shape sT = batch_of(s1, T);
    float *JV = jvp(net, sT, V, &ny2);
    must(JV ? NM_OK : NM_ERR_ARG, name);
    int64_t d = ny; /* outputs per sample */
    for (int t = 0; t < T && JV; t++) {
        float *Jt = jvp(net, s1, V + t * n, &ny2);
        for (int64_t i = 0; i < d; i++) {
            snprintf(what, sizeof what, "%s: batched jvp [%d][%lld]", name, t, (long long)i);
            check_close(what, JV[t * d + i], Jt[i], TOL_SAME * (scale + 1), 0);
        }
        free(Jt);
    }
    /* vjp by the adjoint identity, T cotangents at once */
    float *U = fill_rand(T * d, 1.0);
    nm_array ua = arr(batch_of(net->v[net->output].xs, T), U), g;
    if (must(nm_net_vjp(ctx, net, 0, -1, &ua, &g), name)) {
        for (int t = 0; t < T && JV; t++) {
            double ab, ab2;
            double lhs = dot(U + t * d, JV + t * d, d, &ab);
            double rhs = dot((float *)g.data + t * n, V + t * n, n, &ab2);
            snprintf(what, sizeof what, "%s: adjoint identity [%d]", name, t);
            check_close(what, rhs, lhs, TOL_ADJOINT * (ab + ab2 + 1e-30), 0);
        }
        nm_array_free(ctx, &g);
    }
    /* a primal batch of 2 with one cotangent per sample equals two calls */
    float *x2 = fill_rand(2 * n, xscale);
    float *y2 = fwd(net, batch_of(s1, 2), x2, &ny2);
    if (y2) {
        float *U2 = fill_rand(2 * d, 1.0);
        nm_array u2 = arr(batch_of(net->v[net->output].xs, 2), U2), g2, g1;
        if (must(nm_net_vjp(ctx, net, 0, -1, &u2, &g2), name))
            for (int b = 0; b < 2; b++) {
                free(fwd(net, s1, x2 + b * n, &ny2));
                nm_array u1 = arr(net->v[net->output].xs, U2 + b * d);
                if (!must(nm_net_vjp(ctx, net, 0, -1, &u1, &g1), name)) break;
                for (int64_t i = 0; i < n; i++) {
                    snprintf(what, sizeof what, "%s: per-sample vjp [%d][%lld]", name, b, (long long)i);
                    check_close(what, ((float *)g2.data)[b * n + i], ((float *)g1.data)[i], 1e-5 * (1 + fabs(((float *)g1.data)[i])), 0);
                }
                nm_array_free(ctx, &g1);
            }
        nm_array_free(ctx, &g2);
        free(U2);
        free(y2);
    }
    printf("  %-30s ok (%d draw%s, h = %.3g)\n", name, tries, tries > 1 ? "s" : "", h);
    free(x2), free(x), free(v), free(J), free(xp), free(xm), free(yp), free(ym), free(V), free(JV), free(U);
    nm_net_free(ctx, net);
}

/* A one-node net: op on x, attributes a (NULL: defaults). */
static nm_net *one_op(nm_shape in, nm_op op, const nm_attrs *a)
{
    int x;
    nm_net *net = start(in, &x);
    nm_attrs d = nm_attrs_default(op);
    finish(net, NODE(net, op, a ? a : &d, x));
    return net;
}

/* The ops of issue 13, each against central differences, the adjoint identity and batching. */
static void new_op_tests(nm_shape img)
{
    int x, y;
    nm_net *net;
    nm_attrs a;
    static const nm_op smooth[] = {NM_OP_SIGMOID, NM_OP_TANH, NM_OP_ELU, NM_OP_SOFTPLUS, NM_OP_ERF, NM_OP_GELU};
    for (size_t i = 0; i < sizeof smooth / sizeof smooth[0]; i++) check_op(nm_op_name(smooth[i]), one_op(img, smooth[i], NULL), 0, 1);
    a = nm_attrs_default(NM_OP_GELU);
    a.mode = 1;
    check_op("Gelu tanh", one_op(img, NM_OP_GELU, &a), 0, 1);
    check_op("HardSigmoid", one_op(img, NM_OP_HARDSIGMOID, NULL), 1, 4);
    check_op("HardSwish", one_op(img, NM_OP_HARDSWISH, NULL), 0, 1); /* quadratic between its kinks at ±3 */
    a = nm_attrs_default(NM_OP_CLIP);
    a.lo = -0.5f, a.hi = 0.7f;
    check_op("Clip", one_op(img, NM_OP_CLIP, &a), 1, 1);
    check_op("GlobalMaxPool", one_op(img, NM_OP_GLOBALMAXPOOL, NULL), 1, 1);
    a = nm_attrs_default(NM_OP_TRANSPOSE);
    a.naxes = 4, a.axes[0] = 0, a.axes[1] = 2, a.axes[2] = 3, a.axes[3] = 1;
    check_op("Transpose (0, 2, 3, 1)", one_op(img, NM_OP_TRANSPOSE, &a), 0, 1);
    a = nm_attrs_default(NM_OP_REDUCEMEAN);
    a.naxes = 2, a.axes[0] = 2, a.axes[1] = -1;
    check_op("ReduceMean (2, 3)", one_op(img, NM_OP_REDUCEMEAN, &a), 0, 1);
    a.keepdims = 0, a.naxes = 1, a.axes[0] = 1;
    check_op("ReduceSum 1 no keepdims", one_op(img, NM_OP_REDUCESUM, &a), 0, 1);
    a = nm_attrs_default(NM_OP_UNSQUEEZE);
    a.naxes = 1, a.axes[0] = 2;
    check_op("Unsqueeze 2", one_op(img, NM_OP_UNSQUEEZE, &a), 0, 1);
    a = nm_attrs_default(NM_OP_CAST);
    check_op("Cast to float", one_op(img, NM_OP_CAST, &a), 0, 1);
    for (int mode = 1; mode <= 2; mode++) {
        a = nm_attrs_default(NM_OP_PAD);
        a.mode = mode;
        a.pads[2] = 2, a.pads[3] = 1, a.pads[6] = 3, a.pads[7] = 2; /* H 2 before 3 after, W 1 before 2 after (3 > W - 1 wraps) */
        check_op(mode == 1 ? "Pad reflect" : "Pad edge", one_op(img, NM_OP_PAD, &a), 0, 1);
    }

    net = start(img, &x);
    y = NODE(net, NM_OP_RELU, NULL, x);
    finish(net, NODE(net, NM_OP_CONCAT, NULL, x, rconst(net, SHAPE(1, 2, 6, 6), 1, 0), y));
    check_op("Concat (varying, constant, varying) on channels", net, 1, 1);
    net = start(img, &x);
    a = nm_attrs_default(NM_OP_CONCAT);
    a.axis = -1;
    finish(net, NODE(net, NM_OP_CONCAT, &a, x, x));
    check_op("Concat on the last axis", net, 0, 1);
    net = start(img, &x);
    finish(net, NODE(net, NM_OP_SLICE, NULL, x, iconst(net, 2, (int64_t[]){-1, 1}), iconst(net, 2, (int64_t[]){-100, 5}),
                     iconst(net, 2, (int64_t[]){3, 2}), iconst(net, 2, (int64_t[]){-2, 2})));
    check_op("Slice (reversed step 2, 1:5:2)", net, 0, 1);
    net = start(img, &x);
    a = nm_attrs_default(NM_OP_GATHER);
    a.axis = 1;
    finish(net, NODE(net, NM_OP_GATHER, &a, x, iconst(net, 3, (int64_t[]){3, -4, 1})));
    check_op("Gather on channels", net, 0, 1);
    net = start(img, &x);
    a = nm_attrs_default(NM_OP_REDUCEMEAN);
    a.naxes = 2, a.axes[0] = 2, a.axes[1] = 3;
    finish(net, NODE(net, NM_OP_EXPAND, NULL, NODE(net, NM_OP_REDUCEMEAN, &a, x), iconst(net, 4, (int64_t[]){1, 4, 6, 6})));
    check_op("Expand (after a ReduceMean)", net, 0, 1);
    static const nm_op arith[] = {NM_OP_SUB, NM_OP_MUL, NM_OP_DIV};
    for (size_t i = 0; i < 3; i++) {
        char what[64];
        net = start(img, &x);
        finish(net, NODE(net, arith[i], NULL, x, rconst(net, SHAPE(4, 1, 1), 0.5, 2)));
        snprintf(what, sizeof what, "%s by a constant", nm_op_name(arith[i]));
        check_op(what, net, 0, 1);
        net = start(img, &x);
        y = NODE(net, NM_OP_SIGMOID, NULL, x);
        finish(net, NODE(net, arith[i], NULL, arith[i] == NM_OP_DIV ? rconst(net, SHAPE(1, 4, 6, 6), 1, 0) : x, y));
        snprintf(what, sizeof what, "%s of two varying values", nm_op_name(arith[i]));
        check_op(what, net, 0, 1);
    }
    net = start(SHAPE(1, 3, 16), &x);
    a = nm_attrs_default(NM_OP_CONV);
    a.kernel[0] = 1, a.kernel[1] = 5, a.pad[1] = 2, a.pad[3] = 1, a.stride[1] = 2;
    y = NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(4, 3, 5), 0.3, 0), rconst(net, SHAPE(4), 0.3, 0));
    a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = 1, a.kernel[1] = 2, a.stride[1] = 2;
    finish(net, NODE(net, NM_OP_MAXPOOL, &a, y));
    check_op("Conv1d, MaxPool1d", net, 1, 1);
}

static void per_op_tests(void)
{
    int x, y;
    nm_net *net;
    nm_attrs a;
    nm_shape img = SHAPE(1, 4, 6, 6);

    net = start(img, &x);
    a = nm_attrs_default(NM_OP_CONV);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    y = NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(5, 4, 3, 3), 0.3, 0), rconst(net, SHAPE(5), 0.3, 0));
    finish(net, y);
    check_op("Conv 3x3 pad 1", net, 0, 1);

    net = start(img, &x);
    a = nm_attrs_default(NM_OP_CONV);
    a.stride[0] = a.stride[1] = 2;
    a.dil[0] = 2;
    a.group = 2;
    a.pad[0] = 1, a.pad[1] = 0, a.pad[2] = 2, a.pad[3] = 1;
    y = NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(4, 2, 3, 2), 0.3, 0));
    finish(net, y);
    check_op("Conv strided dilated grouped", net, 0, 1);

    /* stride 1: the vjp is itself a convolution (flipped kernel, padding k−1−p), here with groups, dilation and
     * uneven pads */
    net = start(img, &x);
    a = nm_attrs_default(NM_OP_CONV);
    a.dil[0] = 2;
    a.group = 2;
    a.pad[0] = 2, a.pad[1] = 0, a.pad[2] = 1, a.pad[3] = 1;
    y = NODE(net, NM_OP_CONV, &a, x, rconst(net, SHAPE(6, 2, 3, 2), 0.3, 0), rconst(net, SHAPE(6), 0.3, 0));
    finish(net, y);
    check_op("Conv stride 1 dilated grouped, uneven pads", net, 0, 1);

    net = start(img, &x);
    y = NODE(net, NM_OP_CONV, NULL, x, rconst(net, SHAPE(3, 4, 1, 1), 0.3, 0), rconst(net, SHAPE(3), 0.3, 0));
    finish(net, y);
    check_op("Conv 1x1", net, 0, 1);

    net = start(SHAPE(1, 7), &x);
    a = nm_attrs_default(NM_OP_GEMM);
    a.trans_b = 1;
    y = NODE(net, NM_OP_GEMM, &a, x, rconst(net, SHAPE(5, 7), 0.3, 0), rconst(net, SHAPE(5), 0.3, 0));
    finish(net, y);
    check_op("Gemm transB", net, 0, 1);

    net = start(SHAPE(1, 7), &x);
    a = nm_attrs_default(NM_OP_GEMM);
    a.alpha = 0.7f, a.beta = 1.3f;
    y = NODE(net, NM_OP_GEMM, &a, x, rconst(net, SHAPE(7, 5), 0.3, 0), rconst(net, SHAPE(1, 5), 0.3, 0));
    finish(net, y);
    check_op("Gemm alpha beta", net, 0, 1);

    net = start(SHAPE(1, 3, 4, 5), &x);
    y = NODE(net, NM_OP_MATMUL, NULL, x, rconst(net, SHAPE(5, 2), 0.3, 0));
    finish(net, y);
    check_op("MatMul batched", net, 0, 1);

    net = start(img, &x);
    y = NODE(net, NM_OP_ADD, NULL, x, rconst(net, SHAPE(4, 1, 1), 1, 0));
    finish(net, y);
    check_op("Add bias", net, 0, 1);

    net = start(img, &x);
    y = NODE(net, NM_OP_RELU, NULL, x);
    y = NODE(net, NM_OP_ADD, NULL, x, y);
    finish(net, y);
    check_op("Add residual", net, 1, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_RELU, NULL, x));
    check_op("Relu", net, 1, 1);

    net = start(img, &x);
    a = nm_attrs_default(NM_OP_LEAKYRELU);
    a.alpha = 0.1f;
    finish(net, NODE(net, NM_OP_LEAKYRELU, &a, x));
    check_op("LeakyRelu", net, 1, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_PRELU, NULL, x, rconst(net, SHAPE(4, 1, 1), 0.2, 0.2)));
    check_op("PRelu", net, 1, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_NEG, NULL, x));
    check_op("Neg", net, 0, 1);

    new_op_tests(img);

    net = start(img, &x);
    a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = a.kernel[1] = 3;
    a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    finish(net, NODE(net, NM_OP_MAXPOOL, &a, x));
    check_op("MaxPool 3x3/2 pad 1", net, 1, 1);

    net = start(SHAPE(1, 2, 7, 7), &x);
    a = nm_attrs_default(NM_OP_MAXPOOL);
    a.kernel[0] = a.kernel[1] = 2;
    a.dil[0] = a.dil[1] = 2;
    a.stride[0] = a.stride[1] = 2;
    a.ceil_mode = 1;
    finish(net, NODE(net, NM_OP_MAXPOOL, &a, x));
    check_op("MaxPool dilated ceil", net, 1, 1);

    for (int cip = 0; cip < 2; cip++) {
        net = start(SHAPE(1, 2, 7, 7), &x);
        a = nm_attrs_default(NM_OP_AVERAGEPOOL);
        a.kernel[0] = a.kernel[1] = 3;
        a.stride[0] = a.stride[1] = 2;
        a.pad[0] = a.pad[1] = 1, a.pad[2] = a.pad[3] = 1;
        a.ceil_mode = 1;
        a.count_include_pad = cip;
        finish(net, NODE(net, NM_OP_AVERAGEPOOL, &a, x));
        check_op(cip ? "AveragePool count_include_pad" : "AveragePool", net, 0, 1);
    }
    avgpool_beyond_plane();

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_GLOBALAVERAGEPOOL, NULL, x));
    check_op("GlobalAveragePool", net, 0, 1);

    net = start(img, &x);
    a = nm_attrs_default(NM_OP_PAD);
    int64_t pads[8] = {0, 0, 1, 2, 0, 0, 2, -1};
    memcpy(a.pads, pads, sizeof pads);
    a.pad_value = 0.5f;
    finish(net, NODE(net, NM_OP_PAD, &a, x));
    check_op("Pad (and crop)", net, 0, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_FLATTEN, NULL, x));
    check_op("Flatten", net, 0, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_RESHAPE, NULL, x, iconst(net, 3, (int64_t[]){0, -1, 4})));
    check_op("Reshape", net, 0, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_BATCHNORM, NULL, x, rconst(net, SHAPE(4), 0.5, 1), rconst(net, SHAPE(4), 0.5, 0),
                     rconst(net, SHAPE(4), 0.5, 0), rconst(net, SHAPE(4), 0.1, 1)));
    check_op("BatchNormalization", net, 0, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_DROPOUT, NULL, x));
    check_op("Dropout", net, 0, 1);

    net = start(img, &x);
    finish(net, NODE(net, NM_OP_IDENTITY, NULL, x));
    check_op("Identity", net, 0, 1);

    net = start(SHAPE(1, 6, 3, 3), &x);
    a = nm_attrs_default(NM_OP_LRN);
    a.size = 3;
    a.alpha = 0.5f; /* strong enough that the nonlinearity shows */
    finish(net, NODE(net, NM_OP_LRN, &a, x));
    check_op("LRN", net, 0, 1);

    for (int lg = 0; lg < 2; lg++) {
        net = start(SHAPE(1, 3, 4), &x);
        a = nm_attrs_default(lg ? NM_OP_LOGSOFTMAX : NM_OP_SOFTMAX);
        a.axis = 1;
        finish(net, NODE(net, lg ? NM_OP_LOGSOFTMAX : NM_OP_SOFTMAX, &a, x));
        check_op(lg ? "LogSoftmax" : "Softmax", net, 0, 1);
    }
}

/* ---------------------------------------------------------------- whole nets, double reference */

/* A naive double interpreter of the ops these nets use, reading the same
 * constants. It records ReLU signs and max-pool argmaxes (the region). */
typedef struct {
    double *val[256];
    nm_shape shape[256];
    int *region;
    int64_t nregion, cap;
} ref_state;

static void ref_mark(ref_state *r, int k)
{
    if (r->nregion == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 4096;
        r->region = realloc(r->region, (size_t)r->cap * sizeof(int));
    }
    r->region[r->nregion++] = k;
}

static void ref_forward(const nm_net *net, const double *x, ref_state *r, double **out, int64_t *nout)
{
    r->nregion = 0;
    int in = net->input;
    r->shape[in] = net->v[in].shape;
    r->val[in] = malloc((size_t)nm_shape_numel(&r->shape[in]) * sizeof(double));
    memcpy(r->val[in], x, (size_t)nm_shape_numel(&r->shape[in]) * sizeof(double));
    for (int k = 0; k < net->nn; k++) {
        const nm_node *nd = &net->node[k];
        const nm_attrs *a = &nd->a;
        const double *X = r->val[nd->in[0]];
        nm_shape xs = r->shape[nd->in[0]], ys = net->v[nd->out].shape;
        int64_t ny = nm_shape_numel(&ys);
        double *Y = calloc((size_t)ny, sizeof(double));
        const float *W = nd->nin > 1 ? net->v[nd->in[1]].cdata : NULL;
        const float *B = nd->nin > 2 && nd->in[2] >= 0 ? net->v[nd->in[2]].cdata : NULL;
        switch (nd->op) {
        case NM_OP_CONV: {
            const nm_shape *ws = &net->v[nd->in[1]].shape;
            int64_t C = xs.d[1], H = xs.d[2], Wd = xs.d[3], M = ys.d[1], OH = ys.d[2], OW = ys.d[3];
            int64_t KH = ws->d[2], KW = ws->d[3], Cg = C / a->group, Mg = M / a->group;
            for (int64_t m = 0; m < M; m++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        double s = B ? B[m] : 0;
                        int64_t g = m / Mg;
                        for (int64_t c = 0; c < Cg; c++)
                            for (int64_t i = 0; i < KH; i++)
                                for (int64_t j = 0; j < KW; j++) {
                                    int64_t h = oh * a->stride[0] - a->pad[0] + i * a->dil[0];
                                    int64_t w = ow * a->stride[1] - a->pad[1] + j * a->dil[1];
                                    if (h < 0 || h >= H || w < 0 || w >= Wd) continue;
                                    s += (double)W[((m * Cg + c) * KH + i) * KW + j] * X[((g * Cg + c) * H + h) * Wd + w];
                                }
                        Y[(m * OH + oh) * OW + ow] = s;
                    }
            break;
        }
        case NM_OP_RELU:
            for (int64_t i = 0; i < ny; i++) {
                Y[i] = X[i] > 0 ? X[i] : 0;
                ref_mark(r, X[i] > 0);
            }
            break;
        case NM_OP_MAXPOOL: {
            int64_t C = xs.d[1], H = xs.d[2], Wd = xs.d[3], OH = ys.d[2], OW = ys.d[3];
            for (int64_t c = 0; c < C; c++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        double best = -INFINITY;
                        int arg = -1;
                        for (int64_t i = 0; i < a->kernel[0]; i++)
                            for (int64_t j = 0; j < a->kernel[1]; j++) {
                                int64_t h = oh * a->stride[0] - a->pad[0] + i * a->dil[0];
                                int64_t w = ow * a->stride[1] - a->pad[1] + j * a->dil[1];
                                if (h < 0 || h >= H || w < 0 || w >= Wd) continue;
                                double v = X[(c * H + h) * Wd + w];
                                if (arg < 0 || v > best) best = v, arg = (int)(i * a->kernel[1] + j);
                            }
                        Y[(c * OH + oh) * OW + ow] = best;
                        ref_mark(r, arg);
                    }
            break;
        }
        case NM_OP_LRN: {
            int64_t C = xs.d[1], S = nm_shape_tail(&xs, 2), lo = (a->size - 1) / 2, hi = a->size / 2;
            for (int64_t c = 0; c < C; c++)
                for (int64_t s = 0; s < S; s++) {
                    double sq = 0;
                    for (int64_t k2 = c - lo; k2 <= c + hi; k2++)
                        if (k2 >= 0 && k2 < C) sq += X[k2 * S + s] * X[k2 * S + s];
                    Y[c * S + s] = X[c * S + s] * pow(a->bias + a->alpha / (double)a->size * sq, -a->beta);
                }
            break;
        }
        case NM_OP_FLATTEN:
        case NM_OP_DROPOUT:
            memcpy(Y, X, (size_t)ny * sizeof(double));
            break;
        case NM_OP_GEMM: { /* these nets use transB = 1 */
            int64_t K = xs.d[1], N = ys.d[1];
            for (int64_t j = 0; j < N; j++) {
                double s = B ? B[j] : 0;
                for (int64_t k2 = 0; k2 < K; k2++) s += (double)W[j * K + k2] * X[k2];
                Y[j] = s;
            }
            break;
        }
        default:
            fprintf(stderr, "reference: op %s not implemented\n", nm_op_name(nd->op));
            exit(2);
        }
        r->val[nd->out] = Y;
        r->shape[nd->out] = ys;
    }
    int o = net->output;
    *nout = nm_shape_numel(&r->shape[o]);
    *out = malloc((size_t)*nout * sizeof(double));
    memcpy(*out, r->val[o], (size_t)*nout * sizeof(double));
    for (int i = 0; i < net->nv; i++)
        if (r->val[i]) free(r->val[i]), r->val[i] = NULL;
}

static void check_net(const char *name, nm_net *net, double xscale)
{
    char what[256];
    nm_shape s1 = net->v[net->input].shape;
    int64_t n = nm_shape_numel(&s1), d, nyf;
    ref_state r0 = {0}, rp = {0}, rm = {0};
    float *x = fill_rand(n, xscale), *v = fill_rand(n, xscale);
    double *xd = malloc((size_t)n * sizeof(double)), *xp = malloc((size_t)n * sizeof(double)),
           *xm = malloc((size_t)n * sizeof(double)), *y0, *yp, *ym;
    for (int64_t i = 0; i < n; i++) xd[i] = x[i];
    ref_forward(net, xd, &r0, &y0, &d);
    /* forward: float library vs double reference */
    float *yf = fwd(net, s1, x, &nyf);
    double ymax = 0;
    for (int64_t i = 0; i < d; i++) ymax = fmax(ymax, fabs(y0[i]));
    for (int64_t i = 0; i < d; i++) {
        snprintf(what, sizeof what, "%s: forward vs double reference [%lld]", name, (long long)i);
        check_close(what, yf[i], y0[i], TOL_NET_FWD * ymax, 0);
    }
    /* FD in double with a step inside x's region */
    double h = 1e-3;
    int same = 0, halvings = 0;
    while (!same && halvings < 40) {
        for (int64_t i = 0; i < n; i++) xp[i] = xd[i] + h * v[i], xm[i] = xd[i] - h * v[i];
        ref_forward(net, xp, &rp, &yp, &d);
        ref_forward(net, xm, &rm, &ym, &d);
        same = rp.nregion == r0.nregion && rm.nregion == r0.nregion &&
               !memcmp(rp.region, r0.region, sizeof(int) * (size_t)r0.nregion) &&
               !memcmp(rm.region, r0.region, sizeof(int) * (size_t)r0.nregion);
        if (!same) free(yp), free(ym), h /= 2, halvings++;
    }
    snprintf(what, sizeof what, "%s: a step inside the linear region (h = %.3g)", name, h);
    check_true(what, same);
    float *J = jvp(net, s1, v, &nyf);
    double fdmax = 0;
    for (int64_t i = 0; i < d; i++) fdmax = fmax(fdmax, fabs((yp[i] - ym[i]) / (2 * h)));
    double worst = 0;
    for (int64_t i = 0; i < d; i++) {
        double fd = (yp[i] - ym[i]) / (2 * h);
        snprintf(what, sizeof what, "%s: jvp vs double central difference [%lld]", name, (long long)i);
        check_close(what, J[i], fd, TOL_NET_FD * fdmax, 0);
        worst = fmax(worst, fabs(J[i] - fd) / fdmax);
    }
    /* adjoint identity with several tangents and cotangents */
    const int T = 4;
    float *V = fill_rand(T * n, 1.0), *U = fill_rand(T * d, 1.0);
    int64_t nj;
    float *JV = jvp(net, batch_of(s1, T), V, &nj);
    nm_array ua = arr(batch_of(net->v[net->output].xs, T), U), g;
    double worst_adj = 0;
    if (must(nm_net_vjp(ctx, net, 0, -1, &ua, &g), name) && JV) {
        for (int t = 0; t < T; t++) {
            double ab, ab2, lhs = dot(U + t * d, JV + t * d, d, &ab), rhs = dot((float *)g.data + t * n, V + t * n, n, &ab2);
            snprintf(what, sizeof what, "%s: adjoint identity [%d]", name, t);
            check_close(what, rhs, lhs, TOL_ADJOINT * (ab + ab2), 0);
            worst_adj = fmax(worst_adj, fabs(rhs - lhs) / (ab + ab2));
        }
        nm_array_free(ctx, &g);
    }
    /* split at every ReLU (§1.6): bottom then top composes to the whole */
    int nrelu = nm_net_relu_count(net);
    for (int l = 1; l <= nrelu; l++) {
        int k = nm_net_relu_node(net, l), last = net->nn - 1;
        nm_array xa = arr(s1, x), mid, top, tv = arr(s1, v), jb, jt;
        if (!must(nm_net_forward(ctx, net, 0, k, &xa, &mid), "bottom forward")) break;
        if (must(nm_net_jvp(ctx, net, 0, k, &tv, &jb), "bottom jvp")) {
            if (k < last && must(nm_net_forward(ctx, net, k + 1, last, &mid, &top), "top forward")) {
                if (must(nm_net_jvp(ctx, net, k + 1, last, &jb, &jt), "top jvp")) {
                    for (int64_t i = 0; i < d; i++) {
                        snprintf(what, sizeof what, "%s: split at ReLU %d, forward [%lld]", name, l, (long long)i);
                        check_close(what, ((float *)top.data)[i], yf[i], 1e-5 * ymax, 0);
                        snprintf(what, sizeof what, "%s: split at ReLU %d, jvp [%lld]", name, l, (long long)i);
                        check_close(what, ((float *)jt.data)[i], J[i], 1e-5 * fdmax, 0);
                    }
                    nm_array_free(ctx, &jt);
                }
                nm_array_free(ctx, &top);
            }
            nm_array_free(ctx, &jb);
        }
        nm_array_free(ctx, &mid);
    }
    printf("  %-28s forward ok; jvp vs FD worst %.2e (h = %.2g); adjoint worst %.2e; %d splits\n", name, worst, h,
           worst_adj, nrelu);
    free(x), free(v), free(xd), free(xp), free(xm), free(y0), free(yp), free(ym), free(yf), free(J), free(V), free(U), free(JV);
    free(r0.region), free(rp.region), free(rm.region);
    nm_net_free(ctx, net);
}

static nm_net *alexnet_layout(void)
{
    int x;
    nm_net *net = start(SHAPE(1, 3, 67, 67), &x);
    nm_attrs lrn = nm_attrs_default(NM_OP_LRN);
    lrn.size = 5;
    lrn.alpha = 1e-2f; /* larger than AlexNet's 1e-4 so that the derivative's cross terms matter */
    int y = NODE(net, NM_OP_RELU, NULL, conv(net, x, 3, 16, 11, 4, 2));
    y = pool(net, NODE(net, NM_OP_LRN, &lrn, y), 3, 2);
    y = NODE(net, NM_OP_RELU, NULL, conv(net, y, 16, 32, 5, 1, 2));
    y = pool(net, NODE(net, NM_OP_LRN, &lrn, y), 3, 2);
    y = NODE(net, NM_OP_RELU, NULL, conv(net, y, 32, 48, 3, 1, 1));
    y = NODE(net, NM_OP_RELU, NULL, conv(net, y, 48, 32, 3, 1, 1));
    y = NODE(net, NM_OP_RELU, NULL, conv(net, y, 32, 32, 3, 1, 1));
    y = NODE(net, NM_OP_FLATTEN, NULL, pool(net, y, 3, 2));
    y = NODE(net, NM_OP_DROPOUT, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 32, 64));
    y = NODE(net, NM_OP_DROPOUT, NULL, y);
    y = NODE(net, NM_OP_RELU, NULL, linear(net, y, 64, 64));
    finish(net, linear(net, y, 64, 10));
    return net;
}

/* Conv's jvp of local tangents (the columns of A: unit pixels and small
 * patches, which take its box paths, tap by tap or by a box's GEMM) against
 * a direct double convolution of each tangent. */
static void conv_local_tangents(const char *name, int64_t C, int64_t H, int64_t W, int64_t M, int64_t k, nm_attrs a)
{
    nm_shape img = SHAPE(1, C, H, W);
    int x;
    nm_net *net = start(img, &x);
    float *w = malloc((size_t)(M * (C / a.group) * k * k) * sizeof(float));
    for (int64_t i = 0; i < M * (C / a.group) * k * k; i++) w[i] = (float)(0.3 * nrand());
    int y = NODE(net, NM_OP_CONV, &a, x, vconst(net, SHAPE(M, C / a.group, k, k), w), rconst(net, SHAPE(M), 0.3, 0));
    finish(net, y);
    int64_t n = C * H * W, Cg = C / a.group, Mg = M / a.group;
    float *x0 = fill_rand(n, 1.0);
    int64_t ny;
    free(fwd(net, img, x0, &ny));
    int64_t d = ny, OH = net->v[net->output].shape.d[2], OW = net->v[net->output].shape.d[3];
    /* unit pixels, then 2x2 and 3x3 patches of random values over every channel */
    int64_t T = n + 2 * H * W;
    float *V = calloc((size_t)(T * n), sizeof(float));
    for (int64_t t = 0; t < n; t++) V[t * n + t] = 1.0f;
    for (int64_t t = n; t < T; t++) {
        int64_t q = (t - n) % (H * W), side = t < n + H * W ? 2 : 3, h0 = q / W, w0 = q % W;
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = h0; h < h0 + side && h < H; h++)
                for (int64_t ww = w0; ww < w0 + side && ww < W; ww++) V[t * n + (c * H + h) * W + ww] = (float)nrand();
    }
    float *JV = jvp(net, batch_of(img, T), V, &ny);
    must(JV ? NM_OK : NM_ERR_ARG, name);
    double worst = 0, scale = 0;
    for (int64_t t = 0; t < T && JV; t++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t g = m / Mg;
                    double ref = 0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < k; i++)
                            for (int64_t j = 0; j < k; j++) {
                                int64_t h = oh * a.stride[0] - a.pad[0] + i * a.dil[0], ww = ow * a.stride[1] - a.pad[1] + j * a.dil[1];
                                if (h >= 0 && h < H && ww >= 0 && ww < W)
                                    ref += (double)w[((m * Cg + c) * k + i) * k + j] * V[t * n + ((g * Cg + c) * H + h) * W + ww];
                            }
                    worst = fmax(worst, fabs(JV[t * d + (m * OH + oh) * OW + ow] - ref));
                    scale = fmax(scale, fabs(ref));
                }
    char what[160];
    snprintf(what, sizeof what, "%s: %lld local tangents against a direct convolution", name, (long long)T);
    check_close(what, worst, 0, 1e-6 * scale, 0);
    printf("  %-44s worst %.2e of %.2e\n", what, worst, scale);
    free(JV), free(V), free(x0), free(w);
    nm_net_free(ctx, net);
}

static void conv_local_tests(void)
{
    nm_attrs a = nm_attrs_default(NM_OP_CONV);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 2;
    conv_local_tangents("Conv 5x5 pad 2 (LeNet's)", 3, 14, 13, 8, 5, a);
    a = nm_attrs_default(NM_OP_CONV);
    a.stride[0] = 2, a.stride[1] = 3, a.dil[0] = 2, a.group = 2;
    a.pad[0] = 1, a.pad[1] = 0, a.pad[2] = 2, a.pad[3] = 1;
    conv_local_tangents("Conv strided dilated grouped", 4, 17, 19, 6, 3, a);
    a = nm_attrs_default(NM_OP_CONV);
    a.dil[1] = 2, a.pad[1] = 3, a.pad[3] = 1;
    conv_local_tangents("Conv 3x3 dilated uneven pads", 2, 16, 16, 5, 3, a);
}

/* A linear op's matrix hook (method propagate's groups of rows, net.h) against the jvp of every unit tangent:
 * the same entries exactly (each is one product), every row in at most one group, every column in range. */
static void matrix_hook(const char *name, nm_net *net)
{
    int k = 0;
    while (k < net->nn && !nm_op_table[net->node[k].op]->matrix) k++;
    nm_shape s1 = net->v[net->input].shape;
    int64_t n = nm_shape_numel(&s1), d = 0;
    float *x0 = fill_rand(n, 1.0), *V = calloc((size_t)(n * n), sizeof(float));
    free(fwd(net, s1, x0, &d));
    for (int64_t t = 0; t < n; t++) V[t * n + t] = 1.0f;
    float *JV = jvp(net, batch_of(s1, n), V, &d);
    d /= n;
    nm_wmat W;
    nm_status st = NM_OK;
    int got = k < net->nn && nm_op_table[net->node[k].op]->matrix(ctx, net, &net->node[k], 0, &W, &st);
    char what[160];
    snprintf(what, sizeof what, "%s: the matrix hook answers", name);
    if (!must(JV && got ? st : NM_ERR_ARG, what)) {
        free(JV), free(V), free(x0);
        return;
    }
    double *D = calloc((size_t)(d * n), sizeof(double));
    int *seen = calloc((size_t)d, sizeof(int));
    int64_t bad = 0, wrong = 0;
    for (int64_t g = 0; g < W.ng; g++)
        for (int64_t a = 0; a < W.gp[g + 1] - W.gp[g]; a++) {
            int64_t r = W.row[W.gp[g] + a];
            bad += r < 0 || r >= d || seen[r]++;
            for (int64_t e = 0; r >= 0 && r < d && e < W.ip[g + 1] - W.ip[g]; e++) {
                int64_t j = W.idx[W.ip[g] + e];
                if (j < 0 || j >= n) bad++;
                else D[r * n + j] += nm_wmat_at(&W, g, a, e);
            }
        }
    for (int64_t o = 0; o < d; o++)
        for (int64_t t = 0; t < n; t++) wrong += D[o * n + t] != (double)JV[t * d + o];
    snprintf(what, sizeof what, "%s: %lld x %lld entries equal jvp's, rows once, columns in range", name, (long long)d, (long long)n);
    check_true(what, bad == 0 && wrong == 0);
    printf("  %-60s %lld groups, %lld entries differ\n", what, (long long)W.ng, (long long)wrong);
    nm_wmat_free(ctx, &W);
    free(D), free(seen), free(JV), free(V), free(x0);
}

static void matrix_hook_tests(void)
{
    struct {
        const char *name;
        int64_t C, H, W, M, k;
        int stride0, stride1, dil0, dil1, group, pad[4];
    } c[] = {
        {"Conv 5x5 pad 2", 2, 9, 8, 3, 5, 1, 1, 1, 1, 1, {2, 2, 2, 2}},
        {"Conv strided dilated grouped uneven pads", 4, 11, 10, 6, 3, 2, 1, 1, 2, 2, {1, 2, 0, 1}},
        {"Conv 1x1", 3, 4, 5, 2, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        nm_attrs a = nm_attrs_default(NM_OP_CONV);
        a.stride[0] = c[i].stride0, a.stride[1] = c[i].stride1, a.dil[0] = c[i].dil0, a.dil[1] = c[i].dil1, a.group = c[i].group;
        for (int p = 0; p < 4; p++) a.pad[p] = c[i].pad[p];
        int64_t nw = c[i].M * (c[i].C / a.group) * c[i].k * c[i].k;
        float *w = fill_rand(nw, 0.5);
        w[nw / 2] = 0; /* a zero weight: kept or not, the entries agree */
        int x;
        nm_net *net = start(SHAPE(1, c[i].C, c[i].H, c[i].W), &x);
        finish(net, NODE(net, NM_OP_CONV, &a, x, vconst(net, SHAPE(c[i].M, c[i].C / a.group, c[i].k, c[i].k), w), rconst(net, SHAPE(c[i].M), 0.3, 0)));
        matrix_hook(c[i].name, net);
        nm_net_free(ctx, net), free(w);
    }
    for (int tb = 0; tb < 2; tb++) { /* PyTorch's Linear (transB, alpha 1: B's rows as they are) and a copied α Bᵀ */
        nm_attrs a = nm_attrs_default(NM_OP_GEMM);
        a.trans_b = tb, a.alpha = tb ? 1.0f : 0.5f;
        int x;
        nm_net *net = start(SHAPE(1, 7), &x);
        finish(net, NODE(net, NM_OP_GEMM, &a, x, rconst(net, tb ? SHAPE(5, 7) : SHAPE(7, 5), 1.0, 0), rconst(net, SHAPE(5), 0.1, 0)));
        matrix_hook(tb ? "Gemm transB (a Linear)" : "Gemm alpha 0.5", net);
        nm_net_free(ctx, net);
    }
}

int main(void)
{
    ctx = nm_ctx_create();
    printf("per op:\n");
    per_op_tests();
    conv_local_tests();
    matrix_hook_tests();
    printf("whole nets:\n");
    check_net("LeNet layout", lenet(), 1.0);
    check_net("AlexNet layout", alexnet_layout(), 1.0);
    nm_ctx_free(ctx);
    return check_finish("test_net_grad");
}
