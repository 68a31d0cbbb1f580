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
/* The op table's matrix hook (net.h): the conv as a sparse matrix from its data input. */
int nm_conv_matrix(nm_ctx *ctx, const nm_net *net, const nm_node *nd, int i, nm_csr *W, nm_status *st);

#endif
