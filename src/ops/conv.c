/*
 * conv.c — Conv (2-D): strides, pads, dilations, groups, auto_pad. Forward
 * is im2col + SGEMM per sample (a 1×1, stride-1, unpadded kernel skips
 * im2col); jvp is the same convolution of the tangents without the bias
 * (the op is linear in x); vjp is the transposed product with col2im, plus
 * dW and db when the net trains. Weights and bias must be constants.
 *
 * Shapes: x (N, C, H, W); w (M, C/G, KH, KW); b (M) or absent;
 *         y (N, M, OH, OW). Column buffer: (C/G·KH·KW, OH·OW) per sample.
 */
#include "conv.h"

#include <omp.h>
#include <string.h>

conv_dims nm_conv_dims(const nm_attrs *a, const nm_shape *xs4, const nm_shape *ws4, const nm_shape *ys4)
{
    nm_shape x = nm_as_image(xs4), w = nm_as_image(ws4), y = nm_as_image(ys4); /* 1-D: (N, C, 1, L) */
    const nm_shape *xs = &x, *ws = &w, *ys = &y;
    conv_dims d;
    d.C = xs->d[1]; d.H = xs->d[2]; d.W = xs->d[3];
    d.M = ws->d[0]; d.KH = ws->d[2]; d.KW = ws->d[3];
    d.G = a->group; d.Cg = d.C / d.G; d.Mg = d.M / d.G;
    d.OH = ys->d[2]; d.OW = ys->d[3];
    d.K = d.Cg * d.KH * d.KW;
    d.HW = d.H * d.W; d.OHW = d.OH * d.OW;
    d.direct = d.KH == 1 && d.KW == 1 && a->stride[0] == 1 && a->stride[1] == 1 &&
               a->pad[0] == 0 && a->pad[1] == 0 && a->pad[2] == 0 && a->pad[3] == 0;
    return d;
}

/* The output columns [*lo, *hi) whose input column ow·s − p + j·dil lies in
 * [0, W): the rest of a column-buffer row is padding. */
static void valid_cols(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi)
{
    /* need 0 ≤ ow·s + off < W */
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    *lo = a < OW ? a : OW;
    *hi = b < OW ? b : OW;
    if (*hi < *lo) *hi = *lo;
}

/* col (K, bh·bw) ← patches of x (Cg, H, W) for the outputs in the box ob =
 * [oh0, oh1) × [ow0, ow1), zeros where the window is in the padding; rows
 * of col are ldc ≥ bh·bw apart, so that several samples can sit side by
 * side in one buffer. */
void nm_conv_im2col_box(const nm_attrs *a, const conv_dims *d, const float *x, const int64_t ob[4], float *col, int64_t ldc)
{
    int64_t s = a->stride[1], bw = ob[3] - ob[2];
    for (int64_t c = 0; c < d->Cg; c++)
        for (int64_t i = 0; i < d->KH; i++)
            for (int64_t j = 0; j < d->KW; j++) {
                float *row = col + ((c * d->KH + i) * d->KW + j) * ldc;
                int64_t off = ob[2] * s + j * a->dil[1] - a->pad[1], lo, hi; /* box column q reads input q·s + off */
                valid_cols(off, s, d->W, bw, &lo, &hi);
                for (int64_t oh = ob[0]; oh < ob[1]; oh++) {
                    int64_t h = oh * a->stride[0] - a->pad[0] + i * a->dil[0];
                    float *r = row + (oh - ob[0]) * bw;
                    if (h < 0 || h >= d->H) {
                        for (int64_t q = 0; q < bw; q++) r[q] = 0.0f;
                        continue;
                    }
                    const float *xr = x + (c * d->H + h) * d->W;
                    for (int64_t q = 0; q < lo; q++) r[q] = 0.0f;
                    for (int64_t q = lo; q < hi; q++) r[q] = xr[q * s + off];
                    for (int64_t q = hi; q < bw; q++) r[q] = 0.0f;
                }
            }
}

/* im2col over every output. */
static void im2col(const nm_attrs *a, const conv_dims *d, const float *x, float *col, int64_t ldc)
{
    const int64_t all[4] = {0, d->OH, 0, d->OW};
    nm_conv_im2col_box(a, d, x, all, col, ldc);
}

/* x (Cg, H, W) += the adjoint of im2col applied to col's rows of channels [c0, c1) (col's first row is that of
 * channel c0), rows ldc ≥ OHW apart. */
static void col2im_add(const nm_attrs *a, const conv_dims *d, const float *col, int64_t ldc, float *x, int64_t c0, int64_t c1)
{
    int64_t s = a->stride[1];
    for (int64_t c = c0; c < c1; c++)
        for (int64_t i = 0; i < d->KH; i++)
            for (int64_t j = 0; j < d->KW; j++) {
                const float *row = col + (((c - c0) * d->KH + i) * d->KW + j) * ldc;
                int64_t off = j * a->dil[1] - a->pad[1], lo, hi;
                valid_cols(off, s, d->W, d->OW, &lo, &hi);
                for (int64_t oh = 0; oh < d->OH; oh++) {
                    int64_t h = oh * a->stride[0] - a->pad[0] + i * a->dil[0];
                    if (h < 0 || h >= d->H) continue;
                    float *xr = x + (c * d->H + h) * d->W;
                    const float *r = row + oh * d->OW;
                    if (s == 1) { /* contiguous: vectorized */
                        float *xo = xr + off;
                        for (int64_t ow = lo; ow < hi; ow++) xo[ow] += r[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) xr[ow * s + off] += r[ow];
                    }
                }
            }
}

/* y (N, M, OH, OW) = conv(x (N, C, H, W), w) + b; b may be NULL. */
static nm_status conv_apply(const nm_node *nd, nm_pass *p, const float *x, int64_t N,
                            const float *w, const float *b, float *y, const conv_dims *d)
{
    int par = N >= nm_threads();
    int nslices = par ? nm_threads() : 1;
    float *scratch = NULL;
    if (!d->direct) {
        scratch = nm_pass_scratch(p, (size_t)nslices * (size_t)(d->K * d->OHW));
        if (!scratch) return NM_ERR_NOMEM;
    }
    if (par) nm_blas_serial_begin();
    #pragma omp parallel for if (par) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float *col = d->direct ? NULL : scratch + (size_t)(par ? omp_get_thread_num() : 0) * (size_t)(d->K * d->OHW);
        for (int64_t g = 0; g < d->G; g++) {
            const float *xg = x + (n * d->C + g * d->Cg) * d->HW;
            float *yg = y + (n * d->M + g * d->Mg) * d->OHW;
            if (b) {
                for (int64_t m = 0; m < d->Mg; m++)
                    for (int64_t o = 0; o < d->OHW; o++) yg[m * d->OHW + o] = b[g * d->Mg + m];
            }
            const float *cb = xg;
            if (!d->direct) {
                im2col(&nd->a, d, xg, col, d->OHW);
                cb = col;
            }
            nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, d->Mg, d->OHW, d->K, 1.0f, w + g * d->Mg * d->K, d->K,
                        cb, d->OHW, b ? 1.0f : 0.0f, yg, d->OHW);
        }
    }
    if (par) nm_blas_serial_end();
    return NM_OK;
}

static nm_status conv_infer(nm_ctx *ctx, nm_net *net, nm_node *nd)
{
    const nm_value *X = NM_IN(net, nd, 0), *Wt = NM_IN(net, nd, 1), *B = NM_IN(net, nd, 2);
    nm_attrs *a = &nd->a;
    if (Wt->varying || (B && B->varying))
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Conv): weights and bias must be constants", nd->name);
    if ((X->shape.ndim != 4 && X->shape.ndim != 3) || Wt->shape.ndim != X->shape.ndim)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "node '%s' (Conv): only 1-D and 2-D convolutions are supported (input of rank %d, weight of rank %d)",
                       nd->name, X->shape.ndim, Wt->shape.ndim);
    a->spatial = X->shape.ndim - 2;
    nm_shape x4 = nm_as_image(&X->shape), w4 = nm_as_image(&Wt->shape);
    int64_t C = X->shape.d[1], M = Wt->shape.d[0];
    if (a->group < 1 || C % a->group || M % a->group || Wt->shape.d[1] * a->group != C)
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Conv): %lld input channels, weight (%lld, %lld, ...) and group %lld do not agree",
                       nd->name, (long long)C, (long long)M, (long long)Wt->shape.d[1], (long long)a->group);
    if ((a->kernel[0] && a->kernel[0] != w4.d[2]) || (a->kernel[1] && a->kernel[1] != w4.d[3]))
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Conv): kernel_shape disagrees with the weight", nd->name);
    a->kernel[0] = w4.d[2];
    a->kernel[1] = w4.d[3];
    if (B && (B->shape.ndim != 1 || B->shape.d[0] != M))
        return nm_fail(ctx, NM_ERR_SHAPE, "node '%s' (Conv): bias must have %lld entries", nd->name, (long long)M);
    int64_t OH, OW;
    nm_status st = nm_window_resolve(ctx, nd, a, x4.d[2], x4.d[3], &OH, &OW);
    if (st != NM_OK) return st;
    nm_value *Y = NM_OUT(net, nd);
    Y->shape = a->spatial == 1 ? (nm_shape){3, {X->shape.d[0], M, OW}} : (nm_shape){4, {X->shape.d[0], M, OH, OW}};
    Y->batched = X->batched;
    return NM_OK;
}

/* x[0] (N, C, H, W), x[1] weight (M, C/G, KH, KW), x[2] bias (M) or NULL: y (N, M, OH, OW). */
/* ---- many tangents through one primal: S tangents' columns side by side
 * make one GEMM per group, (Mg × K)·(K × S·OHW), instead of S small ones
 * that each stream the weights (issue 13). */

/* Tangents per chunk: the chunk's K + Mg rows of S·OHW columns stay under 32 MiB (at least one tangent). */
static int64_t chunk_of(const conv_dims *d, int64_t T)
{
    int64_t per = (d->K + d->Mg) * d->OHW * (int64_t)sizeof(float), S = ((int64_t)32 << 20) / (per ? per : 1);
    if (S < 1) S = 1;
    return S < T ? S : T;
}

/* dst (rows, ns·cols) ← for each s < ns, rows of src + s·sstride (cols each, rows sld apart) side by side. */
static void side_by_side(float *dst, const float *src, int64_t ns, int64_t rows, int64_t cols, int64_t sld, int64_t sstride)
{
    int64_t ld = ns * cols;
    #pragma omp parallel for schedule(static) if (ns * rows * cols > 65536)
    for (int64_t s = 0; s < ns; s++)
        for (int64_t r = 0; r < rows; r++) memcpy(dst + r * ld + s * cols, src + s * sstride + r * sld, (size_t)cols * sizeof(float));
}

/* y (T, M, OH, OW) = (or, with add, +=) conv(x (T, C, H, W); w, a) without the bias, for the tangents listed in
 * idx (all when idx is NULL), chunk by chunk: im2col of each tangent into its columns, one GEMM per group, and
 * the columns back. */
static nm_status conv_batched(nm_pass *p, const nm_attrs *a, const conv_dims *d, const float *w, const float *x,
                              const int64_t *idx, int64_t T, float *y, int add)
{
    int64_t S = chunk_of(d, T), ld = S * d->OHW;
    float *buf = nm_pass_scratch(p, (size_t)((d->K + d->Mg) * ld));
    if (!buf) return NM_ERR_NOMEM;
    float *col = buf, *prod = buf + d->K * ld;
    nm_blas_serial_begin(); /* nm_gemm_f32 splits C over the OpenMP threads: one thread pool, not two spinning */
    for (int64_t t0 = 0; t0 < T; t0 += S) {
        int64_t ns = T - t0 < S ? T - t0 : S, ldn = ns * d->OHW;
        for (int64_t g = 0; g < d->G; g++) {
            #pragma omp parallel for schedule(static)
            for (int64_t s = 0; s < ns; s++) {
                int64_t t = idx ? idx[t0 + s] : t0 + s;
                const float *xg = x + (t * d->C + g * d->Cg) * d->HW;
                if (d->direct)
                    for (int64_t k = 0; k < d->K; k++) memcpy(col + k * ldn + s * d->OHW, xg + k * d->HW, (size_t)d->OHW * sizeof(float));
                else
                    im2col(a, d, xg, col + s * d->OHW, ldn);
            }
            nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, d->Mg, ldn, d->K, 1.0f, w + g * d->Mg * d->K, d->K, col, ldn, 0.0f, prod, ldn);
            #pragma omp parallel for schedule(static)
            for (int64_t s = 0; s < ns; s++) {
                int64_t t = idx ? idx[t0 + s] : t0 + s;
                for (int64_t m = 0; m < d->Mg; m++) {
                    float *yr = y + (t * d->M + g * d->Mg + m) * d->OHW;
                    const float *pr = prod + m * ldn + s * d->OHW;
                    if (add)
                        for (int64_t o = 0; o < d->OHW; o++) yr[o] += pr[o];
                    else
                        memcpy(yr, pr, (size_t)d->OHW * sizeof(float));
                }
            }
        }
    }
    nm_blas_serial_end();
    return NM_OK;
}

/* A stride-1 convolution's adjoint is a convolution (of dy, with the kernel flipped and its channel axes
 * swapped, and the padding k−1−p): with inner size Mg·KH·KW its GEMMs are better shaped than the transposed
 * product's (inner size Mg) and nothing is scattered back. 0 when the conv has strides or pads beyond the
 * kernel; else *at, *dt and the flipped weights wt (G·Cg × Mg·KH·KW, allocated) describe it. */
static int adjoint_conv(nm_ctx *ctx, const nm_attrs *a, const conv_dims *d, const float *w, int64_t T, nm_attrs *at,
                        conv_dims *dt, float **wt, nm_status *st)
{
    *st = NM_OK;
    if (a->stride[0] != 1 || a->stride[1] != 1) return 0;
    int64_t eh = a->dil[0] * (d->KH - 1), ew = a->dil[1] * (d->KW - 1);
    if (a->pad[0] > eh || a->pad[2] > eh || a->pad[1] > ew || a->pad[3] > ew) return 0;
    *at = *a;
    at->pad[0] = eh - a->pad[0], at->pad[2] = eh - a->pad[2], at->pad[1] = ew - a->pad[1], at->pad[3] = ew - a->pad[3];
    nm_shape xs = {4, {T, d->M, d->OH, d->OW}}, ws = {4, {d->C, d->Mg, d->KH, d->KW}}, ys = {4, {T, d->C, d->H, d->W}};
    *dt = nm_conv_dims(at, &xs, &ws, &ys);
    if (!(*wt = nm_alloc(ctx, (size_t)(d->C * d->Mg * d->KH * d->KW), sizeof(float)))) return *st = NM_ERR_NOMEM, 1;
    for (int64_t g = 0; g < d->G; g++)
        for (int64_t m = 0; m < d->Mg; m++)
            for (int64_t c = 0; c < d->Cg; c++)
                for (int64_t i = 0; i < d->KH; i++)
                    for (int64_t j = 0; j < d->KW; j++)
                        (*wt)[((((g * d->Cg + c) * d->Mg + m) * d->KH + i) * d->KW + j)] =
                            w[(((g * d->Mg + m) * d->Cg + c) * d->KH + (d->KH - 1 - i)) * d->KW + (d->KW - 1 - j)];
    return 1;
}

/* dx (T, C, H, W) += convᵀ(dy (T, M, OH, OW)), chunk by chunk: the chunk's dy side by side (Mg × ns·OHW per
 * group), then tiles of a few tangents × a block of input channels, each on one thread: one GEMM wᵀ·dy for the
 * tile's rows and columns into a buffer that stays in cache, and col2im from it (a tile writes only its own
 * tangents' channels, so tiles run in parallel). */
static nm_status conv_vjp_batched(const nm_node *nd, nm_pass *p, const conv_dims *d)
{
    int64_t T = p->dys.d[0], S = chunk_of(d, T), ld = S * d->OHW, kk = d->KH * d->KW;
    if (T == 0 || S == 0 || d->OHW == 0 || kk == 0 || d->Cg == 0) return NM_OK; /* an empty output or kernel: nothing to add */
    int64_t ts = (256 + d->OHW - 1) / d->OHW;                  /* tangents per tile: about 256 columns */
    if (ts > S) ts = S;
    int64_t cb = 65536 / (ts * d->OHW * kk);                   /* channels per tile: about 64 Ki floats */
    if (cb < 1) cb = 1;
    if (cb > d->Cg) cb = d->Cg;
    int nt = nm_threads();
    size_t tile = (size_t)(cb * kk * ts * d->OHW);
    float *buf = nm_pass_scratch(p, (size_t)(d->Mg * ld) + (size_t)nt * tile);
    if (!buf) return NM_ERR_NOMEM;
    float *dyc = buf;
    int64_t ncb = (d->Cg + cb - 1) / cb;
    nm_blas_serial_begin();
    for (int64_t t0 = 0; t0 < T; t0 += S) {
        int64_t ns = T - t0 < S ? T - t0 : S, ldn = ns * d->OHW, nts = (ns + ts - 1) / ts;
        for (int64_t g = 0; g < d->G; g++) {
            side_by_side(dyc, p->dy + (t0 * d->M + g * d->Mg) * d->OHW, ns, d->Mg, d->OHW, d->OHW, d->M * d->OHW);
            #pragma omp parallel for schedule(dynamic, 1)
            for (int64_t job = 0; job < nts * ncb; job++) {
                float *dcol = buf + (size_t)(d->Mg * ld) + (size_t)omp_get_thread_num() * tile;
                int64_t s0 = (job / ncb) * ts, s1 = s0 + ts < ns ? s0 + ts : ns, c0 = (job % ncb) * cb,
                        c1 = c0 + cb < d->Cg ? c0 + cb : d->Cg, cols = (s1 - s0) * d->OHW, rows = (c1 - c0) * kk;
                nm_gemm_f32(NM_TRANS, NM_NOTRANS, rows, cols, d->Mg, 1.0f, p->x[1] + g * d->Mg * d->K + c0 * kk, d->K,
                            dyc + s0 * d->OHW, ldn, 0.0f, dcol, cols);
                for (int64_t s = s0; s < s1; s++) {
                    float *dxg = p->dx[0] + ((t0 + s) * d->C + g * d->Cg) * d->HW;
                    const float *c = dcol + (s - s0) * d->OHW;
                    if (d->direct) {
                        for (int64_t k = c0; k < c1; k++)
                            for (int64_t o = 0; o < d->OHW; o++) dxg[k * d->HW + o] += c[(k - c0) * cols + o];
                    } else {
                        col2im_add(&nd->a, d, c, cols, dxg, c0, c1);
                    }
                }
            }
        }
    }
    nm_blas_serial_end();
    return NM_OK;
}

static nm_status conv_forward(const nm_node *nd, nm_pass *p)
{
    conv_dims d = nm_conv_dims(&nd->a, &p->xs[0], &p->xs[1], &p->ys);
    return conv_apply(nd, p, p->x[0], p->xs[0].d[0], p->x[1], p->x[2], p->y, &d);
}

/* jvp: local tangents one by one (conv_local.c), the spread-out ones batched. */
static nm_status conv_jvp(const nm_node *nd, nm_pass *p)
{
    const nm_attrs *a = &nd->a;
    conv_dims d = nm_conv_dims(a, &p->dxs[0], &p->xs[1], &p->dys);
    int64_t T = p->dxs[0].d[0];
    if (d.direct || T < nm_threads()) return conv_batched(p, a, &d, p->x[1], p->dx[0], NULL, T, p->dy, 0);
    int64_t *spread = nm_alloc(p->ctx, (size_t)T, sizeof *spread);
    if (!spread) return NM_ERR_NOMEM;
    int nt = nm_threads();
    size_t per = nm_conv_local_floats(&d);
    float *scratch = nm_pass_scratch(p, (size_t)nt * per + (size_t)(d.M * d.K));
    if (!scratch) return nm_free(p->ctx, spread), NM_ERR_NOMEM;
    float *Wt = scratch + (size_t)nt * per;
    nm_conv_taps(&d, p->x[1], Wt);
    nm_blas_serial_begin();
    #pragma omp parallel for schedule(dynamic, 4)
    for (int64_t t = 0; t < T; t++)
        spread[t] = !nm_conv_local_jvp(a, &d, p->x[1], Wt, p->dx[0] + t * d.C * d.HW, scratch + (size_t)omp_get_thread_num() * per,
                                       p->dy + t * d.M * d.OHW);
    nm_blas_serial_end();
    int64_t ns = 0;
    for (int64_t t = 0; t < T; t++)
        if (spread[t]) spread[ns++] = t;
    nm_status st = ns ? conv_batched(p, a, &d, p->x[1], p->dx[0], spread, ns, p->dy, 0) : NM_OK;
    nm_free(p->ctx, spread);
    return st;
}

/* dy (T, M, OH, OW): dx[0] (T, C, H, W) += convᵀ(dy); gp[1] (M, C/G, KH, KW) += Σ_t dy_t · col(x_t)ᵀ and gp[2] (M)
 * += Σ dy when the net trains. */
static nm_status conv_vjp(const nm_node *nd, nm_pass *p)
{
    conv_dims d = nm_conv_dims(&nd->a, &p->xs[0], &p->xs[1], &p->ys);
    const float *dy = p->dy;
    int64_t T = p->dys.d[0], P = p->xs[0].d[0];
    if (p->dx[0]) {
        nm_attrs at;
        conv_dims dt;
        float *wt = NULL;
        nm_status st;
        if (!d.direct && adjoint_conv(p->ctx, &nd->a, &d, p->x[1], T, &at, &dt, &wt, &st)) {
            if (st == NM_OK) st = conv_batched(p, &at, &dt, wt, dy, NULL, T, p->dx[0], 1);
            nm_free(p->ctx, wt);
        } else {
            st = conv_vjp_batched(nd, p, &d);
        }
        if (st != NM_OK) return st;
    }
    /* Weight gradient: dW_g += dY_g · colᵀ summed over samples, chunk by
     * chunk: S samples' columns side by side make one GEMM of inner size
     * S·OHW. Chunks are fixed by the sizes alone, so the result does not
     * depend on the thread count. */
    if (p->gp[1]) {
        int64_t S = (4096 + d.OHW - 1) / d.OHW;
        if (S > T) S = T;
        int64_t ld = S * d.OHW;
        float *buf = nm_pass_scratch(p, (size_t)((d.K + d.Mg) * ld));
        if (!buf) return NM_ERR_NOMEM;
        float *col = buf, *dyc = buf + d.K * ld;
        for (int64_t t0 = 0; t0 < T; t0 += S) {
            int64_t ns = T - t0 < S ? T - t0 : S, ldn = ns * d.OHW;
            for (int64_t g = 0; g < d.G; g++) {
                #pragma omp parallel for schedule(static)
                for (int64_t s = 0; s < ns; s++) {
                    int64_t t = t0 + s;
                    const float *xg = p->x[0] + ((t % P) * d.C + g * d.Cg) * d.HW;
                    if (d.direct)
                        for (int64_t k = 0; k < d.K; k++) memcpy(col + k * ldn + s * d.OHW, xg + k * d.HW, (size_t)d.OHW * sizeof(float));
                    else
                        im2col(&nd->a, &d, xg, col + s * d.OHW, ldn);
                    for (int64_t m = 0; m < d.Mg; m++)
                        memcpy(dyc + m * ldn + s * d.OHW, dy + (t * d.M + g * d.Mg + m) * d.OHW, (size_t)d.OHW * sizeof(float));
                }
                nm_gemm_f32(NM_NOTRANS, NM_TRANS, d.Mg, d.K, ldn, 1.0f, dyc, ldn, col, ldn, 1.0f, p->gp[1] + g * d.Mg * d.K, d.K);
            }
        }
    }
    if (p->gp[2]) {
        for (int64_t m = 0; m < d.M; m++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t o = 0; o < d.OHW; o++) s += dy[(t * d.M + m) * d.OHW + o];
            p->gp[2][m] += (float)s;
        }
    }
    return NM_OK;
}

static const nm_attr_def conv_attrs[] = {
    NM_WINDOW_ATTRS,
    {.name = "dilations", .kind = NM_ATTR_INTS, .offset = NM_ATTR_FIELD(dil), .count = 2, .def = 1, .why = NM_WINDOW_ONLY_2D,
     .write = 1, .window = 1},
    {.name = "group", .kind = NM_ATTR_INT, .offset = NM_ATTR_FIELD(group), .def = 1, .write = 1},
    {0}};

const nm_op_def nm_op_conv = {
    .name = "Conv", .min_inputs = 2, .max_inputs = 3, .trainable = {[1] = 1, [2] = 1}, .attrs = conv_attrs,
    .matrix = nm_conv_matrix, .infer = conv_infer, .forward = conv_forward, .jvp = conv_jvp, .vjp = conv_vjp,
};
