/*
 * onnx_pb.c — the protobuf layer of ONNX import: reading model and tensor
 * files through the protobuf-c code generated at build time from Debian's
 * onnx.proto, with every allocation routed through the context (so the
 * failure-injection hook reaches it), and TensorProto → nm_array with the
 * element count checked against the bytes present before any allocation.
 */
#include "../internal.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM_MAX_MODEL_BYTES ((size_t)2 << 30)  /* protobuf's own 2 GiB limit */

nm_status nm_read_file(nm_ctx *ctx, const char *path, size_t max_bytes, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return nm_fail(ctx, NM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return nm_fail(ctx, NM_ERR_IO, "%s: cannot determine the file size", path);
    }
    if ((size_t)size > max_bytes) {
        fclose(fp);
        return nm_fail(ctx, NM_ERR_FORMAT, "%s: %ld bytes exceeds the limit of %zu", path, size, max_bytes);
    }
    uint8_t *b = nm_alloc(ctx, (size_t)size, 1);
    if (!b) {
        fclose(fp);
        return NM_ERR_NOMEM;
    }
    size_t got = fread(b, 1, (size_t)size, fp);
    fclose(fp);
    if (got != (size_t)size) {
        nm_free(ctx, b);
        return nm_fail(ctx, NM_ERR_IO, "%s: short read", path);
    }
    *buf = b;
    *len = got;
    return NM_OK;
}

static void *pb_alloc(void *data, size_t size) { return nm_alloc(data, size, 1); }
static void pb_free(void *data, void *p) { nm_free(data, p); }

nm_status nm_onnx_tensor_to_array(nm_ctx *ctx, const Onnx__TensorProto *t, const char *what,
                                  nm_array *out)
{
    memset(out, 0, sizeof *out);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: external tensor data is not supported", what);
    nm_dtype dtype;
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) dtype = NM_F32;
    else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) dtype = NM_F64;
    else return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: element type %d is not supported (need FLOAT or DOUBLE)", what, (int)t->data_type);
    if (t->n_dims > NM_MAX_DIMS)
        return nm_fail(ctx, NM_ERR_UNSUPPORTED, "%s: rank %zu exceeds %d", what, t->n_dims, NM_MAX_DIMS);
    size_t esize = dtype == NM_F64 ? 8 : 4;
    uint64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0) return nm_fail(ctx, NM_ERR_FORMAT, "%s: negative dimension %lld", what, (long long)t->dims[i]);
        if (t->dims[i] != 0 && numel > (UINT64_MAX / esize) / (uint64_t)t->dims[i])
            return nm_fail(ctx, NM_ERR_FORMAT, "%s: dimensions overflow", what);
        numel *= (uint64_t)t->dims[i];
    }
    const void *src;
    uint64_t have;
    if (t->has_raw_data) {
        src = t->raw_data.data;
        have = t->raw_data.len / esize;
        if (t->raw_data.len % esize)
            return nm_fail(ctx, NM_ERR_FORMAT, "%s: raw data of %zu bytes is not a whole number of elements", what, t->raw_data.len);
    } else if (dtype == NM_F32) {
        src = t->float_data;
        have = t->n_float_data;
    } else {
        src = t->double_data;
        have = t->n_double_data;
    }
    if (have != numel)
        return nm_fail(ctx, NM_ERR_FORMAT, "%s: dims give %llu elements but the data holds %llu", what,
                       (unsigned long long)numel, (unsigned long long)have);
    int64_t shape[NM_MAX_DIMS];
    for (size_t i = 0; i < t->n_dims; i++) shape[i] = t->dims[i];
    nm_status st = nm_array_alloc(ctx, out, dtype, (int)t->n_dims, shape);
    if (st != NM_OK) return st;
    if (numel) memcpy(out->data, src, (size_t)numel * esize); /* raw_data is little-endian, as is x86-64 */
    return NM_OK;
}

/* Unpacks buf as one message of the given type; `what` names the type and
 * `origin` the source in messages. */
static nm_status unpack(nm_ctx *ctx, const uint8_t *buf, size_t len, const char *origin,
                        const ProtobufCMessageDescriptor *desc, const char *what, ProtobufCMessage **out)
{
    ProtobufCAllocator al = {pb_alloc, pb_free, ctx};
    *out = protobuf_c_message_unpack(desc, &al, len, buf);
    if (*out) return NM_OK;
    if (ctx->fail_at && ctx->alloc_count >= ctx->fail_at) return NM_ERR_NOMEM;
    return nm_fail(ctx, NM_ERR_FORMAT, "%s: not a valid %s (protobuf parse failed)", origin, what);
}

/* Reads a file and unpacks it as one message of the given type. */
static nm_status unpack_file(nm_ctx *ctx, const char *path, const ProtobufCMessageDescriptor *desc,
                             const char *what, ProtobufCMessage **out)
{
    *out = NULL;
    uint8_t *buf;
    size_t len;
    nm_status st = nm_read_file(ctx, path, NM_MAX_MODEL_BYTES, &buf, &len);
    if (st != NM_OK) return st;
    st = unpack(ctx, buf, len, path, desc, what, out);
    nm_free(ctx, buf);
    return st;
}

nm_status nm_onnx_tensor_read(nm_ctx *ctx, const char *path, nm_array *out)
{
    memset(out, 0, sizeof *out);
    ProtobufCMessage *msg;
    nm_status st = unpack_file(ctx, path, &onnx__tensor_proto__descriptor, "ONNX TensorProto", &msg);
    if (st != NM_OK) return st;
    st = nm_onnx_tensor_to_array(ctx, (Onnx__TensorProto *)msg, path, out);
    ProtobufCAllocator al = {pb_alloc, pb_free, ctx};
    protobuf_c_message_free_unpacked(msg, &al);
    return st;
}

static nm_status model_checked(nm_ctx *ctx, nm_status st, ProtobufCMessage *msg, const char *origin,
                               Onnx__ModelProto **out)
{
    if (st != NM_OK) return st;
    Onnx__ModelProto *m = (Onnx__ModelProto *)msg;
    if (!m->graph) {
        nm_onnx_model_free(ctx, m);
        return nm_fail(ctx, NM_ERR_FORMAT, "%s: ONNX model has no graph", origin);
    }
    *out = m;
    return NM_OK;
}

nm_status nm_onnx_model_read(nm_ctx *ctx, const char *path, Onnx__ModelProto **out)
{
    *out = NULL;
    ProtobufCMessage *msg;
    nm_status st = unpack_file(ctx, path, &onnx__model_proto__descriptor, "ONNX model", &msg);
    return model_checked(ctx, st, msg, path, out);
}

nm_status nm_onnx_model_parse(nm_ctx *ctx, const uint8_t *buf, size_t len, Onnx__ModelProto **out)
{
    *out = NULL;
    ProtobufCMessage *msg = NULL;
    nm_status st = unpack(ctx, buf, len, "buffer", &onnx__model_proto__descriptor, "ONNX model", &msg);
    return model_checked(ctx, st, msg, "buffer", out);
}

void nm_onnx_model_free(nm_ctx *ctx, Onnx__ModelProto *m)
{
    if (!m) return;
    ProtobufCAllocator al = {pb_alloc, pb_free, ctx};
    onnx__model_proto__free_unpacked(m, &al);
}
