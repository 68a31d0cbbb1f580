/*
 * moment_reg.c — the moment regularisers of training (issue 19, DESIGN
 * §1.12's diagonal rules): the input x + N(0, S I) carried through the
 * whole chain of layers as a mean m and a variance v per unit, each unit
 * taken as independent of the others (the diagonal of method propagate):
 *   Conv, Gemm, MatMul   m ← W m + b,  v ← W² v   (the layer's own kernels, run on W² and no bias);
 *   Flatten, Reshape, …  both moved like the data;
 *   ReLU                 m ← m Φ(α) + s φ(α),  v ← (m² + v) Φ(α) + m s φ(α) − m′²,  α = m / s, s = √v (§1.1);
 *   MaxPool              Clark's max of two independent Gaussians folded over the window's inputs.
 * Two losses read the result: AMR's cross-entropy of the expected logits
 * (Alfadly, Bibi & Ghanem 2019, there only through the first layer), and
 * the variance of the true-class margin z_y − z_j (j the clean runner-up),
 * Σ_u (W_y u − W_j u)² v_u at the last layer's input. The backward pass is
 * exact for these rules: by the chain rule through each one (the Gaussian
 * identities ∂E[f]/∂m = E[f′], ∂E[f]/∂v = ½ E[f″] give ReLU's), and for the
 * linear layers the layer's own vjp on the mean path plus its vjp on W² on
 * the variance path, whose weight gradient G becomes 2 W ∘ G.
 */
#include "moment_reg.h"

#include <math.h>
#include <string.h>

#define INV_SQRT_2PI 0.3989422804014327
#define TINY_VAR 1e-30
#define MAX_WINDOW 64

static double Phi(double x) { return 0.5 * erfc(-x * 0.7071067811865476); }
static double phi(double x) { return INV_SQRT_2PI * exp(-0.5 * x * x); }

/* The weight and bias inputs of a linear node (−1 when absent), or 0 when it is not one this rule runs. */
static int linear_inputs(const nm_net *net, const nm_node *nd, int *w, int *b)
{
    if (nd->op != NM_OP_CONV && nd->op != NM_OP_GEMM && nd->op != NM_OP_MATMUL) return 0;
    if (nd->nin < 2 || nd->in[1] < 0 || net->v[nd->in[1]].varying || !net->v[nd->in[1]].cdata) return 0;
    if (nd->op == NM_OP_GEMM && (nd->a.alpha != 1.0f || nd->a.trans_a)) return 0;
    *w = nd->in[1];
    *b = nd->nin > 2 && nd->in[2] >= 0 ? nd->in[2] : -1;
    return 1;
}

static int64_t units(const nm_net *net, int value) { return nm_shape_tail(&net->v[value].shape, 1); }

nm_status nm_mreg_supported(nm_ctx *ctx, const nm_net *net, int last, int kind)
{
    for (int k = 0; k <= last; k++) {
        const nm_node *nd = &net->node[k];
        int in = k ? net->node[k - 1].out : net->input, w, b, varying = 0;
        for (int i = 0; i < nd->nin; i++) varying += nd->in[i] >= 0 && net->v[nd->in[i]].varying;
        if (nd->in[0] != in || varying != 1 || !net->v[nd->out].batched)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED, "moment regularisation needs a chain of layers, each reading the one before; node '%s' (%s) does not",
                           nd->name, nm_op_name(nd->op));
        int ok = linear_inputs(net, nd, &w, &b) || nd->op == NM_OP_RELU || nd->op == NM_OP_MAXPOOL ||
                 nm_op_table[nd->op]->moments == NM_MOMENTS_SAME;
        if (!ok)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED,
                           "moment regularisation runs Conv, Gemm (alpha 1), MatMul by a constant, Relu, MaxPool and reshapes; node '%s' is %s",
                           nd->name, nm_op_name(nd->op));
    }
    if (kind == NM_REG_VAR && (last < 1 || net->node[last].op == NM_OP_CONV || !linear_inputs(net, &net->node[last], &(int){0}, &(int){0})))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "--reg var needs the logits from a Gemm or MatMul layer; node '%s' is %s",
                       net->node[last].name, nm_op_name(net->node[last].op));
    return NM_OK;
}

/* ---------------------------------------------------------------- elementwise rules and their derivatives */

/* ReLU of N(m, v): mean r, variance q, and the cotangents of (m, v) from those of (r, q). */
static void relu_rule(double m, double v, double *r, double *q)
{
    if (v < TINY_VAR) {
        *r = m > 0 ? m : 0, *q = 0;
        return;
    }
    double s = sqrt(v), a = m / s, P = Phi(a), p = phi(a);
    *r = m * P + s * p;
    double e2 = (m * m + v) * P + m * s * p;
    *q = e2 - *r * *r > 0 ? e2 - *r * *r : 0;
}

static void relu_back(double m, double v, double gr, double gq, double *gm, double *gv)
{
    if (v < TINY_VAR) {
        *gm = m > 0 ? gr : 0, *gv = 0;
        return;
    }
    double s = sqrt(v), a = m / s, P = Phi(a), p = phi(a), r = m * P + s * p;
    *gm = gr * P + gq * 2 * r * (1 - P);
    *gv = gr * p / (2 * s) + gq * (P - r * p / s);
}

/* The max of independent N(ma, va) and N(mb, vb) (Clark 1961): mean, variance, and with d non-NULL the
 * derivatives d[0..3] of the mean and d[4..7] of the variance by (ma, va, mb, vb). */
static void max2_rule(double ma, double va, double mb, double vb, double *m, double *v, double *d)
{
    double t2 = va + vb;
    if (t2 < TINY_VAR) {
        int a = ma >= mb;
        *m = a ? ma : mb, *v = 0;
        if (d) {
            memset(d, 0, 8 * sizeof(double));
            d[a ? 0 : 2] = 1;
        }
        return;
    }
    double t = sqrt(t2), al = (ma - mb) / t, P = Phi(al), p = phi(al);
    *m = ma * P + mb * (1 - P) + t * p;
    double e2 = (ma * ma + va) * P + (mb * mb + vb) * (1 - P) + (ma + mb) * t * p;
    *v = e2 - *m * *m > 0 ? e2 - *m * *m : 0;
    if (!d) return;
    double dm[4] = {P, p / (2 * t), 1 - P, p / (2 * t)};
    double br = ((ma + mb) * p - p * (va - vb) * al / t) / (2 * t);
    double de[4] = {2 * ma * P + 2 * va * p / t, P + br, 2 * mb * (1 - P) + 2 * vb * p / t, 1 - P + br};
    for (int i = 0; i < 4; i++) d[i] = dm[i], d[4 + i] = de[i] - 2 * *m * dm[i];
}

/* ---------------------------------------------------------------- the passes */

typedef struct {
    nm_ctx *ctx;
    nm_net *net;
    int last;
    int64_t n;
    float **m, **v; /* m[k + 1], v[k + 1]: node k's output moments (n × units); m[0], v[0] the input's */
} moments;

static float *node_out(moments *M, int k, float *dst)
{
    const nm_value *o = &M->net->v[M->net->node[k].out];
    memcpy(dst, o->x, (size_t)(M->n * units(M->net, M->net->node[k].out)) * sizeof(float));
    return dst;
}

/* Swaps W for W² and the bias for zeros (and back: the same call again with the saved pointers). */
typedef struct {
    int w, b;
    float *w_data, *b_data, *w_pg, *b_pg;
} swap;

static nm_status var_weights(moments *M, int w, int b, float **w2, float **zero)
{
    nm_value *W = &M->net->v[w];
    int64_t nw = nm_shape_numel(&W->shape), nb = b >= 0 ? nm_shape_numel(&M->net->v[b].shape) : 0;
    *w2 = nm_alloc(M->ctx, (size_t)nw, sizeof(float));
    *zero = nm_alloc_zero(M->ctx, (size_t)(nb > 0 ? nb : 1), sizeof(float));
    if (!*w2 || !*zero) return NM_ERR_NOMEM;
    for (int64_t i = 0; i < nw; i++) (*w2)[i] = W->cdata[i] * W->cdata[i];
    return NM_OK;
}

static void swap_in(nm_net *net, swap *s, float *w2, float *zero, float *w2_pg)
{
    nm_value *W = &net->v[s->w];
    s->w_data = W->cdata, s->w_pg = W->pg;
    W->cdata = w2, W->pg = w2_pg;
    if (s->b >= 0) {
        nm_value *B = &net->v[s->b];
        s->b_data = B->cdata, s->b_pg = B->pg;
        B->cdata = zero, B->pg = NULL;
    }
}

static void swap_out(nm_net *net, const swap *s)
{
    net->v[s->w].cdata = s->w_data, net->v[s->w].pg = s->w_pg;
    if (s->b >= 0) net->v[s->b].cdata = s->b_data, net->v[s->b].pg = s->b_pg;
}

static nm_status window_rule(moments *M, int k, float *gm_in, float *gv_in, const float *gm, const float *gv);

/* Node k's moments from its input's. */
static nm_status forward_node(moments *M, int k)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    int64_t n = M->n, nu = units(net, nd->out);
    const float *mi = M->m[k], *vi = M->v[k];
    float *mo = M->m[k + 1], *vo = M->v[k + 1];
    int w, b;
    nm_status st = NM_OK;
    if (nd->op == NM_OP_RELU) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n * nu; i++) {
            double r, q;
            relu_rule(mi[i], vi[i], &r, &q);
            mo[i] = (float)r, vo[i] = (float)q;
        }
    } else if (nd->op == NM_OP_MAXPOOL) {
        st = window_rule(M, k, NULL, NULL, NULL, NULL);
    } else if (linear_inputs(net, nd, &w, &b)) {
        float *w2 = NULL, *zero = NULL;
        if ((st = nm_net_run(M->ctx, net, k, k, n, mi)) == NM_OK) node_out(M, k, mo);
        if (st == NM_OK) st = var_weights(M, w, b, &w2, &zero);
        if (st == NM_OK) {
            swap s = {.w = w, .b = b};
            swap_in(net, &s, w2, zero, NULL);
            st = nm_net_run(M->ctx, net, k, k, n, vi);
            swap_out(net, &s);
            if (st == NM_OK) node_out(M, k, vo);
        }
        nm_free(M->ctx, w2), nm_free(M->ctx, zero);
    } else {
        if ((st = nm_net_run(M->ctx, net, k, k, n, mi)) == NM_OK) node_out(M, k, mo);
        if (st == NM_OK && (st = nm_net_run(M->ctx, net, k, k, n, vi)) == NM_OK) node_out(M, k, vo);
    }
    return st;
}

/* The vjp of node k on the data path of input x (n samples) with cotangent dy, into dx (NULL: not wanted). */
static nm_status node_vjp(moments *M, int k, const float *x, const float *dy, float *dx, unsigned flags)
{
    nm_net *net = M->net;
    nm_status st = nm_net_run(M->ctx, net, k, k, M->n, x);
    if (st == NM_OK) st = nm_net_run_vjp(M->ctx, net, k, k, M->n, dy, flags | (dx ? 0 : NM_VJP_NO_INPUT));
    if (st == NM_OK && dx) memcpy(dx, net->v[nm_net_range_input(net, k)].g, (size_t)(M->n * units(net, net->node[k].in[0])) * sizeof(float));
    return st;
}

/* Node k's cotangents: (gm, gv) of its output into (gm_in, gv_in) of its input (NULL at the net input),
 * with the weight gradients accumulated into the .pg of its trainable constants. */
static nm_status backward_node(moments *M, int k, const float *gm, const float *gv, float *gm_in, float *gv_in)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    int64_t n = M->n, nu = units(net, nd->out);
    const float *mi = M->m[k], *vi = M->v[k];
    int w, b, linear = linear_inputs(net, nd, &w, &b);
    nm_status st = NM_OK;
    if (!gm_in && !linear) return NM_OK; /* at the net input only weights want cotangents */
    if (nd->op == NM_OP_RELU) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n * nu; i++) {
            double a, c;
            relu_back(mi[i], vi[i], gm[i], gv[i], &a, &c);
            gm_in[i] = (float)a, gv_in[i] = (float)c;
        }
    } else if (nd->op == NM_OP_MAXPOOL) {
        st = window_rule(M, k, gm_in, gv_in, gm, gv);
    } else if (linear) {
        st = node_vjp(M, k, mi, gm, gm_in, NM_VJP_PARAMS);
        nm_value *W = &net->v[w];
        int64_t nw = nm_shape_numel(&W->shape);
        float *w2 = NULL, *zero = NULL, *g2 = st == NM_OK && W->pg ? nm_alloc_zero(M->ctx, (size_t)nw, sizeof(float)) : NULL;
        if (st == NM_OK && W->pg && !g2) st = NM_ERR_NOMEM;
        if (st == NM_OK) st = var_weights(M, w, b, &w2, &zero);
        if (st == NM_OK) {
            swap s = {.w = w, .b = b};
            swap_in(net, &s, w2, zero, g2);
            st = node_vjp(M, k, vi, gv, gv_in, NM_VJP_PARAMS);
            swap_out(net, &s);
        }
        if (st == NM_OK && W->pg)
            for (int64_t i = 0; i < nw; i++) W->pg[i] += 2 * W->cdata[i] * g2[i];
        nm_free(M->ctx, w2), nm_free(M->ctx, zero), nm_free(M->ctx, g2);
    } else {
        st = node_vjp(M, k, mi, gm, gm_in, 0);
        if (st == NM_OK) st = node_vjp(M, k, vi, gv, gv_in, 0);
    }
    return st;
}

/* MaxPool: forward (gm_in NULL) or backward of Clark's fold over each window, recomputing the fold. */
static nm_status window_rule(moments *M, int k, float *gm_in, float *gv_in, const float *gm, const float *gv)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    const nm_op_def *def = nm_op_table[nd->op];
    const nm_value *X = &net->v[nd->in[0]], *Y = &net->v[nd->out];
    int64_t n = M->n, nu = units(net, nd->out), nin = units(net, nd->in[0]), K = def->window(nd, &X->shape, &Y->shape, 0, NULL);
    if (K > MAX_WINDOW)
        return nm_fail(M->ctx, NM_ERR_UNSUPPORTED, "node '%s' (MaxPool): moment regularisation takes windows of at most %d inputs, not %lld",
                       nd->name, MAX_WINDOW, (long long)K);
    int64_t *idx = nm_alloc(M->ctx, (size_t)nu, (size_t)K * sizeof(int64_t)), *cnt = nm_alloc(M->ctx, (size_t)nu, sizeof(int64_t));
    if (!idx || !cnt) {
        nm_free(M->ctx, idx), nm_free(M->ctx, cnt);
        return NM_ERR_NOMEM;
    }
    nm_status st = NM_OK;
    for (int64_t o = 0; o < nu && st == NM_OK; o++)
        if ((cnt[o] = def->window(nd, &X->shape, &Y->shape, o, idx + o * K)) < 1)
            st = nm_fail(M->ctx, NM_ERR_UNSUPPORTED, "node '%s' (MaxPool): window %lld lies wholly in the padding", nd->name, (long long)o);
    if (st != NM_OK) {
        nm_free(M->ctx, idx), nm_free(M->ctx, cnt);
        return st;
    }
    if (gm_in) {
        memset(gm_in, 0, (size_t)(n * nin) * sizeof(float));
        memset(gv_in, 0, (size_t)(n * nin) * sizeof(float));
    }
    const float *mi = M->m[k], *vi = M->v[k];
    float *mo = M->m[k + 1], *vo = M->v[k + 1];
    /* parallel over samples: windows may share inputs, whose cotangents then add within one thread */
    #pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < n; s++) {
        double am[MAX_WINDOW], av[MAX_WINDOW], dd[MAX_WINDOW][8];
        for (int64_t o = 0; o < nu; o++) {
            const int64_t *ix = idx + o * K;
            int64_t c = cnt[o];
            const float *xm = mi + s * nin, *xv = vi + s * nin;
            am[0] = xm[ix[0]], av[0] = xv[ix[0]];
            for (int64_t j = 1; j < c; j++) max2_rule(am[j - 1], av[j - 1], xm[ix[j]], xv[ix[j]], &am[j], &av[j], gm_in ? dd[j] : NULL);
            if (!gm_in) {
                mo[s * nu + o] = (float)am[c - 1], vo[s * nu + o] = (float)av[c - 1];
                continue;
            }
            double ga = gm[s * nu + o], gb = gv[s * nu + o];
            float *dm = gm_in + s * nin, *dv = gv_in + s * nin;
            for (int64_t j = c - 1; j >= 1; j--) {
                const double *d = dd[j];
                dm[ix[j]] += (float)(ga * d[2] + gb * d[6]);
                dv[ix[j]] += (float)(ga * d[3] + gb * d[7]);
                double na = ga * d[0] + gb * d[4], nb = ga * d[1] + gb * d[5];
                ga = na, gb = nb;
            }
            dm[ix[0]] += (float)ga, dv[ix[0]] += (float)gb;
        }
    }
    nm_free(M->ctx, idx), nm_free(M->ctx, cnt);
    return st;
}

/* ---------------------------------------------------------------- losses */

/* Softmax cross-entropy of the expected logits z (n × C) against y, summed; dz = λ/n · ∂ (mean loss). */
static double expected_ce(const float *z, int64_t n, int64_t C, const int *y, double lambda, float *dz)
{
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *zr = z + r * C;
        double mx = zr[0], s = 0;
        for (int64_t c = 1; c < C; c++) mx = zr[c] > mx ? zr[c] : mx;
        for (int64_t c = 0; c < C; c++) s += exp(zr[c] - mx);
        total += mx + log(s) - zr[y[r]];
        for (int64_t c = 0; c < C; c++) dz[r * C + c] = (float)(lambda / (double)n * (exp(zr[c] - mx) / s - (c == y[r])));
    }
    return total;
}

/* W(o, u) of the last layer (Gemm by its trans_b, or MatMul (in, out)), as an offset into its data. */
static int64_t w_at(const nm_node *nd, int64_t nin, int64_t nout, int64_t o, int64_t u)
{
    return nd->op == NM_OP_GEMM && nd->a.trans_b ? o * nin + u : u * nout + o;
}

/* Var(z_y − z_j) = Σ_u (W_yu − W_ju)² v_u at the last layer's input h ~ (m, v), j the runner-up of the
 * clean logits; summed over samples, with λ/n · its gradient into gv (by v) and W's .pg. */
static double margin_var(moments *M, const int *y, const float *clean, int64_t C, double lambda, float *gv)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[M->last];
    int64_t n = M->n, nin = units(net, nd->in[0]);
    nm_value *W = &net->v[nd->in[1]];
    const float *v = M->v[M->last];
    double total = 0, sc = lambda / (double)n;
    for (int64_t r = 0; r < n; r++) {
        int64_t j = y[r] == 0 ? 1 : 0;
        for (int64_t c = 0; c < C; c++)
            if (c != y[r] && clean[r * C + c] > clean[r * C + j]) j = c;
        for (int64_t u = 0; u < nin; u++) {
            int64_t iy = w_at(nd, nin, C, y[r], u), ij = w_at(nd, nin, C, j, u);
            double d = (double)W->cdata[iy] - W->cdata[ij], vu = v[r * nin + u];
            total += d * d * vu;
            gv[r * nin + u] = (float)(sc * d * d);
            if (W->pg) {
                W->pg[iy] += (float)(sc * 2 * d * vu);
                W->pg[ij] -= (float)(sc * 2 * d * vu);
            }
        }
    }
    return total;
}

nm_status nm_mreg_step(nm_ctx *ctx, nm_net *net, int last, int kind, int64_t n, const float *x, double sigma2, double lambda,
                       const int *y, const float *clean, double *loss)
{
    *loss = 0;
    moments M = {ctx, net, last, n, NULL, NULL};
    int top = kind == NM_REG_VAR ? last : last + 1; /* the var loss stops at the last layer's input */
    M.m = nm_alloc_zero(ctx, (size_t)(last + 2), sizeof(float *));
    M.v = nm_alloc_zero(ctx, (size_t)(last + 2), sizeof(float *));
    int64_t widest = units(net, net->input);
    for (int k = 0; k <= last; k++) widest = units(net, net->node[k].out) > widest ? units(net, net->node[k].out) : widest;
    float *g[4] = {0};
    nm_status st = M.m && M.v ? NM_OK : NM_ERR_NOMEM;
    for (int k = 0; k < 4 && st == NM_OK; k++)
        if (!(g[k] = nm_alloc(ctx, (size_t)(n * widest), sizeof(float)))) st = NM_ERR_NOMEM;
    for (int k = 0; k < top && st == NM_OK; k++) {
        int64_t nu = units(net, net->node[k].out);
        M.m[k + 1] = nm_alloc(ctx, (size_t)(n * nu), sizeof(float));
        M.v[k + 1] = nm_alloc(ctx, (size_t)(n * nu), sizeof(float));
        if (!M.m[k + 1] || !M.v[k + 1]) st = NM_ERR_NOMEM;
    }
    int64_t nx = n * units(net, net->input), C = units(net, net->node[last].out);
    float *v0 = st == NM_OK ? nm_alloc(ctx, (size_t)nx, sizeof(float)) : NULL;
    if (st == NM_OK && !v0) st = NM_ERR_NOMEM;
    if (st == NM_OK) {
        for (int64_t i = 0; i < nx; i++) v0[i] = (float)sigma2;
        M.m[0] = (float *)x, M.v[0] = v0;
    }
    for (int k = 0; k < top && st == NM_OK; k++) st = forward_node(&M, k);
    /* g[0], g[1]: the cotangents of the current node's output; g[2], g[3]: its input's */
    if (st == NM_OK) {
        int64_t nu = units(net, net->node[top - 1].out);
        memset(g[0], 0, (size_t)(n * nu) * sizeof(float));
        memset(g[1], 0, (size_t)(n * nu) * sizeof(float));
        if (kind == NM_REG_VAR) *loss = margin_var(&M, y, clean, C, lambda, g[1]);
        else *loss = expected_ce(M.m[last + 1], n, C, y, lambda, g[0]);
    }
    for (int k = top - 1; k >= 0 && st == NM_OK; k--) {
        st = backward_node(&M, k, g[0], g[1], k ? g[2] : NULL, k ? g[3] : NULL);
        float *t0 = g[0], *t1 = g[1];
        g[0] = g[2], g[1] = g[3], g[2] = t0, g[3] = t1;
    }
    for (int k = 1; k <= last + 1; k++) nm_free(ctx, M.m ? M.m[k] : NULL), nm_free(ctx, M.v ? M.v[k] : NULL);
    nm_free(ctx, M.m), nm_free(ctx, M.v), nm_free(ctx, v0);
    for (int k = 0; k < 4; k++) nm_free(ctx, g[k]);
    net->rec_first = net->rec_last = -1;
    return st;
}
