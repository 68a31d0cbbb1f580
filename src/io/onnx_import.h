/*
 * onnx_import.h — what the ONNX importer's two files share
 * (onnx_import.c: tensors and the graph; onnx_attrs.c: attributes).
 */
#ifndef NM_ONNX_IMPORT_H
#define NM_ONNX_IMPORT_H

#include "../net.h"
#include "onnx.pb-c.h"

typedef Onnx__AttributeProto attr_t;

/* An integer tensor (INT64, INT32, BOOL, UINT8, INT8) of numel values as int64, newly allocated, its count checked against the data. */
nm_status nm_onnx_int_tensor(nm_ctx *ctx, const Onnx__TensorProto *t, const char *what, int64_t numel, int64_t **out);
/* "node 'n' (op): attribute 'a' <why>", NM_ERR_UNSUPPORTED. */
nm_status nm_onnx_bad_attr(nm_ctx *ctx, const Onnx__NodeProto *n, const attr_t *at, const char *why);
/* Whether attribute at is named name. */
int nm_onnx_attr_is(const attr_t *at, const char *name);
/* The attributes of node n through the op's attribute list: defaults, those that depend on the opset,
 * then each attribute the node has (an unknown one refused by name). */
nm_status nm_onnx_parse_attrs(nm_ctx *ctx, const Onnx__NodeProto *n, nm_op op, int64_t opset, nm_attrs *a);

#endif
