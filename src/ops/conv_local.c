/*
 * conv_local.c — Conv's jvp of one local tangent. A unit pixel, or what a
 * few layers make of one (DESIGN §1.6's columns of A), reaches a few
 * windows, so its convolution is computed over the output box its support
 * reaches: tap by tap when its inputs are few against those outputs,
 * otherwise by the box's column buffer and one GEMM. conv.c batches the
 * tangents that spread over most of the output.
 */
#include "conv.h"

#include <string.h>

/* Bounding box [h0, h1) × [w0, w1) of the nonzeros of x (C, H, W); 0 when x is zero.
 * Tangents are mostly zeros: each row is first tested whole (a loop the
 * compiler vectorises), and only a row with nonzeros is searched. */
static int support_box(const float *x, const conv_dims *d, int64_t box[4])
{
    int64_t h0 = d->H, h1 = 0, w0 = d->W, w1 = 0;
    for (int64_t c = 0; c < d->C; c++)
        for (int64_t h = 0; h < d->H; h++) {
            const float *r = x + (c * d->H + h) * d->W;
            int any = 0;
            for (int64_t w = 0; w < d->W; w++) any |= r[w] != 0.0f;
            if (!any) continue;
            int64_t a = 0, b = d->W;
            while (r[a] == 0.0f) a++;
            while (r[b - 1] == 0.0f) b--;
            if (h < h0) h0 = h;
            if (h + 1 > h1) h1 = h + 1;
            if (a < w0) w0 = a;
            if (b > w1) w1 = b;
        }
    box[0] = h0, box[1] = h1, box[2] = w0, box[3] = w1;
    return h1 > h0;
}

/* Outputs [o0, o1) along one axis whose windows touch inputs [i0, i1). */
static void out_range(int64_t i0, int64_t i1, int64_t s, int64_t pad, int64_t dil, int64_t k, int64_t n_out, int64_t *o0, int64_t *o1)
{
    int64_t lo = i0 + pad - (k - 1) * dil; /* o·s ≥ lo */
    int64_t a = lo <= 0 ? 0 : (lo + s - 1) / s, b = (i1 - 1 + pad) / s + 1;
    *o0 = a < n_out ? a : n_out;
    *o1 = b < n_out ? b : n_out;
    if (*o1 < *o0) *o1 = *o0;
}

/* A tangent whose support box ib is small against its output box: each
 * input in the box meets each weight tap once, so for every group the
 * products of the taps Wt ((Mg·KH·KW) × Cg, rows (m, i, j)) with the box's
 * inputs V (Cg × area) are one GEMM, R, then added where each lands:
 * input h, tap i → output (h + pad − i·dil) / stride when it divides. */
static void conv_scatter_box(const nm_attrs *a, const conv_dims *d, const float *Wt, const float *x, const int64_t ib[4],
                             float *V, float *R, float *y)
{
    int64_t ih = ib[1] - ib[0], iw = ib[3] - ib[2], area = ih * iw, KK = d->KH * d->KW;
    for (int64_t g = 0; g < d->G; g++) {
        for (int64_t c = 0; c < d->Cg; c++)
            for (int64_t u = 0; u < ih; u++)
                memcpy(V + c * area + u * iw, x + ((g * d->Cg + c) * d->H + ib[0] + u) * d->W + ib[2], (size_t)iw * sizeof(float));
        nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, d->Mg * KK, area, d->Cg, 1.0f, Wt + g * d->Mg * KK * d->Cg, d->Cg, V, area, 0.0f, R, area);
        for (int64_t i = 0; i < d->KH; i++)
            for (int64_t u = 0; u < ih; u++) {
                int64_t on = ib[0] + u + a->pad[0] - i * a->dil[0], oh = on / a->stride[0];
                if (on < 0 || on % a->stride[0] || oh >= d->OH) continue;
                for (int64_t j = 0; j < d->KW; j++)
                    for (int64_t v = 0; v < iw; v++) {
                        int64_t wn = ib[2] + v + a->pad[1] - j * a->dil[1], ow = wn / a->stride[1];
                        if (wn < 0 || wn % a->stride[1] || ow >= d->OW) continue;
                        const float *r = R + (i * d->KW + j) * area + u * iw + v;
                        float *o = y + (g * d->Mg * d->OH + oh) * d->OW + ow;
                        for (int64_t m = 0; m < d->Mg; m++) o[m * d->OHW] += r[m * KK * area];
                    }
            }
    }
}

/* The taps of weight w (M, Cg, KH, KW) as conv_scatter_box reads them: per group (Mg·KH·KW) × Cg. */
void nm_conv_taps(const conv_dims *d, const float *w, float *Wt)
{
    int64_t KK = d->KH * d->KW;
    for (int64_t g = 0; g < d->G; g++)
        for (int64_t m = 0; m < d->Mg; m++)
            for (int64_t c = 0; c < d->Cg; c++)
                for (int64_t k = 0; k < KK; k++)
                    Wt[((g * d->Mg + m) * KK + k) * d->Cg + c] = w[((g * d->Mg + m) * d->Cg + c) * KK + k];
}

size_t nm_conv_local_floats(const conv_dims *d)
{
    /* the column buffer and product of a box, or (tap by tap) V and R of a box of at most OHW / 4 inputs */
    return (size_t)((d->K + d->Mg) * d->OHW + (d->Mg * d->KH * d->KW + d->Cg) * (d->OHW / 4 + 1));
}

int nm_conv_local_jvp(const nm_attrs *a, const conv_dims *d, const float *w, const float *Wt, const float *x, float *scratch, float *y)
{
    float *col = scratch, *prod = col + d->K * d->OHW;
    int64_t ib[4], ob[4];
    memset(y, 0, (size_t)(d->M * d->OHW) * sizeof(float));
    if (!support_box(x, d, ib)) return 1; /* a zero tangent stays zero */
    out_range(ib[0], ib[1], a->stride[0], a->pad[0], a->dil[0], d->KH, d->OH, &ob[0], &ob[1]);
    out_range(ib[2], ib[3], a->stride[1], a->pad[1], a->dil[1], d->KW, d->OW, &ob[2], &ob[3]);
    int64_t bh = ob[1] - ob[0], bw = ob[3] - ob[2], bsz = bh * bw;
    if (bsz == 0) return 1;
    if (2 * bsz > d->OHW) return 0; /* spread out: the caller batches it */
    if (4 * (ib[1] - ib[0]) * (ib[3] - ib[2]) <= bsz) { /* few inputs for their outputs: tap by tap */
        conv_scatter_box(a, d, Wt, x, ib, prod + d->Mg * d->OHW, prod + d->Mg * d->OHW + d->Cg * (d->OHW / 4 + 1), y);
        return 1;
    }
    for (int64_t g = 0; g < d->G; g++) {
        nm_conv_im2col_box(a, d, x + g * d->Cg * d->HW, ob, col, bsz);
        nm_gemm_f32(NM_NOTRANS, NM_NOTRANS, d->Mg, bsz, d->K, 1.0f, w + g * d->Mg * d->K, d->K, col, bsz, 0.0f, prod, bsz);
        for (int64_t m = 0; m < d->Mg; m++)
            for (int64_t oh = ob[0]; oh < ob[1]; oh++)
                memcpy(y + ((g * d->Mg + m) * d->OH + oh) * d->OW + ob[2], prod + m * bsz + (oh - ob[0]) * bw, (size_t)bw * sizeof(float));
    }
    return 1;
}
