/*
 * conv_matrix.c — Conv as a linear map from its data input, for method
 * propagate (the op table's matrix hook, net.h).
 */
#include "conv.h"

/* The kernel taps (ky or kx) that land inside a plane of n from output o: lo ≤ t < hi. */
static void taps_inside(int64_t o, int64_t stride, int64_t pad, int64_t dil, int64_t taps, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = taps, *hi = 0;
    for (int64_t t = 0; t < taps; t++) {
        int64_t i = o * stride - pad + t * dil;
        if (i >= 0 && i < n) *lo = t < *lo ? t : *lo, *hi = t + 1;
    }
    if (*hi == 0) *lo = 0;
}

/* Method propagate's map from the data input (net.h): output (m, oy, ox) reads w[m][c][ky][kx] at input
 * (g·Cg + c, oy·s − p + ky·dil, ox·s − p + kx·dil) inside the plane. One group per conv group and output position:
 * its Mg channels read the same inputs. Where every tap lands inside (the interior), the group's values are the
 * kernel itself; at the borders they are copied for the taps inside. Zero weights are kept. */
int nm_conv_matrix(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int i, nm_wmat *W, nm_status *st)
{
    if (i != 0) return 0;
    const nm_value *X = NM_IN(net, nd, 0), *Wt = NM_IN(net, nd, 1), *Y = NM_OUT(net, nd);
    const nm_attrs *a = &nd->a;
    conv_dims d = nm_conv_dims(a, &X->shape, &Wt->shape, &Y->shape);
    const float *w = Wt->cdata;
    int64_t nidx = 0, nown = 0;
    for (int64_t oy = 0; oy < d.OH; oy++)
        for (int64_t ox = 0; ox < d.OW; ox++) {
            int64_t y0, y1, x0, x1; /* the taps inside, a range since taps step one way */
            taps_inside(oy, a->stride[0], a->pad[0], a->dil[0], d.KH, d.H, &y0, &y1);
            taps_inside(ox, a->stride[1], a->pad[1], a->dil[1], d.KW, d.W, &x0, &x1);
            int64_t L = d.Cg * (y1 - y0) * (x1 - x0);
            nidx += d.G * L, nown += L < d.K ? d.G * d.Mg * L : 0;
        }
    if ((*st = nm_wmat_alloc(ctx, d.M * d.OHW, d.C * d.HW, d.G * d.OHW, d.M * d.OHW, nidx, nown, W)) != NM_OK) return 1;
    int64_t g = 0, r = 0, e = 0;
    float *own = W->own;
    for (int64_t gi = 0; gi < d.G; gi++)
        for (int64_t oy = 0; oy < d.OH; oy++)
            for (int64_t ox = 0; ox < d.OW; ox++, g++) {
                int64_t y0, y1, x0, x1;
                taps_inside(oy, a->stride[0], a->pad[0], a->dil[0], d.KH, d.H, &y0, &y1);
                taps_inside(ox, a->stride[1], a->pad[1], a->dil[1], d.KW, d.W, &x0, &x1);
                int64_t L = d.Cg * (y1 - y0) * (x1 - x0);
                for (int64_t m = gi * d.Mg; m < (gi + 1) * d.Mg; m++) W->row[r++] = (m * d.OH + oy) * d.OW + ox;
                for (int64_t c = 0; c < d.Cg; c++)
                    for (int64_t ky = y0; ky < y1; ky++)
                        for (int64_t kx = x0; kx < x1; kx++) {
                            int64_t iy = oy * a->stride[0] - a->pad[0] + ky * a->dil[0], ix = ox * a->stride[1] - a->pad[1] + kx * a->dil[1];
                            W->idx[e++] = ((gi * d.Cg + c) * d.H + iy) * d.W + ix;
                        }
                if (L == d.K) { /* every tap inside: the kernel's rows as they are */
                    W->v[g] = w + gi * d.Mg * d.K, W->ld[g] = d.K;
                } else {
                    for (int64_t m = 0; m < d.Mg; m++)
                        for (int64_t c = 0, t = 0; c < d.Cg; c++)
                            for (int64_t ky = y0; ky < y1; ky++)
                                for (int64_t kx = x0; kx < x1; kx++)
                                    own[m * L + t++] = w[(((gi * d.Mg + m) * d.Cg + c) * d.KH + ky) * d.KW + kx];
                    W->v[g] = own, W->ld[g] = L, own += d.Mg * L;
                }
                W->gp[g + 1] = r, W->ip[g + 1] = e;
            }
    return 1;
}
