/*
 * test_robustness.c — accuracy under Gaussian noise (nm_robustness_run) on
 * the shipped LeNet and held-out digits, against a computation of its own:
 * the noise the documented streams give (image i: stream i, the same ε at
 * every level) drawn here, x + σ ε run through nm_net_forward one copy at a
 * time and the labels counted — the same counts; at σ = 0 the clean
 * accuracy from one forward pass per image; the same on 1 and 2 threads;
 * the area under the curve against closed forms (a constant and a straight
 * line); refusals of a negative or non-finite σ, a label beyond the classes,
 * no copies, no images.
 */
#include "netbuild.h"
#include "check.h"

#include <omp.h>

#define IMAGES 12
#define MC 6

static int argmax(const float *y, int64_t d)
{
    int a = 0;
    for (int64_t i = 1; i < d; i++)
        if (y[i] > y[a]) a = (int)i;
    return a;
}

/* The label of x through nm_net_forward. */
static int label_of(nm_net *net, const float *x)
{
    nm_array in = {NM_F32, 4, {1, 1, 28, 28}, (void *)x}, out = {0};
    int c = -1;
    if (nm_net_forward(ctx, net, 0, nm_net_logits_node(net), &in, &out) == NM_OK) c = argmax(out.data, out.shape[1]);
    nm_array_free(ctx, &out);
    return c;
}

int main(void)
{
    ctx = nm_ctx_create();
    nm_net *net = NULL;
    nm_dataset ds = {0};
    if (!check_have("data/mnist/test-images-idx3-ubyte.gz")) return check_finish("test_robustness");
    check_true("the shipped model and the digits load",
               nm_net_read_onnx(ctx, "models/lenet-mnist.onnx", &net) == NM_OK &&
                   nm_dataset_read_idx(ctx, "data/mnist/test-images-idx3-ubyte.gz", "data/mnist/test-labels-idx1-ubyte.gz", &ds) == NM_OK);
    int64_t index[IMAGES], n = 784;
    uint8_t labels[IMAGES];
    float X[IMAGES * 784];
    for (int i = 0; i < IMAGES; i++) index[i] = i * (ds.n / IMAGES), labels[i] = ds.labels[index[i]];
    check_true("images", nm_dataset_images(ctx, &ds, index, IMAGES, nm_net_get_input_scale(net), X) == NM_OK);
    double sigmas[3] = {0, 60, 150}, acc[3], acc1[3];
    nm_robustness_options o = nm_robustness_options_default();
    o.mc = MC, o.seed = 5;
    check_true("runs", nm_robustness_run(ctx, net, X, labels, IMAGES, 3, sigmas, &o, acc) == NM_OK);

    /* the same noise, drawn here, one copy at a time */
    nm_rng rng = {5};
    float *eps = malloc(sizeof(float) * MC * 784), x[784];
    int64_t correct[3] = {0}, clean = 0;
    for (int i = 0; i < IMAGES; i++) {
        nm_rng_normals(&rng, (uint64_t)i, 0, MC * n, eps);
        clean += label_of(net, X + i * n) == labels[i];
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < MC; k++) {
                for (int64_t t = 0; t < n; t++) x[t] = X[i * n + t] + (float)sigmas[s] * eps[k * n + t];
                correct[s] += label_of(net, x) == labels[i];
            }
    }
    for (int s = 0; s < 3; s++) check_close("accuracy = the copies counted one at a time", acc[s], correct[s] / (double)(IMAGES * MC), 1e-15, 0);
    check_close("at sigma 0: the clean accuracy", acc[0], clean / (double)IMAGES, 1e-15, 0);
    printf("accuracy at sigma 0, 60, 150: %.3f %.3f %.3f\n", acc[0], acc[1], acc[2]);

    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    check_true("runs on one thread", nm_robustness_run(ctx, net, X, labels, IMAGES, 3, sigmas, &o, acc1) == NM_OK);
    omp_set_num_threads(nt);
    check_true("the same on 1 and 2 threads", !memcmp(acc, acc1, sizeof acc));

    double xs[3] = {0, 1, 3}, flat[3] = {0.7, 0.7, 0.7}, line[3] = {1, 2.0 / 3, 0};
    check_close("area under a constant curve", nm_robustness_auc(3, xs, flat), 0.7, 1e-15, 0);
    check_close("area under a straight line from 1 to 0", nm_robustness_auc(3, xs, line), 0.5, 1e-15, 0);
    check_close("one level: its accuracy", nm_robustness_auc(1, xs, flat), 0.7, 0, 0);

    double bad[1] = {-1}, nanv[1] = {NAN};
    uint8_t wrong[IMAGES];
    memcpy(wrong, labels, sizeof wrong), wrong[3] = 10;
    check_true("a negative sigma refused", nm_robustness_run(ctx, net, X, labels, IMAGES, 1, bad, &o, acc) == NM_ERR_ARG);
    check_true("a NaN sigma refused", nm_robustness_run(ctx, net, X, labels, IMAGES, 1, nanv, &o, acc) == NM_ERR_ARG);
    check_true("a label beyond the classes refused", nm_robustness_run(ctx, net, X, wrong, IMAGES, 3, sigmas, &o, acc) == NM_ERR_ARG &&
                                                          strstr(nm_ctx_message(ctx), "label 10"));
    o.mc = 0;
    check_true("no copies refused", nm_robustness_run(ctx, net, X, labels, IMAGES, 3, sigmas, &o, acc) == NM_ERR_ARG);
    o.mc = 1;
    check_true("no images refused", nm_robustness_run(ctx, net, X, labels, 0, 3, sigmas, &o, acc) == NM_ERR_ARG);
    free(eps);
    nm_dataset_free(ctx, &ds);
    nm_net_free(ctx, net);
    nm_ctx_free(ctx);
    return check_finish("test_robustness");
}
