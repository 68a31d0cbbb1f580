/*
 * conv_matrix.c — Conv as a sparse matrix from its data input, for method
 * propagate (the op table's matrix hook, net.h).
 */
#include "conv.h"

/* Method propagate's matrix from the data input (net.h): output (m, oy, ox) reads w[m][c][ky][kx] at input
 * (g·Cg + c, oy·s − p + ky·dil, ox·s − p + kx·dil) inside the plane; zero weights left out, as jvp finds them. */
int nm_conv_matrix(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int i, nm_csr *W, nm_status *st)
{
    if (i != 0) return 0;
    const nm_value *X = NM_IN(net, nd, 0), *Wt = NM_IN(net, nd, 1), *Y = NM_OUT(net, nd);
    const nm_attrs *a = &nd->a;
    conv_dims d = nm_conv_dims(a, &X->shape, &Wt->shape, &Y->shape);
    const float *w = Wt->cdata;
    int64_t rows = d.M * d.OHW, nnz = 0;
    for (int64_t j = 0; j < d.M * d.K; j++) nnz += w[j] != 0;
    if ((*st = nm_csr_alloc(ctx, rows, d.C * d.HW, nnz * d.OHW, W)) != NM_OK) return 1;
    int64_t e = 0;
    for (int64_t m = 0; m < d.M; m++)
        for (int64_t oy = 0; oy < d.OH; oy++)
            for (int64_t ox = 0; ox < d.OW; ox++) {
                int64_t g = m / d.Mg;
                for (int64_t c = 0; c < d.Cg; c++)
                    for (int64_t ky = 0; ky < d.KH; ky++) {
                        int64_t iy = oy * a->stride[0] - a->pad[0] + ky * a->dil[0];
                        if (iy < 0 || iy >= d.H) continue;
                        for (int64_t kx = 0; kx < d.KW; kx++) {
                            int64_t ix = ox * a->stride[1] - a->pad[1] + kx * a->dil[1];
                            float v = w[((m * d.Cg + c) * d.KH + ky) * d.KW + kx];
                            if (ix < 0 || ix >= d.W || v == 0) continue;
                            W->idx[e] = ((g * d.Cg + c) * d.H + iy) * d.W + ix, W->val[e++] = v;
                        }
                    }
                W->ptr[(m * d.OH + oy) * d.OW + ox + 1] = e;
            }
    W->nnz = e;
    return 1;
}

