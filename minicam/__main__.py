"""Command line: ``python -m minicam <command>``; ``--help`` lists the commands."""

import argparse
import sys
import time

import numpy as np


def _fail(command, message):
    """The one line every command prints on bad input; exit status 2 (argparse's)."""
    print(f"python -m minicam {command}: error: {message}", file=sys.stderr)
    return 2


def _cmd_gradcheck(args):
    from . import gradcheck as gc

    if args.seed < 0:
        return _fail("gradcheck", f"--seed must be >= 0, got {args.seed}")

    rows = []  # (what, quantity, error, tolerance)
    t0 = time.perf_counter()
    for label, layer, x in gc.layer_cases(seed=args.seed):
        for quantity, err in gc.check_layer(layer, x, rng=args.seed).items():
            rows.append((label, "d" + quantity, err, gc.LAYER_TOL))
    rng = np.random.default_rng(args.seed)
    x = gc.kink_free_input((2, 3, 5, 4), rng)
    dout = rng.standard_normal(x.shape)
    for mode, err in gc.relu_rule_errors(x, dout).items():
        # A rule is exact elementwise arithmetic: any difference is a bug.
        rows.append((f"ReLU backward rule, mode={mode!r}", "max |dx - rule|", err, 0.0))
    for label, model, xm, ym in gc.model_cases(seed=args.seed):
        errors = gc.check_model(model, xm, ym)
        worst = max(errors, key=errors.get)
        rows.append((label, f"all {len(errors)} tensors (worst: d{worst})", errors[worst], gc.MODEL_TOL))
    elapsed = time.perf_counter() - t0

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    header = f"{'check':<{w0}}  {'quantity':<{w1}}  {'error':>10}  {'limit':>7}  result"
    print(header)
    print("-" * len(header))
    failures = 0
    for what, quantity, err, tol in rows:
        ok = err <= tol
        failures += not ok
        print(f"{what:<{w0}}  {quantity:<{w1}}  {err:10.2e}  {tol:7.0e}  {'PASS' if ok else 'FAIL'}")
    print("-" * len(header))
    print(
        f"{len(rows) - failures} passed, {failures} failed  "
        f"(central differences, h=1e-5, float64, random upstream gradients; {elapsed:.1f} s)"
    )
    return 1 if failures else 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``python -m minicam <cmd>: error: ...`` and exit 2, like every command's own."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="python -m minicam",
        description="minicam: a pure-NumPy reference for class activation maps.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    # One line per command; each _add_<command> function lives below.
    _add_gradcheck(sub)
    _add_check_torch(sub)
    _add_demo(sub)
    _add_explain(sub)
    _add_train(sub)
    _add_evaluate_model(sub)
    _add_evaluate(sub)
    _add_bench(sub)
    return parser


def _add_gradcheck(sub):
    p = sub.add_parser(
        "gradcheck",
        help="check every layer's backward (and every ReLU mode) against central differences",
        description="Check every layer's backward pass, every ReLU backward rule and three small "
        "whole models against central differences in float64; exit 1 on any failure.",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs and weights (default 0)")
    p.set_defaults(func=_cmd_gradcheck)


def _cmd_check_torch(args):
    from .interop.compare import check_torch

    try:
        return check_torch(
            args.model, args.input_shape, builder=args.builder, state_dict=args.state_dict, method=args.method,
            layer=args.layer, class_idx=args.class_idx, seed=args.seed, dtype=args.dtype, rtol=args.rtol,
        )
    except (ImportError, FileNotFoundError, ValueError, TypeError) as err:
        return _fail("check-torch", err)


def _add_check_torch(sub):
    from .interop.compare import METHODS  # torch-free: the module imports torch only when it runs

    p = sub.add_parser(
        "check-torch",
        help="check your own PyTorch model against minicam: logits, gradients and maps side by side",
        description="Import a PyTorch nn.Sequential (built by a Python file, optionally with a saved state dict) "
        "into minicam, run one explanation method through minicam and through captum/torch.autograd on the same "
        "random input, and print the largest absolute and relative difference per quantity (logits, input "
        "gradient, layer output and gradient, the method's map). The model is put in eval mode. Exit 0 when every "
        "quantity agrees within --rtol, 1 when one does not, 2 on bad input (unsupported layer, a state dict that "
        "does not fit, an input shape that does not fit). Needs torch and captum: pip install torch==2.13.0 captum.",
    )
    p.add_argument("--model", required=True, metavar="FILE.py", help="Python file defining the model (e.g. examples/tiny_cnn.py)")
    p.add_argument("--builder", default="build_model", metavar="NAME",
                   help="function in FILE.py returning the nn.Sequential, or an nn.Sequential variable (default build_model)")
    p.add_argument("--state-dict", default=None, metavar="FILE.pt", help="state dict saved with torch.save(model.state_dict(), FILE.pt)")
    p.add_argument("--input-shape", required=True, metavar="N,C,H,W", help="shape of the random input, e.g. 2,3,32,32")
    p.add_argument("--method", default="grad-cam", choices=METHODS, help="explanation to compare (default grad-cam)")
    p.add_argument("--layer", default=None, help="feature map: minicam name (features_8) or torch path (features.8); default the last 4-D output")
    p.add_argument("--class-idx", type=int, default=None, metavar="K", help="class to explain (default: the predicted class of each sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random normal input and of torch's initialisation while the model is built (default 0)")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="precision of both computations (default float64)")
    p.add_argument("--rtol", type=float, default=None, help="largest accepted relative difference (default 1e-10 in float64, 1e-4 in float32)")
    p.set_defaults(func=_cmd_check_torch)


def _cmd_demo(args):
    from .demo import run_demo

    from .demo import output_folder_problem

    problem = output_folder_problem(args.out, "--out")
    if problem:
        return _fail("demo", problem)
    if not 20 <= args.dpi <= 600:
        return _fail("demo", f"--dpi must be in [20, 600], got {args.dpi}")
    report = run_demo(args.out, dpi=args.dpi)
    return 0 if report["identity_ok"] else 1


def _add_demo(sub):
    p = sub.add_parser(
        "demo",
        help="explain held-out images with the bundled models; write figures and a short report",
        description="Load the bundled models (shapes-gap, shapes-fc, digits-gap), explain held-out shapes, "
        "digits and a two-object scene with CAM, Grad-CAM, guided backprop, Guided Grad-CAM and the "
        "counterfactual, write the figures as PNG and print a report. Checks live that Grad-CAM before "
        "its ReLU equals CAM / (h*w) on the GAP model; exit 1 if the error exceeds 1e-10.",
    )
    p.add_argument("--out", default="minicam-demo", help="directory for the PNG figures (default: minicam-demo)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the figures (default 100)")
    p.set_defaults(func=_cmd_demo)


def _cmd_explain(args):
    from .demo import explain_image, parse_class

    from .demo import output_file_problem

    problem = output_file_problem(args.out, "--out", suffix=".png")
    if problem:
        return _fail("explain", problem)
    try:
        class_idx = parse_class(args.model, args.class_)
        if args.text:
            _check_text_model(args.model)
        result = explain_image(args.image, args.model, args.method, class_idx=class_idx, layer=args.layer,
                               out=args.out)
        if args.text:
            print(_explain_text(args.model, result))
    except (FileNotFoundError, ValueError, TypeError) as err:
        return _fail("explain", err)
    return 0


def _check_text_model(name):
    from .zoo import PRETRAINED

    if name in PRETRAINED and PRETRAINED[name]["architecture"] == "embed":
        raise ValueError(f"--text explains a class score; {name} is an embedding network with no classes")


def _explain_text(name, result):
    """The sentence of ``diagnose.explain_text`` for the explained image (the concept table is cached)."""
    from .diagnose.concepts import explain_text, pretrained_concepts
    from .zoo import PRETRAINED, pretrained

    sentence, _ = explain_text(pretrained(name), result["image"][None], result["class_idx"],
                               concepts=pretrained_concepts(name), class_names=PRETRAINED[name]["class_names"])
    return sentence


def _add_explain(sub):
    from .demo import EMBEDDING_METHODS, METHODS

    p = sub.add_parser(
        "explain",
        help="explain your own image file with a bundled model and one method",
        description="Explain an image file (any size and mode Pillow reads) with a bundled model: it is "
        "converted to the model's channels, resized to its input size (with a message), classified, "
        "and explained for the predicted class or --class; the figure is written to --out.",
    )
    p.add_argument("image", help="path of an image file (PNG, JPEG, ...)")
    p.add_argument("--model", required=True, help="bundled model: shapes-gap, shapes-fc, digits-gap or shapes-embed")
    p.add_argument("--method", required=True, metavar="METHOD", help="one of: " + ", ".join(METHODS) + "; for shapes-embed: " + ", ".join(EMBEDDING_METHODS))
    p.add_argument("--class", dest="class_", default=None, metavar="K",
                   help="class to explain, as an index or a name (default: the predicted class)")
    p.add_argument("--layer", default=None, help="feature-map layer of the CAM methods (default: the last 4-D output)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="PNG file to write (its name must end in .png)")
    p.add_argument("--text", action="store_true",
                   help="also print a sentence naming the last conv layer's channels that argue for and against the "
                        "class (Grad-CAM contributions; channels named by dissecting 200 images of the model's "
                        "dataset, seed 7, on first use)")
    p.set_defaults(func=_cmd_explain)


def _cmd_train(args):
    import os

    from . import io, recipes, zoo

    t0, c0 = time.perf_counter(), time.process_time()
    command = (
        f"python -m minicam train --dataset {args.dataset} --model {args.model} --epochs {args.epochs} "
        f"--batch-size {args.batch_size} --lr {args.lr:g} --warmup {args.warmup:g} --seed {args.seed} "
        f"--n-train {args.n_train}"
        + (f" --features-from {args.features_from}" if args.features_from else "")
        + f" --out {args.out}"
    )
    for flag, value, choices in (("--dataset", args.dataset, zoo.TRAINING_DATA), ("--model", args.model, zoo.ARCHITECTURES)):
        if value not in choices:
            print(f"python -m minicam train: error: {flag} must be one of {sorted(choices)}, got {value!r}", file=sys.stderr)
            return 2
    # the output is checked before the work (minutes of training) starts
    from .demo import output_file_problem

    problem = output_file_problem(args.out, "--out")
    if problem:
        return _fail("train", problem)
    try:
        model, metadata = recipes.train_reference(
            args.dataset, args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, n_train=args.n_train, warmup=args.warmup, features_from=args.features_from,
        )
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"python -m minicam train: error: {err}", file=sys.stderr)
        return 2
    metadata["command"] = command
    io.save(model, args.out, metadata=metadata)
    # CPU time (all threads of this process) next to wall-clock time: on a
    # shared machine the wall-clock time depends on the other processes.
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"saved {args.out} ({os.path.getsize(args.out) / 1024:.0f} KiB, float32 weights, loads as float64); "
        f"wall-clock {wall:.1f} s, CPU {cpu:.1f} s",
        flush=True,
    )
    return 0


def _add_train(sub):
    p = sub.add_parser(
        "train",
        help="train a reference architecture (gap or fc) on shapes or digits and save it",
        description="Generate training data, train zoo.gap_net or zoo.fc_net in float32 with Adam and a cosine "
        "learning-rate schedule (one line per epoch), report the accuracy on fresh held-out data (float64, as "
        "zoo.pretrained loads it) and save one .npz model file. The same arguments rebuild the same file. "
        "The bundled models were made by the commands in minicam.zoo.PRETRAINED.",
    )
    p.add_argument("--dataset", required=True, help="shapes or digits")
    p.add_argument("--model", required=True, help="gap (conv blocks, GAP, linear) or fc (conv blocks, flatten, two linear)")
    p.add_argument("--epochs", type=int, default=4, help="passes over the training data (default 4)")
    p.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's peak learning rate, cosine-decayed (default 3e-3)")
    p.add_argument("--warmup", type=float, default=0.0, help="epochs of linear learning-rate warm-up (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initial weights and the shuffles (default 0)")
    p.add_argument("--n-train", type=int, default=6000, help="number of training images (default 6000)")
    p.add_argument("--features-from", default=None, metavar="MODEL.npz",
                   help="copy and freeze the convolutional blocks of this trained model; train only the layers "
                   "after the feature map (how shapes-fc is made from shapes-gap)")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    p.set_defaults(func=_cmd_train)


def _cmd_evaluate_model(args):
    from . import recipes, train

    try:
        res = recipes.evaluate_pretrained(args.name, n=args.n, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"python -m minicam evaluate-model: error: {err}", file=sys.stderr)
        return 2
    extra = ", ".join(f"{k}={v!r}" for k, v in res["kwargs"].items())
    print(
        f"{args.name}: accuracy {100.0 * res['accuracy']:.2f}% on {res['n']} fresh {res['dataset']} images "
        f"(seed {res['seed']}{', ' + extra if extra else ''}), loss {res['loss']:.4f}"
    )
    print()
    print(train.format_confusion_matrix(res["confusion"], res["class_names"]))
    return 0


def _add_evaluate_model(sub):
    p = sub.add_parser(
        "evaluate-model",
        help="held-out accuracy and confusion matrix of a bundled model",
        description="Load a bundled model (shapes-gap, shapes-fc, digits-gap), generate fresh held-out images "
        "(never used in training; for digits, handwriting held out of training) and print the accuracy and "
        "the confusion matrix with the class names.",
    )
    p.add_argument("name", help="bundled model: shapes-gap, shapes-fc or digits-gap")
    p.add_argument("--n", type=int, default=None, help="number of held-out images (default: 500 shapes, 1000 digits)")
    p.add_argument("--seed", type=int, default=None, help="seed of the held-out images (default 123)")
    p.set_defaults(func=_cmd_evaluate_model)


def _cmd_evaluate(args):
    import datetime
    import os

    from . import evaluation

    def fail(message):
        print(f"python -m minicam evaluate: error: {message}", file=sys.stderr)
        return 2

    # Everything is checked before the work starts: a bad argument costs nothing.
    try:
        models = evaluation.check_models([m.strip() for m in args.models.split(",") if m.strip()])
    except ValueError as err:
        return fail(f"--models: {err}")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        return fail(f"--out {args.out} exists and is not a folder")
    parent = out if os.path.isdir(out) else os.path.dirname(out)
    if not os.path.isdir(parent):
        return fail(f"--out: the folder {parent} that would hold {args.out} does not exist")
    if not os.access(parent, os.W_OK):
        return fail(f"--out: cannot write into {parent}")
    if args.dpi < 20 or args.dpi > 600:
        return fail(f"--dpi must be in [20, 600], got {args.dpi}")
    size = "quick" if args.quick else "default"
    command = "python -m minicam evaluate" + (" --quick" if args.quick else "") + f" --models {','.join(models)}"

    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    results = evaluation.run(models, size=size, say=lambda line: print(line, file=sys.stderr, flush=True))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"Made by `{command}` on {stamp} ({time.perf_counter() - t0:.0f} s).", ""]
    for name, res in results.items():
        n = res["n"]
        parts += [f"### {name}", "",
                  f"{n['images']} held-out shapes (seed {evaluation.SHAPES_SEED}; deletion/insertion and occlusion "
                  f"rank correlation on the first {n['curves']}), "
                  + (f"{n['scenes']} two-object scenes (seed {evaluation.SCENES_SEED})" if n["scenes"] else
                     "no two-object scenes (a Flatten head takes 32x32 inputs only; two objects need 48 px)")
                  + f", cascading randomization on {n['cascade']} images; pointing "
                  f"tolerance {res['tolerance']:.1f} px.", "", evaluation.markdown_table(res), ""]
        evaluation.write_figures(name, res, out, dpi=args.dpi)
    text = "\n".join(parts)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    evaluation.write_csv(results, os.path.join(out, "results.csv"))
    print(text)
    print(f"wrote results.md, results.csv and {3 * len(results)} figures to {out}", file=sys.stderr)
    return 0


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate",
        help="benchmark every explanation method with the papers' metrics on the bundled models",
        description="Score every explanation method (and two baselines: a seeded random map and a centred "
        "Gaussian) on fresh held-out data with the papers' metrics: localization (15%% rule), pointing game, "
        "energy in the mask, class discrimination on two-object scenes, rank correlation with occlusion, "
        "deletion/insertion, Average Drop, Increase in Confidence and cascading randomization. Prints a "
        "Markdown table per model and writes it with a CSV and figures into --out. Progress goes to stderr.",
    )
    p.add_argument("--out", default="minicam-eval", help="folder for results.md, results.csv and the figures (default minicam-eval)")
    p.add_argument("--models", default="shapes-gap,shapes-fc", help="comma-separated bundled models (default shapes-gap,shapes-fc)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds), for tests: the numbers are not meaningful")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the figures (default 100)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_bench(argv):
    from .bench import main as bench_main

    return bench_main(argv)


def _add_bench(sub):
    p = sub.add_parser(
        "bench",
        add_help=False,  # `bench --help` is answered by minicam.bench's own parser
        help="time minicam's kernels, a training step and explanations side by side with PyTorch/captum",
        description="Run minicam.bench (see `python -m minicam bench --help`).",
    )
    p.set_defaults(func=lambda args: _cmd_bench([]))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # bench parses its own options (minicam.bench), --help included
        return _cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
