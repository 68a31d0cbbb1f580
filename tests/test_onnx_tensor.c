/*
 * test_onnx_tensor.c — the ONNX protobuf layer on Debian's libonnx-testdata:
 * every model file parses; every tensor file is either read (FLOAT/DOUBLE)
 * or refused as unsupported, never reported malformed; the Relu, Neg and
 * Identity cases' outputs equal max(x, 0), −x and x of their inputs as read;
 * truncated and random files are refused with a message; allocation
 * failures during parsing come back as NM_ERR_NOMEM.
 */
#include "netmoments.h"
#include "../src/internal.h"
#include "check.h"
#include "onnx.pb-c.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#define EXACT 0 /* the same float op on the same float */

#define TESTDATA "/usr/share/libonnx-testdata/data"

static nm_ctx *ctx;
static int models, tensors_read, tensors_unsupported, cases_not_tensor;

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static void scan_case(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    struct Onnx__ModelProto *m;
    nm_status st = nm_onnx_model_read(ctx, path, &m);
    char what[5000];
    snprintf(what, sizeof what, "model parses: %s (%s)", path, nm_ctx_message(ctx));
    int all_tensors = 1;
    if (check_true(what, st == NM_OK)) {
        models++;
        /* as the ONNX runner does: the graph's declared types say what the
         * .pb files hold; sequences and optionals are not TensorProto */
        const Onnx__GraphProto *g = m->graph;
        for (size_t i = 0; i < g->n_input + g->n_output; i++) {
            const Onnx__ValueInfoProto *v = i < g->n_input ? g->input[i] : g->output[i - g->n_input];
            if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) all_tensors = 0;
        }
        nm_onnx_model_free(ctx, m);
    }
    if (!all_tensors) {
        cases_not_tensor++;
        return;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "test_data_set_", 14)) continue;
        char sub[2048];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *f;
        while (d2 && (f = readdir(d2))) {
            size_t n = strlen(f->d_name);
            if (n < 3 || strcmp(f->d_name + n - 3, ".pb")) continue;
            snprintf(path, sizeof path, "%s/%s", sub, f->d_name);
            nm_array a;
            st = nm_onnx_tensor_read(ctx, path, &a);
            snprintf(what, sizeof what, "tensor %s: %s", path, nm_ctx_message(ctx));
            check_true(what, st == NM_OK || st == NM_ERR_UNSUPPORTED);
            if (st == NM_OK) {
                tensors_read++;
                nm_array_free(ctx, &a);
            } else if (st == NM_ERR_UNSUPPORTED) {
                tensors_unsupported++;
            }
        }
        if (d2) closedir(d2);
    }
    if (d) closedir(d);
}

static void scan_all(void)
{
    const char *groups[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    for (int g = 0; g < 4; g++) {
        char gdir[512];
        snprintf(gdir, sizeof gdir, TESTDATA "/%s", groups[g]);
        DIR *d = opendir(gdir);
        check_true("conformance data installed (scripts/setup.sh)", d != NULL);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char cdir[1024];
            snprintf(cdir, sizeof cdir, "%s/%s", gdir, e->d_name);
            if (is_dir(cdir)) scan_case(cdir);
        }
        if (d) closedir(d);
    }
    printf("  %d models parsed; %d tensors read, %d refused as unsupported element types; "
           "%d cases skipped (sequence/optional values, not tensors)\n",
           models, tensors_read, tensors_unsupported, cases_not_tensor);
    check_true("hundreds of models", models > 500);
}

/* output of an elementwise case against the op applied to its input */
static void elementwise(const char *name, float (*op)(float))
{
    char in[512], out[512];
    snprintf(in, sizeof in, TESTDATA "/node/%s/test_data_set_0/input_0.pb", name);
    snprintf(out, sizeof out, TESTDATA "/node/%s/test_data_set_0/output_0.pb", name);
    nm_array x, y;
    if (!check_true(name, nm_onnx_tensor_read(ctx, in, &x) == NM_OK && nm_onnx_tensor_read(ctx, out, &y) == NM_OK))
        return;
    check_true("same shape", x.ndim == y.ndim && nm_array_numel(&x) == nm_array_numel(&y) && x.dtype == NM_F32);
    for (int64_t i = 0; i < nm_array_numel(&x); i++)
        check_close(name, ((float *)y.data)[i], op(((float *)x.data)[i]), EXACT, EXACT);
    printf("  %s: %lld elements checked\n", name, (long long)nm_array_numel(&x));
    nm_array_free(ctx, &x);
    nm_array_free(ctx, &y);
}
static float relu(float x) { return x > 0 ? x : 0; }
static float neg(float x) { return -x; }
static float ident(float x) { return x; }

static void bad_files(void)
{
    const char *src = TESTDATA "/node/test_relu/model.onnx";
    uint8_t *buf;
    size_t len;
    if (!check_true("read model bytes", nm_read_file(ctx, src, 1 << 20, &buf, &len) == NM_OK)) return;
    FILE *f = fopen(check_tmp("trunc.onnx"), "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    struct Onnx__ModelProto *m;
    check_true("truncated model refused", nm_onnx_model_read(ctx, check_tmp("trunc.onnx"), &m) == NM_ERR_FORMAT);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        buf[i] = (uint8_t)s;
    }
    f = fopen(check_tmp("random.onnx"), "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    nm_status st = nm_onnx_model_read(ctx, check_tmp("random.onnx"), &m);
    check_true("random bytes refused", st == NM_ERR_FORMAT);
    /* a tensor claiming 2^40 elements with 8 bytes of data: refused without allocating */
    const uint8_t huge[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, /* dims: 2^40 */
                            0x10, 0x01,                               /* data_type FLOAT */
                            0x4a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};      /* raw_data 8 bytes */
    f = fopen(check_tmp("huge.pb"), "wb");
    fwrite(huge, 1, sizeof huge, f);
    fclose(f);
    nm_array a;
    st = nm_onnx_tensor_read(ctx, check_tmp("huge.pb"), &a);
    check_true("2^40-element tensor refused", st == NM_ERR_FORMAT && strstr(nm_ctx_message(ctx), "1099511627776"));
    /* every allocation failing in turn while parsing a real model */
    int injected = 0;
    for (long k = 1; k < 200; k++) {
        nm_ctx_fail_alloc_after(ctx, k);
        st = nm_onnx_model_read(ctx, src, &m);
        nm_ctx_fail_alloc_after(ctx, 0);
        if (st == NM_OK) {
            nm_onnx_model_free(ctx, m);
            break;
        }
        injected++;
        check_true("injected failure -> NM_ERR_NOMEM", st == NM_ERR_NOMEM);
    }
    printf("  allocation failure injected at %d points of model parsing\n", injected);
    nm_free(ctx, buf);
}

int main(void)
{
    ctx = nm_ctx_create();
    scan_all();
    elementwise("test_relu", relu);
    elementwise("test_neg", neg);
    elementwise("test_identity", ident);
    bad_files();
    nm_ctx_free(ctx);
    return check_finish("test_onnx_tensor");
}
