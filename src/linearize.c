/*
 * linearize.c — the two-stage linearization of DESIGN §1.6. The net is
 * split at its l-th ReLU: R_bot (nodes before it) is linearized at x₀,
 * A = ∂R_bot/∂x and c1 = R_bot(x₀) − A x₀; R_top (nodes after it, up to the
 * logits) at y₀, B = ∂R_top/∂y and c2 = R_top(y₀) − B y₀. A and B are
 * formed by jvp columns or vjp rows, whichever takes fewer passes, in
 * chunks of tangents. What the moments do with them is src/moments.c.
 */
#include "linearize.h"

#include <string.h>

void nm_lin_free(nm_ctx *ctx, nm_lin *L)
{
    nm_act_free(ctx, &L->act);
    nm_free(ctx, L->x0);
    nm_free(ctx, L->r0);
    nm_free(ctx, L->B);
    nm_free(ctx, L->c2);
    memset(L, 0, sizeof *L);
}

nm_status nm_to_float(nm_ctx *ctx, const nm_array *a, int64_t n, const char *what, float **out)
{
    *out = NULL;
    if (a && a->data && nm_array_numel(a) != n)
        return nm_fail(ctx, NM_ERR_SHAPE, "%s has %lld elements, the model expects %lld", what, (long long)nm_array_numel(a),
                       (long long)n);
    return nm_array_to_f32(ctx, a, what, out);
}

/* The first node j > first of the flat top of nodes first..last: from it on
 * every varying value read is a vector (per sample), and nothing varying is
 * read from below node j − 1's output; last + 1 when there is no such top. */
static int flat_top(const nm_net *net, int first, int last)
{
    int j = last + 1;
    for (int k = last; k > first; k--) {
        const nm_node *nd = &net->node[k];
        int ok = 1;
        for (int i = 0; i < nd->nin && ok; i++) {
            int v = nd->in[i];
            ok = v < 0 || !net->v[v].varying || net->v[v].shape.ndim <= 2;
        }
        if (!ok) break;
        j = k;
    }
    for (int k = j; k <= last; k++) /* the whole top reads nothing varying from below node j − 1 */
        for (int i = 0; i < net->node[k].nin; i++) {
            int v = net->node[k].in[i];
            if (v >= 0 && net->v[v].varying && v != nm_net_range_input(net, j) && net->v[v].producer < j) return last + 1;
        }
    return j;
}

/* E (c × width) ← the unit vectors e_c0 .. e_c0+c−1. */
static void units(float *E, int64_t c0, int64_t c, int64_t width)
{
    memset(E, 0, (size_t)(c * width) * sizeof(float));
    for (int64_t t = 0; t < c; t++) E[t * width + c0 + t] = 1.0f;
}

/* Columns c0 .. c0+c−1 of J (out_dim × in_dim) ← the rows of g (c × out_dim). */
static void put_columns(double *J, int64_t in_dim, int64_t out_dim, int64_t c0, int64_t c, const float *g)
{
    #pragma omp parallel for
    for (int64_t i = 0; i < out_dim; i++)
        for (int64_t t = 0; t < c; t++) J[i * in_dim + c0 + t] = g[t * out_dim + i];
}

/* J by columns. Below a flat top the unit tangents go in chunks small
 * enough for the caches (they are mostly zeros, and every op passes over
 * them whole) into M, the Jacobian at the top's input (in_dim × mid); the
 * flat top (the dense layers of DESIGN §1.6's A) then takes all of M at
 * once, one GEMM per layer. Without a flat top, or where M and the top's
 * output do not fit the memory left, the tangents go through the whole
 * range in chunks. */
static nm_status jacobian_by_columns(nm_ctx *ctx, nm_net *net, int first, int last, int64_t in_dim, int64_t out_dim, double *J)
{
    int j = flat_top(net, first, last);
    int64_t mid = j <= last ? nm_shape_numel(&net->v[nm_net_range_input(net, j)].shape) : 0;
    double extra = (double)in_dim * (double)(mid + out_dim) * sizeof(float);
    int split = j > first && j <= last && extra <= 0.5 * (double)(ctx->mem_limit - ctx->live_bytes);
    int lo = split ? j - 1 : last;
    int64_t want = split ? NM_LIN_CHUNK_SPATIAL : NM_LIN_CHUNK;
    int64_t chunk = nm_net_batch_fit(ctx, nm_net_sample_bytes(net, first, lo), want);
    float *E = nm_alloc(ctx, (size_t)(chunk * in_dim), sizeof(float));
    float *M = split ? nm_alloc(ctx, (size_t)(in_dim * mid), sizeof(float)) : NULL;
    nm_status st = E && (M || !split) ? NM_OK : NM_ERR_NOMEM;
    for (int64_t c0 = 0; st == NM_OK && c0 < in_dim; c0 += chunk) {
        int64_t c = in_dim - c0 < chunk ? in_dim - c0 : chunk;
        units(E, c0, c, in_dim);
        if ((st = nm_net_run_jvp(ctx, net, first, lo, c, E)) != NM_OK) break;
        const float *g = net->v[net->node[lo].out].g;
        if (split) memcpy(M + c0 * mid, g, (size_t)(c * mid) * sizeof(float));
        else put_columns(J, in_dim, out_dim, c0, c, g); /* tangent e_c → column c of J */
    }
    int64_t top = split ? nm_net_batch_fit(ctx, nm_net_sample_bytes(net, j, last), in_dim) : 0;
    for (int64_t c0 = 0; st == NM_OK && split && c0 < in_dim; c0 += top) { /* the flat top over M's rows */
        int64_t c = in_dim - c0 < top ? in_dim - c0 : top;
        if ((st = nm_net_run_jvp(ctx, net, j, last, c, M + c0 * mid)) != NM_OK) break;
        put_columns(J, in_dim, out_dim, c0, c, net->v[net->node[last].out].g);
    }
    nm_free(ctx, E), nm_free(ctx, M);
    return st;
}

/* The Jacobian J (out_dim × in_dim, double, row-major) of nodes first..last
 * at the recorded primal (batch 1), by vjp rows or jvp columns. */
static nm_status jacobian(nm_ctx *ctx, nm_net *net, int first, int last, int64_t in_dim, int64_t out_dim, double *J)
{
    if (out_dim > in_dim) return jacobian_by_columns(ctx, net, first, last, in_dim, out_dim, J);
    int64_t chunk = nm_net_batch_fit(ctx, nm_net_sample_bytes(net, first, last), NM_LIN_CHUNK);
    float *E = nm_alloc(ctx, (size_t)(chunk * out_dim), sizeof(float));
    if (!E) return NM_ERR_NOMEM;
    nm_status st = NM_OK;
    for (int64_t c0 = 0; st == NM_OK && c0 < out_dim; c0 += chunk) { /* cotangent e_i → row i of J (in_dim) */
        int64_t c = out_dim - c0 < chunk ? out_dim - c0 : chunk;
        units(E, c0, c, out_dim);
        if ((st = nm_net_run_vjp(ctx, net, first, last, c, E, 0)) != NM_OK) break;
        const float *g = net->v[nm_net_range_input(net, first)].g;
        for (int64_t i = 0; i < c * in_dim; i++) J[c0 * in_dim + i] = g[i];
    }
    nm_free(ctx, E);
    return st;
}

nm_status nm_require_batchable(nm_ctx *ctx, const nm_net *net, int last, const char *what)
{
    for (int i = 0; i <= last; i++)
        if (!net->v[net->node[i].out].batched)
            return nm_fail(ctx, NM_ERR_UNSUPPORTED,
                           "node '%s' (%s) mixes values along the input's first axis, so it is no batch axis (a model "
                           "exported without one?); %s a batch axis first: export with a batched dummy input, e.g. (1, ...)",
                           net->node[i].name, nm_op_name(net->node[i].op), what);
    return NM_OK;
}

/* The shape of value v at batch 1, and its element count. */
static int64_t unit_shape(const nm_value *v, nm_shape *s)
{
    *s = v->shape;
    s->d[0] = 1;
    return nm_shape_numel(s);
}

nm_status nm_act_of_node(nm_ctx *ctx, nm_net *net, int k, int64_t p, nm_act *act)
{
    const nm_node *nd = &net->node[k];
    memset(act, 0, sizeof *act);
    switch (nd->op) {
    case NM_OP_RELU: act->plain = 1; return NM_OK;
    case NM_OP_LEAKYRELU:
    case NM_OP_PRELU: {
        float *ones = nm_alloc(ctx, (size_t)p, sizeof(float));
        act->g = nm_alloc(ctx, (size_t)p, sizeof(double)), act->alpha = nm_alloc(ctx, (size_t)p, sizeof(double));
        nm_status st = ones && act->g && act->alpha ? NM_OK : NM_ERR_NOMEM;
        for (int64_t u = 0; st == NM_OK && u < p; u++) ones[u] = -1.0f;
        if (st == NM_OK && (st = nm_net_run(ctx, net, k, k, 1, ones)) == NM_OK)
            for (int64_t u = 0; u < p; u++) { /* f(z) = (1 − α) relu(z) + α z, and f(−1) = −α */
                act->alpha[u] = -net->v[nd->out].x[u];
                act->g[u] = 1 - act->alpha[u];
            }
        nm_free(ctx, ones);
        act->nh = 1, act->w[0] = 1, act->t[0] = 0;
        return st;
    }
    case NM_OP_CLIP: { /* lo + relu(z − lo) − relu(z − hi), one-sided when a bound is absent */
        double lo = nd->a.lo, hi = nd->a.hi, big = 1e30;
        if (lo <= -big && hi >= big) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Clip): without bounds it is no split point", nd->name);
        if (lo <= -big) act->nh = 1, act->w[0] = -1, act->t[0] = hi, act->alpha = NULL;
        else if (hi >= big) act->nh = 1, act->w[0] = 1, act->t[0] = lo, act->beta = lo;
        else act->nh = 2, act->w[0] = 1, act->t[0] = lo, act->w[1] = -1, act->t[1] = hi, act->beta = lo;
        if (lo <= -big) { /* min(z, hi) = z − relu(z − hi): the identity as a linear part */
            if (!(act->alpha = nm_alloc(ctx, (size_t)p, sizeof(double)))) return NM_ERR_NOMEM;
            for (int64_t u = 0; u < p; u++) act->alpha[u] = 1;
        }
        return NM_OK;
    }
    default: { /* HardSigmoid: clip(a z + b, 0, 1) = a relu(z + b/a) − a relu(z − (1 − b)/a) for a > 0 */
        double a = nd->a.alpha, b = nd->a.beta;
        if (!(a > 0)) return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (HardSigmoid): alpha %g is no split point", nd->name, a);
        act->nh = 2, act->w[0] = a, act->t[0] = -b / a, act->w[1] = -a, act->t[1] = (1 - b) / a;
        return NM_OK;
    }
    }
}

void nm_act_free(nm_ctx *ctx, nm_act *act)
{
    nm_free(ctx, act->g);
    nm_free(ctx, act->alpha);
    act->g = act->alpha = NULL;
}

nm_status nm_lin_point(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *o, nm_lin *L)
{
    memset(L, 0, sizeof *L);
    int nr = nm_net_relu_count(net);
    L->last = nm_net_logits_node(net);
    if (o->split_relu < -1 || o->split_relu > nr) {
        if (nr) return nm_fail(ctx, NM_ERR_ARG, "split point %d is out of range: the model has split points 1..%d (or -1: none)",
                               o->split_relu, nr);
        return nm_fail(ctx, NM_ERR_ARG, "split point %d: the model has no split point (no ReLU-like activation whose output alone "
                       "feeds the rest)", o->split_relu);
    }
    /* no split (asked for, or no ReLU-like activation that alone feeds the rest): the whole net is the bottom part and
     * the activation the identity, so the moments are those of its linearization at x₀ (the delta method) */
    int split = nr > 0 && o->split_relu != -1;
    L->k = split ? nm_net_relu_node(net, o->split_relu ? o->split_relu : nr) : L->last + 1;
    nm_status st = nm_require_batchable(ctx, net, L->last, "moments need");
    if (st != NM_OK) return st;
    nm_shape out;
    L->n = unit_shape(&net->v[net->input], &L->in_shape);
    L->p = unit_shape(&net->v[net->node[split ? L->k : L->last].out], &L->mid_shape);
    L->d = unit_shape(&net->v[net->node[L->last].out], &out);
    double s_bytes = (double)L->p * (double)L->p * sizeof(double), room = ctx->mem_limit ? (double)ctx->mem_limit - (double)ctx->live_bytes : 1e300;
    if (s_bytes > room) {
        char b1[32], b2[32];
        return nm_fail(ctx, NM_ERR_NOMEM,
                       "the split at node '%s' has %lld units, whose covariance (%lld x %lld in double) needs %s, beyond the %s "
                       "the memory budget has left: choose a split point with fewer units, or none (the whole net linearized)",
                       net->node[split ? L->k : L->last].name, (long long)L->p, (long long)L->p, (long long)L->p,
                       nm_human_bytes(s_bytes < 1e19 ? (size_t)s_bytes : (size_t)1e19, b1, sizeof b1),
                       nm_human_bytes(room > 0 ? (size_t)room : 0, b2, sizeof b2));
    }
    if (!split) { /* f(z) = z */
        L->act.nh = 0;
        if (!(L->act.alpha = nm_alloc(ctx, (size_t)L->p, sizeof(double)))) return NM_ERR_NOMEM;
        for (int64_t u = 0; u < L->p; u++) L->act.alpha[u] = 1;
    } else if ((st = nm_act_of_node(ctx, net, L->k, L->p, &L->act)) != NM_OK) {
        return st; /* before R_bot(x₀), whose primal stays recorded */
    }
    st = nm_to_float(ctx, o->x0 ? o->x0 : mu, L->n, o->x0 ? "x0" : "the input mean", &L->x0);
    if (st != NM_OK) return st;
    /* R_bot(x₀) */
    if (!(L->r0 = nm_alloc(ctx, (size_t)L->p, sizeof(float)))) return NM_ERR_NOMEM;
    if (L->k == 0) {
        memcpy(L->r0, L->x0, (size_t)L->p * sizeof(float));
    } else {
        if ((st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0)) != NM_OK) return st;
        memcpy(L->r0, net->v[net->node[L->k - 1].out].x, (size_t)L->p * sizeof(float));
    }
    return NM_OK;
}

nm_status nm_lin_top_point(nm_ctx *ctx, const nm_lin *L, const nm_net_moments_options *o, float **y0)
{
    if (o->y0) return nm_to_float(ctx, o->y0, L->p, "y0", y0);
    if (!(*y0 = nm_alloc(ctx, (size_t)L->p, sizeof(float)))) return NM_ERR_NOMEM;
    for (int64_t i = 0; i < L->p; i++) (*y0)[i] = L->act.plain ? (L->r0[i] > 0 ? L->r0[i] : 0.0f) : (float)nm_act_apply(&L->act, i, L->r0[i]);
    return NM_OK;
}

nm_status nm_lin_prepare(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *o, nm_lin *L)
{
    float *y0;
    nm_status st = nm_lin_point(ctx, net, mu, o, L);
    if (st != NM_OK || (st = nm_lin_top_point(ctx, L, o, &y0)) != NM_OK) return st;
    L->B = nm_alloc_zero(ctx, (size_t)(L->d * L->p), sizeof(double));
    L->c2 = nm_alloc(ctx, (size_t)L->d, sizeof(double));
    if (!L->B || !L->c2) st = NM_ERR_NOMEM;
    if (st == NM_OK && L->k >= L->last) { /* the logits are the split's output (or there is no split): B = I, c2 = 0 */
        for (int64_t i = 0; i < L->p; i++) L->B[i * L->p + i] = 1.0;
        memset(L->c2, 0, (size_t)L->d * sizeof(double));
    } else if (st == NM_OK && (st = nm_net_run(ctx, net, L->k + 1, L->last, 1, y0)) == NM_OK) {
        const float *t0 = net->v[net->node[L->last].out].x;
        for (int64_t i = 0; i < L->d; i++) L->c2[i] = t0[i];
        if ((st = jacobian(ctx, net, L->k + 1, L->last, L->p, L->d, L->B)) == NM_OK)
            for (int64_t i = 0; i < L->d; i++)
                for (int64_t j = 0; j < L->p; j++) L->c2[i] -= L->B[i * L->p + j] * y0[j];
    }
    nm_free(ctx, y0);
    return st;
}

nm_status nm_lin_form_A(nm_ctx *ctx, nm_net *net, const nm_lin *L, double **A, double **c1)
{
    *A = NULL;
    *c1 = NULL;
    double *a = nm_alloc_zero(ctx, (size_t)L->p, (size_t)L->n * sizeof(double));
    double *c = nm_alloc(ctx, (size_t)L->p, sizeof(double));
    nm_status st = a && c ? NM_OK : NM_ERR_NOMEM;
    if (st == NM_OK && L->k == 0) {
        for (int64_t i = 0; i < L->p; i++) a[i * L->n + i] = 1.0;
    } else if (st == NM_OK && (st = nm_net_run(ctx, net, 0, L->k - 1, 1, L->x0)) == NM_OK) {
        st = jacobian(ctx, net, 0, L->k - 1, L->n, L->p, a);
    }
    for (int64_t i = 0; st == NM_OK && i < L->p; i++) {
        double s = L->r0[i];
        for (int64_t j = 0; j < L->n; j++) s -= a[i * L->n + j] * L->x0[j];
        c[i] = s;
    }
    if (st != NM_OK) {
        nm_free(ctx, a);
        nm_free(ctx, c);
        return st;
    }
    *A = a;
    *c1 = c;
    return NM_OK;
}

nm_net_moments_options nm_net_moments_options_default(void)
{
    nm_net_moments_options o;
    memset(&o, 0, sizeof o);
    o.mem_budget = NM_MEM_BUDGET_DEFAULT;
    o.path = NM_PATH_AUTO;
    o.method = NM_METHOD_EXACT;
    o.precision = NM_PREC_DOUBLE;
    o.dense_max = NM_DENSE_MAX_DEFAULT;
    return o;
}

nm_status nm_net_linearize(nm_ctx *ctx, nm_net *net, const nm_array *mu, const nm_net_moments_options *opt, nm_array *A,
                           nm_array *c1, nm_array *B, nm_array *c2)
{
    if (!ctx || !net || !mu || !A || !c1 || !B || !c2) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    memset(A, 0, sizeof *A), memset(c1, 0, sizeof *c1), memset(B, 0, sizeof *B), memset(c2, 0, sizeof *c2);
    nm_net_moments_options o = opt ? *opt : nm_net_moments_options_default();
    nm_lin L;
    double *a = NULL, *c = NULL;
    nm_status st = nm_lin_prepare(ctx, net, mu, &o, &L);
    /* held at once: A in double while it is formed, and the float copy returned */
    double bytes = (double)L.p * (double)L.n * (sizeof(double) + sizeof(float));
    if (st == NM_OK && bytes > (double)o.mem_budget)
        st = nm_fail(ctx, NM_ERR_NOMEM, "A (%lld x %lld) needs %.2f GiB as a matrix, over the %.2f GiB budget", (long long)L.p,
                     (long long)L.n, bytes / (1 << 30), (double)o.mem_budget / (1 << 30));
    if (st == NM_OK) st = nm_lin_form_A(ctx, net, &L, &a, &c);
    int64_t sa[2] = {L.p, L.n}, sc1[1] = {L.p}, sb[2] = {L.d, L.p}, sc2[1] = {L.d};
    if (st == NM_OK && (st = nm_array_alloc(ctx, A, NM_F32, 2, sa)) == NM_OK &&
        (st = nm_array_alloc(ctx, c1, NM_F64, 1, sc1)) == NM_OK && (st = nm_array_alloc(ctx, B, NM_F64, 2, sb)) == NM_OK &&
        (st = nm_array_alloc(ctx, c2, NM_F64, 1, sc2)) == NM_OK) {
        float *af = A->data;
        for (int64_t i = 0; i < L.p * L.n; i++) af[i] = (float)a[i]; /* exact: A came from float passes */
        memcpy(c1->data, c, (size_t)L.p * sizeof(double));
        memcpy(B->data, L.B, (size_t)(L.d * L.p) * sizeof(double));
        memcpy(c2->data, L.c2, (size_t)L.d * sizeof(double));
    }
    if (st != NM_OK) {
        nm_array_free(ctx, A), nm_array_free(ctx, c1), nm_array_free(ctx, B), nm_array_free(ctx, c2);
    }
    nm_free(ctx, a);
    nm_free(ctx, c);
    nm_lin_free(ctx, &L);
    return st;
}
