/*
 * conv.h — what Conv's files share (conv.c: the passes; conv_matrix.c:
 * method propagate's matrix): the dimensions of one convolution.
 */
#ifndef NM_OPS_CONV_H
#define NM_OPS_CONV_H

#include "../net.h"

typedef struct {
    int64_t C, H, W, M, G, Cg, Mg, KH, KW, OH, OW;
    int64_t K;   /* Cg·KH·KW, rows of the column buffer */
    int64_t HW, OHW;
    int direct;  /* 1×1, stride 1, no padding: x itself is the column buffer */
} conv_dims;

/* The dimensions of a convolution with attributes a of x (N, C, H, W) by w (M, C/G, KH, KW) into y (N, M, OH, OW). */
conv_dims nm_conv_dims(const nm_attrs *a, const nm_shape *xs4, const nm_shape *ws4, const nm_shape *ys4);
/* col (K, bh·bw) ← patches of x (Cg, H, W) for the outputs in the box ob = [oh0, oh1) × [ow0, ow1), zeros in
 * the padding; col's rows ldc ≥ bh·bw apart. */
void nm_conv_im2col_box(const nm_attrs *a, const conv_dims *d, const float *x, const int64_t ob[4], float *col, int64_t ldc);
/* conv_local.c: the taps of weight w (M, Cg, KH, KW) as nm_conv_local_jvp reads them (M·Cg·KH·KW floats); the
 * floats of scratch one call needs; and one tangent x (C, H, W) into y (M, OH, OW) without the bias. It returns 0,
 * y zeroed, when the tangent's outputs spread over more than half of y: those are for the batched path. */
void nm_conv_taps(const conv_dims *d, const float *w, float *Wt);
size_t nm_conv_local_floats(const conv_dims *d);
int nm_conv_local_jvp(const nm_attrs *a, const conv_dims *d, const float *w, const float *Wt, const float *x, float *scratch, float *y);
/* The op table's matrix hook (net.h): the conv as a map from its data input, a group per output position. */
int nm_conv_matrix(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int i, nm_wmat *W, nm_status *st);

#endif
