/*
 * commands.h — the subcommand registry: one line per subcommand,
 * CLI_COMMAND(name, function, summary), in the order `netmoments --help`
 * lists them. main.c expands it into the declarations and the dispatch
 * table; a new subcommand is its cli/cmd_<name>.c (picked up by the build)
 * and one line here.
 */
CLI_COMMAND("moments", cmd_moments, "the main job: mean and variance of a model's logits under Gaussian input noise")
CLI_COMMAND("ara", cmd_ara, "moments of an Affine-ReLU-Affine network (analytic, optionally Monte Carlo)")
CLI_COMMAND("ara-example", cmd_ara_example, "write a random ARA network and input mean as NPY files")
CLI_COMMAND("tightness", cmd_tightness, "the paper's tightness experiments: Fig 2 (synthetic nets) and Table 1 (LeNet)")
CLI_COMMAND("linpoints", cmd_linpoints, "the paper's Table 3: linearizing at k-means centres instead of at each digit")
CLI_COMMAND("reproduce", cmd_reproduce, "run Fig 2, Table 1 and Table 3 and write a report with the paper's numbers")
CLI_COMMAND("uap", cmd_uap, "a universal adversarial perturbation (DeepFool steps over a data split) as NPY")
CLI_COMMAND("fooling", cmd_fooling, "fooling-rate prediction, top-k ordering (Table 2) and flip probabilities under a perturbation")
CLI_COMMAND("sensitivity", cmd_sensitivity, "spatial sensitivity maps (Fig 3): a noise window slid over the images, fooled in expectation per position")
CLI_COMMAND("robustness", cmd_robustness, "accuracy under Gaussian input noise at many levels for one or several models, and its area under the curve")
CLI_COMMAND("attack", cmd_attack, "the Gaussian targeted attack (Eq 3): noise that fools the net in expectation, verified by sampling")
CLI_COMMAND("info", cmd_info, "a model's nodes, shapes, parameters and ReLU split points (--ops: the supported ops)")
CLI_COMMAND("ops", cmd_ops, "the ONNX ops the loader supports: their role in the moments and their attributes")
CLI_COMMAND("forward", cmd_forward, "run a model on a batch of inputs (NPY in, NPY out)")
CLI_COMMAND("train", cmd_train, "train a LeNet or MLP on MNIST or Fashion-MNIST and write it as ONNX")
CLI_COMMAND("eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix of a model")
