/*
 * list.h — the op registry: one line per op, NM_OP(ENUM, definition), in
 * the order of the op enum. net.h expands it into the enum and the extern
 * declarations, ops/registry.c into the table. Adding an op is its file
 * under src/ops (picked up by the build) and one line here.
 */
NM_OP(CONV, nm_op_conv)
NM_OP(GEMM, nm_op_gemm)
NM_OP(MATMUL, nm_op_matmul)
NM_OP(ADD, nm_op_add)
NM_OP(RELU, nm_op_relu)
NM_OP(LEAKYRELU, nm_op_leakyrelu)
NM_OP(PRELU, nm_op_prelu)
NM_OP(MAXPOOL, nm_op_maxpool)
NM_OP(AVERAGEPOOL, nm_op_averagepool)
NM_OP(GLOBALAVERAGEPOOL, nm_op_globalaveragepool)
NM_OP(PAD, nm_op_pad)
NM_OP(FLATTEN, nm_op_flatten)
NM_OP(RESHAPE, nm_op_reshape)
NM_OP(BATCHNORM, nm_op_batchnorm)
NM_OP(DROPOUT, nm_op_dropout)
NM_OP(LRN, nm_op_lrn)
NM_OP(IDENTITY, nm_op_identity)
NM_OP(SOFTMAX, nm_op_softmax)
NM_OP(LOGSOFTMAX, nm_op_logsoftmax)
NM_OP(NEG, nm_op_neg)
