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
 * the variance path, whose weight gradient G becomes 2 W ∘ G. The layers'
 * kernels run on these buffers directly (nm_node_forward, nm_node_vjp_at).
 */
#include "moment_reg.h"

#include <math.h>
#include <string.h>

#define INV_SQRT_2PI 0.3989422804014327
#define TINY_VAR 1e-30
#define MAX_WINDOW 64

/* Beyond |x| = 9, Φ is 0 or 1 and φ zero to 1e-18: the pools' and ReLUs' many decided units skip erfc. */
static double Phi(double x) { return x > 9 ? 1 : x < -9 ? 0 : 0.5 * erfc(-x * 0.7071067811865476); }
static double phi(double x) { return fabs(x) > 9 ? 0 : INV_SQRT_2PI * exp(-0.5 * x * x); }

/* The weight and bias inputs of a linear node (−1 when absent), or 0 when it is not one this rule runs. */
static int linear_inputs(const nm_net *net, const nm_node *nd, int *w, int *b)
{
    if (nd->op != NM_OP_CONV && nd->op != NM_OP_GEMM && nd->op != NM_OP_MATMUL) return 0;
    if (nd->nin < 2 || nd->in[1] < 0 || net->v[nd->in[1]].varying || !net->v[nd->in[1]].cdata) return 0;
    if (nd->op == NM_OP_GEMM && (nd->a.alpha != 1.0f || nd->a.trans_a)) return 0;
    if (nd->op == NM_OP_MATMUL && net->v[nd->in[1]].shape.ndim != 2) return 0;
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
                           "moment regularisation runs Conv, Gemm (alpha 1), MatMul by a 2-D constant, Relu, MaxPool and reshapes; node '%s' is %s",
                           nd->name, nm_op_name(nd->op));
    }
    if (kind == NM_REG_VAR && (last < 1 || net->node[last].op == NM_OP_CONV || !linear_inputs(net, &net->node[last], &(int){0}, &(int){0})))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "--reg var needs the logits from a Gemm or MatMul layer; node '%s' is %s",
                       net->node[last].name, nm_op_name(net->node[last].op));
    return NM_OK;
}

/* ---------------------------------------------------------------- elementwise rules and their derivatives */

/* ReLU of N(m, v): mean r and variance q (relu_back: the cotangents of (m, v) from those of (r, q)). */
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

/* Per node k (index k + 1 in m, v; 0 the net input): the buffers a step reuses. */
typedef struct {
    float *m, *v;       /* the output's moments, batch × units */
    float *w2, *zero;   /* linear nodes: W² (refreshed each step) and a zero bias */
    float *g2;          /* linear nodes: the gradient by W² */
    int64_t *idx, *cnt; /* max-pools: each output's window (K inputs per output), and how many */
    int64_t K;
} layer;

struct nm_mreg {
    nm_ctx *ctx;
    nm_net *net;
    int last, kind, top; /* top: the nodes 0..top−1 the loss reads (the var loss stops at the last layer's input) */
    int64_t batch, n;    /* the most samples a step takes, and this step's */
    int uniform;         /* nodes below this one see the same variance in every sample (none reads the mean) */
    int deep;            /* nodes 0..deep−1 carry the variance; from node deep on it is zero (the net runs on means) */
    layer *L;            /* last + 2 */
    float *g[4];         /* cotangents: the current node's output (mean, variance) and its input's */
};
typedef struct nm_mreg moments;

/* The input's variance is S everywhere, the same in every sample, and stays so through the linear layers
 * below the first ReLU or max-pool: their variance path runs on one sample (forward: broadcast to all;
 * backward: the samples' cotangents summed into sample 0, the others zero). */
static int64_t var_samples(const moments *M, int k) { return k < M->uniform ? 1 : M->n; }

static nm_status window_rule(moments *M, int k, float *gm_in, float *gv_in, const float *gm, const float *gv);

/* Node k's moments from its input's. */
static nm_status forward_node(moments *M, int k)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    int64_t n = M->n, nu = units(net, nd->out);
    layer *l = &M->L[k + 1];
    float *mi = M->L[k].m, *vi = M->L[k].v, *mo = l->m, *vo = l->v;
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
        float *xm[NM_NODE_MAX_IN] = {mi}, *xv[NM_NODE_MAX_IN] = {vi, l->w2, b >= 0 ? l->zero : NULL};
        const float *W = net->v[w].cdata;
        int64_t nw = nm_shape_numel(&net->v[w].shape), nv = var_samples(M, k);
        st = nm_node_forward(M->ctx, net, k, n, xm, mo);
        if (k >= M->deep) {
            memset(vo, 0, (size_t)(n * nu) * sizeof(float));
            return st;
        }
        for (int64_t i = 0; i < nw; i++) l->w2[i] = W[i] * W[i];
        if (st == NM_OK) st = nm_node_forward(M->ctx, net, k, nv, xv, vo);
        for (int64_t s = nv; st == NM_OK && s < n; s++) memcpy(vo + s * nu, vo, (size_t)nu * sizeof(float));
    } else { /* the data in the same order */
        memcpy(mo, mi, (size_t)(n * nu) * sizeof(float));
        memcpy(vo, vi, (size_t)(n * nu) * sizeof(float));
    }
    return st;
}

/* Node k's cotangents: (gm, gv) of its output into (gm_in, gv_in) of its input (NULL at the net input),
 * with the weight gradients accumulated into the .pg of its trainable constants. */
static nm_status backward_node(moments *M, int k, float *gm, float *gv, float *gm_in, float *gv_in)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    int64_t n = M->n, nu = units(net, nd->out), nin = units(net, nd->in[0]);
    layer *l = &M->L[k + 1];
    float *mi = M->L[k].m, *vi = M->L[k].v;
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
        nm_value *W = &net->v[w];
        int64_t nw = nm_shape_numel(&W->shape), nv = var_samples(M, k);
        float *g2 = W->pg ? l->g2 : NULL;
        float *xm[NM_NODE_MAX_IN] = {mi}, *xv[NM_NODE_MAX_IN] = {vi, l->w2, b >= 0 ? l->zero : NULL};
        float *dm[NM_NODE_MAX_IN] = {gm_in}, *dv[NM_NODE_MAX_IN] = {gv_in};
        float *gpm[NM_NODE_MAX_IN] = {NULL, W->pg, b >= 0 ? net->v[b].pg : NULL}, *gpv[NM_NODE_MAX_IN] = {NULL, g2};
        if (gm_in) memset(gm_in, 0, (size_t)(n * nin) * sizeof(float)), memset(gv_in, 0, (size_t)(n * nin) * sizeof(float));
        if (g2) memset(g2, 0, (size_t)nw * sizeof(float));
        st = nm_node_vjp_at(M->ctx, net, k, n, xm, gm, dm, gpm);
        if (k >= M->deep) return st; /* no variance here: its cotangents stay zero */
        for (int64_t s = nv; s < n; s++) /* uniform: the cotangents summed into sample 0 */
            for (int64_t u = 0; u < nu; u++) gv[u] += gv[s * nu + u];
        if (st == NM_OK) st = nm_node_vjp_at(M->ctx, net, k, nv, xv, gv, dv, gpv);
        if (st == NM_OK && g2)
            for (int64_t i = 0; i < nw; i++) W->pg[i] += 2 * W->cdata[i] * g2[i];
    } else {
        memcpy(gm_in, gm, (size_t)(n * nu) * sizeof(float));
        memcpy(gv_in, gv, (size_t)(n * nu) * sizeof(float));
    }
    return st;
}

/* MaxPool: forward (gm_in NULL) or backward of Clark's fold over each window, recomputing the fold. */
static nm_status window_rule(moments *M, int k, float *gm_in, float *gv_in, const float *gm, const float *gv)
{
    nm_net *net = M->net;
    const nm_node *nd = &net->node[k];
    const layer *l = &M->L[k + 1];
    int64_t n = M->n, nu = units(net, nd->out), nin = units(net, nd->in[0]), K = l->K;
    const int64_t *idx = l->idx, *cnt = l->cnt;
    if (gm_in) {
        memset(gm_in, 0, (size_t)(n * nin) * sizeof(float));
        memset(gv_in, 0, (size_t)(n * nin) * sizeof(float));
    }
    const float *mi = M->L[k].m, *vi = M->L[k].v;
    float *mo = l->m, *vo = l->v;
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
    return NM_OK;
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
    const float *v = M->L[M->last].v;
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

/* The window of each output of max-pool node k, into l. */
static nm_status windows(nm_mreg *r, int k, layer *l)
{
    const nm_node *nd = &r->net->node[k];
    const nm_op_def *def = nm_op_table[nd->op];
    const nm_value *X = &r->net->v[nd->in[0]], *Y = &r->net->v[nd->out];
    int64_t nu = units(r->net, nd->out);
    l->K = def->window(nd, &X->shape, &Y->shape, 0, NULL);
    if (l->K > MAX_WINDOW)
        return nm_fail(r->ctx, NM_ERR_UNSUPPORTED, "node '%s' (MaxPool): moment regularisation takes windows of at most %d inputs, not %lld",
                       nd->name, MAX_WINDOW, (long long)l->K);
    l->idx = nm_alloc(r->ctx, (size_t)nu, (size_t)l->K * sizeof(int64_t));
    l->cnt = nm_alloc(r->ctx, (size_t)nu, sizeof(int64_t));
    if (!l->idx || !l->cnt) return NM_ERR_NOMEM;
    for (int64_t o = 0; o < nu; o++)
        if ((l->cnt[o] = def->window(nd, &X->shape, &Y->shape, o, l->idx + o * l->K)) < 1)
            return nm_fail(r->ctx, NM_ERR_UNSUPPORTED, "node '%s' (MaxPool): window %lld lies wholly in the padding", nd->name, (long long)o);
    return NM_OK;
}

nm_status nm_mreg_new(nm_ctx *ctx, nm_net *net, int kind, int depth, int64_t batch, nm_mreg **out)
{
    *out = NULL;
    int last = nm_net_logits_node(net);
    nm_status st = nm_mreg_supported(ctx, net, last, kind);
    if (st == NM_OK && kind == NM_REG_VAR && depth > 0)
        st = nm_fail(ctx, NM_ERR_ARG, "a depth for the variance (--reg-depth) applies to the AMR loss, not to the margin's variance");
    if (st != NM_OK) return st;
    nm_mreg *r = nm_alloc_zero(ctx, 1, sizeof *r);
    if (!r) return NM_ERR_NOMEM;
    *r = (nm_mreg){.ctx = ctx, .net = net, .last = last, .kind = kind, .top = kind == NM_REG_VAR ? last : last + 1, .batch = batch};
    while (r->uniform <= last && net->node[r->uniform].op != NM_OP_RELU && net->node[r->uniform].op != NM_OP_MAXPOOL) r->uniform++;
    r->deep = last + 1;
    for (int k = 0, relus = 0; depth > 0 && k <= last; k++)
        if (net->node[k].op == NM_OP_RELU && ++relus == depth) r->deep = k + 1;
    r->L = nm_alloc_zero(ctx, (size_t)(last + 2), sizeof(layer));
    int64_t widest = units(net, net->input);
    st = r->L ? NM_OK : NM_ERR_NOMEM;
    for (int k = -1; k < r->top && st == NM_OK; k++) {
        const nm_node *nd = k >= 0 ? &net->node[k] : NULL;
        layer *l = &r->L[k + 1];
        int64_t nu = units(net, nd ? nd->out : net->input);
        widest = nu > widest ? nu : widest;
        l->m = k >= 0 ? nm_alloc(ctx, (size_t)(batch * nu), sizeof(float)) : NULL; /* the input's mean is the step's x */
        l->v = nm_alloc(ctx, (size_t)(batch * nu), sizeof(float));
        if ((k >= 0 && !l->m) || !l->v) st = NM_ERR_NOMEM;
        int w, b;
        if (st == NM_OK && nd && linear_inputs(net, nd, &w, &b)) {
            int64_t nw = nm_shape_numel(&net->v[w].shape), nb = b >= 0 ? nm_shape_numel(&net->v[b].shape) : 1;
            l->w2 = nm_alloc(ctx, (size_t)nw, sizeof(float));
            l->g2 = nm_alloc(ctx, (size_t)nw, sizeof(float));
            l->zero = nm_alloc_zero(ctx, (size_t)nb, sizeof(float));
            if (!l->w2 || !l->g2 || !l->zero) st = NM_ERR_NOMEM;
        }
        if (st == NM_OK && nd && nd->op == NM_OP_MAXPOOL) st = windows(r, k, l);
    }
    for (int k = 0; k < 4 && st == NM_OK; k++)
        if (!(r->g[k] = nm_alloc(ctx, (size_t)(batch * widest), sizeof(float)))) st = NM_ERR_NOMEM;
    if (st != NM_OK) {
        nm_mreg_free(r);
        return st;
    }
    *out = r;
    return NM_OK;
}

void nm_mreg_free(nm_mreg *r)
{
    if (!r) return;
    for (int k = 0; r->L && k <= r->last + 1; k++) {
        layer *l = &r->L[k];
        nm_free(r->ctx, l->m), nm_free(r->ctx, l->v), nm_free(r->ctx, l->w2), nm_free(r->ctx, l->zero), nm_free(r->ctx, l->g2);
        nm_free(r->ctx, l->idx), nm_free(r->ctx, l->cnt);
    }
    for (int k = 0; k < 4; k++) nm_free(r->ctx, r->g[k]);
    nm_free(r->ctx, r->L);
    nm_free(r->ctx, r);
}

nm_status nm_mreg_step(nm_mreg *r, int64_t n, const float *x, double sigma2, double lambda, const int *y, const float *clean,
                       double *loss)
{
    *loss = 0;
    if (n < 1 || n > r->batch) return nm_fail(r->ctx, NM_ERR_ARG, "a moment-regularised step of %lld samples (1..%lld)", (long long)n,
                                              (long long)r->batch);
    nm_net *net = r->net;
    int last = r->last, top = r->top;
    int64_t nx = n * units(net, net->input), C = units(net, net->node[last].out);
    r->n = n;
    r->L[0].m = (float *)x; /* read only */
    for (int64_t i = 0; i < nx; i++) r->L[0].v[i] = (float)sigma2;
    nm_status st = NM_OK;
    for (int k = 0; k < top && st == NM_OK; k++) {
        st = forward_node(r, k);
        if (k + 1 == r->deep) memset(r->L[k + 1].v, 0, (size_t)(n * units(net, net->node[k].out)) * sizeof(float));
    }
    float **g = r->g; /* g[0], g[1]: the cotangents of the current node's output; g[2], g[3]: its input's */
    if (st == NM_OK) {
        int64_t nu = units(net, net->node[top - 1].out);
        memset(g[0], 0, (size_t)(n * nu) * sizeof(float));
        memset(g[1], 0, (size_t)(n * nu) * sizeof(float));
        if (r->kind == NM_REG_VAR) *loss = margin_var(r, y, clean, C, lambda, g[1]);
        else *loss = expected_ce(r->L[last + 1].m, n, C, y, lambda, g[0]);
    }
    for (int k = top - 1; k >= 0 && st == NM_OK; k--) {
        st = backward_node(r, k, g[0], g[1], k ? g[2] : NULL, k ? g[3] : NULL);
        float *t0 = g[0], *t1 = g[1];
        g[0] = g[2], g[1] = g[3], g[2] = t0, g[3] = t1;
    }
    r->L[0].m = NULL;
    return st;
}
