/*
 * test_conformance.c — the network engine against the ONNX conformance data
 * of Debian's libonnx-testdata (node, pytorch-converted, pytorch-operator,
 * simple). For every case: load the model (graph inputs after the first are
 * bound to their test tensors as constants), run forward on input 0, and
 * compare with output 0 within 1e-4 relative or 1e-5 absolute. A case is
 * skipped only when the loader answers NM_ERR_UNSUPPORTED (or its tensors
 * are not float); the reason is printed for every skipped case whose ops
 * are all in the supported list, and reasons are tallied for the rest.
 * Any other failure of a case fails the test.
 */
#include "netmoments.h"
#include "../src/net.h"
#include "check.h"
#include "onnx.pb-c.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TESTDATA "/usr/share/libonnx-testdata/data"
#define TOL_ABS 1e-5
#define TOL_REL 1e-4

static nm_ctx *ctx;
static int ran, passed, skipped, skipped_supported, round_trips;

/* Saves net as ONNX, loads it back and checks the reloaded net gives the
 * same output on x, element for element. */
static void round_trip(const char *dir, nm_net *net, const nm_array *x, const nm_array *y)
{
    char path[64], what[4200];
    snprintf(path, sizeof path, "%s", check_tmp("roundtrip.onnx"));
    nm_status st = nm_net_write_onnx(ctx, net, path);
    if (st == NM_ERR_UNSUPPORTED) return; /* e.g. an opset-6 channel PRelu has no opset-13 spelling */
    snprintf(what, sizeof what, "%s: save: %s", dir, nm_ctx_message(ctx));
    if (!check_true(what, st == NM_OK)) return;
    nm_net *back;
    st = nm_net_read_onnx(ctx, path, &back);
    snprintf(what, sizeof what, "%s: reload: %s", dir, nm_ctx_message(ctx));
    if (check_true(what, st == NM_OK)) {
        nm_array y2;
        st = nm_net_forward(ctx, back, 0, -1, x, &y2);
        snprintf(what, sizeof what, "%s: reloaded net runs: %s", dir, nm_ctx_message(ctx));
        if (check_true(what, st == NM_OK)) {
            int same = nm_array_numel(&y2) == nm_array_numel(y);
            for (int64_t i = 0; same && i < nm_array_numel(y); i++)
                same = ((float *)y2.data)[i] == ((float *)y->data)[i];
            snprintf(what, sizeof what, "%s: reloaded net gives the same output", dir);
            round_trips += check_true(what, same);
            nm_array_free(ctx, &y2);
        }
        nm_net_free(ctx, back);
    }
    remove(path);
}

#define MAX_REASONS 256
static char reasons[MAX_REASONS][160];
static int reason_count[MAX_REASONS], nreasons;

static void tally(const char *reason)
{
    for (int i = 0; i < nreasons; i++)
        if (strcmp(reasons[i], reason) == 0) {
            reason_count[i]++;
            return;
        }
    if (nreasons < MAX_REASONS) {
        snprintf(reasons[nreasons], sizeof reasons[0], "%s", reason);
        reason_count[nreasons++] = 1;
    }
}

/* The skip reason without the node's name, so that reasons tally. */
static void reason_of(const char *msg, char *out, size_t len)
{
    const char *p = strstr(msg, "): ");
    const char *q = strstr(msg, "': op ");
    if (q) snprintf(out, len, "op%s", q + 5);
    else if (p && strncmp(msg, "node '", 6) == 0) snprintf(out, len, "%s", p + 3);
    else snprintf(out, len, "%s", msg);
}

static int all_ops_supported(const Onnx__GraphProto *g)
{
    for (size_t k = 0; k < g->n_node; k++) {
        const char *t = g->node[k]->op_type;
        int ok = strcmp(t, "Constant") == 0;
        for (int op = 0; op < NM_OP_COUNT && !ok; op++) ok = strcmp(nm_op_table[op]->name, t) == 0;
        if (!ok) return 0;
    }
    return 1;
}

static Onnx__TensorProto *read_tensor(const char *path)
{
    uint8_t *buf;
    size_t len;
    if (nm_read_file(ctx, path, (size_t)1 << 31, &buf, &len) != NM_OK) return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    nm_free(ctx, buf);
    return t;
}

static void skip(const char *dir, int supported_ops, const char *msg)
{
    char r[160];
    reason_of(msg, r, sizeof r);
    tally(r);
    skipped++;
    if (supported_ops) {
        skipped_supported++;
        printf("  skipped %s: %s\n", strrchr(dir, '/') + 1, msg);
    }
}

static void run_case(const char *dir)
{
    char path[4096], what[4600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    Onnx__ModelProto *m;
    if (!check_true(path, nm_onnx_model_read(ctx, path, &m) == NM_OK)) return;
    const Onnx__GraphProto *g = m->graph;
    int supported = all_ops_supported(g);
    /* graph inputs that are not initializers, in order */
    const char *names[16];
    int nin = 0;
    for (size_t i = 0; i < g->n_input && nin < 16; i++) {
        int init = 0;
        for (size_t j = 0; j < g->n_initializer; j++) init |= strcmp(g->initializer[j]->name, g->input[i]->name) == 0;
        if (!init) names[nin++] = g->input[i]->name;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "test_data_set_", 14)) continue;
        Onnx__TensorProto *bound[16] = {0};
        int ok = nin >= 1;
        for (int i = 1; i < nin && ok; i++) {
            snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, e->d_name, i);
            ok = (bound[i] = read_tensor(path)) != NULL;
        }
        nm_net *net = NULL;
        nm_status st = ok ? nm_net_from_model(ctx, m, nin - 1, names + 1, (const Onnx__TensorProto *const *)bound + 1, &net)
                          : NM_ERR_UNSUPPORTED;
        if (!ok) skip(dir, supported, "no graph input or unreadable input tensors");
        else if (st == NM_ERR_UNSUPPORTED) skip(dir, supported, nm_ctx_message(ctx));
        else {
            snprintf(what, sizeof what, "%s loads: %s", dir, nm_ctx_message(ctx));
            if (check_true(what, st == NM_OK)) {
                nm_array x, want, got;
                snprintf(path, sizeof path, "%s/%s/input_0.pb", dir, e->d_name);
                nm_status sx = nm_onnx_tensor_read(ctx, path, &x);
                snprintf(path, sizeof path, "%s/%s/output_0.pb", dir, e->d_name);
                nm_status sy = nm_onnx_tensor_read(ctx, path, &want);
                if (sx == NM_ERR_UNSUPPORTED || sy == NM_ERR_UNSUPPORTED) {
                    skip(dir, supported, "input or output tensor is not float");
                } else if (check_true(path, sx == NM_OK && sy == NM_OK)) {
                    ran++;
                    st = nm_net_forward(ctx, net, 0, -1, &x, &got);
                    snprintf(what, sizeof what, "%s runs: %s", dir, nm_ctx_message(ctx));
                    int good = check_true(what, st == NM_OK);
                    if (good) {
                        int64_t n = nm_array_numel(&want);
                        snprintf(what, sizeof what, "%s output size %lld vs %lld", dir, (long long)nm_array_numel(&got), (long long)n);
                        good = check_true(what, nm_array_numel(&got) == n);
                        double *w;
                        if (good && nm_array_to_f64(ctx, &want, &w) == NM_OK) {
                            const float *gf = got.data;
                            for (int64_t i = 0; i < n; i++) {
                                snprintf(what, sizeof what, "%s output[%lld]", dir, (long long)i);
                                good &= check_close(what, gf[i], w[i], TOL_ABS, TOL_REL);
                            }
                            nm_free(ctx, w);
                        }
                        if (good) round_trip(dir, net, &x, &got);
                        nm_array_free(ctx, &got);
                    }
                    passed += good;
                }
                nm_array_free(ctx, &x);
                nm_array_free(ctx, &want);
            }
        }
        nm_net_free(ctx, net);
        for (int i = 1; i < nin; i++)
            if (bound[i]) onnx__tensor_proto__free_unpacked(bound[i], NULL);
    }
    if (d) closedir(d);
    nm_onnx_model_free(ctx, m);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    ctx = nm_ctx_create();
    const char *groups[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    for (int gi = 0; gi < 4; gi++) {
        char root[512];
        snprintf(root, sizeof root, "%s/%s", TESTDATA, groups[gi]);
        DIR *d = opendir(root);
        if (!check_true(root, d != NULL)) continue;
        char *cases[4096];
        int nc = 0;
        struct dirent *e;
        while ((e = readdir(d)) && nc < 4096)
            if (e->d_name[0] != '.') cases[nc++] = strdup(e->d_name);
        closedir(d);
        qsort(cases, (size_t)nc, sizeof cases[0], cmp_str);
        for (int i = 0; i < nc; i++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", root, cases[i]);
            run_case(dir);
            free(cases[i]);
        }
    }
    printf("skip reasons (cases):\n");
    for (int i = 0; i < nreasons; i++) printf("  %4d  %s\n", reason_count[i], reasons[i]);
    printf("conformance: %d ran, %d passed, %d failed; %d skipped (%d of them use only supported op types); %d passed cases saved, reloaded and reproduced\n",
           ran, passed, ran - passed, skipped, skipped_supported, round_trips);
    nm_ctx_free(ctx);
    check_true("at least 100 cases ran", ran >= 100);
    return check_finish("test_conformance");
}
