#!/usr/bin/env python3
"""fuzz_set.py: throws many `--set KEY=EXPR` overrides at a produced executable and checks the runtime's house
rule for bad input: every run exits 0, 1 or 2; a failing run prints exactly one line "PROG: error: ..." on
stderr (no sanitizer report, no signal, no hang); and no run leaves a *.tmp* file in its --checkpoint-dir.

    fuzz_set.py BINARY DATA_DIR [--seed S] [--count N] [--jobs J] [--timeout T] [--verbose]

The runs are drawn from a fixed seed (the same seed gives the same runs): hand-written values for every recipe
key, values of every kind set on every key, and random byte mutations of valid expressions. A failure prints
the command that reproduces it; the exit status is 1 when a run failed."""

import argparse
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

KEYS = ["data", "test", "validation", "classes", "batch", "epochs", "shuffle", "seed", "workers", "drop_last",
        "transforms", "optimizer", "param_groups", "clip_grad_norm", "clip_grad_value", "accumulate", "schedule",
        "warmup", "loss", "metrics", "early_stop"]

TRAIN_IMG, TRAIN_LBL = '"train-images-idx3-ubyte.gz"', '"train-labels-idx1-ubyte.gz"'
TEST_IMG, TEST_LBL = '"t10k-images-idx3-ubyte.gz"', '"t10k-labels-idx1-ubyte.gz"'

# Values of every kind, tried on every key.
GENERIC = [
    "0", "-0", "1", "-1", "2", "0.0", "-0.0", "0.5", "-0.5", "1e308", "1e308 * 10", "-1e308 * 10", "1e-320",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "99999999999999999999999999999999", "2 ** 63", "2 ** 64", "2 ** 1000", "2 ** 100000", "10 ** 400",
    "1 / 0", "1 // 0", "1 % 0", "0 / 0", "0 ** -1", "0.0 ** -1", "(-8) ** 0.5", "(-8) ** (1 / 3)", "-2 ** 0.5",
    "1e308 * 10 - 1e308 * 10", "(1e308 * 10) * 0", "2 ** -1100", "-(2 ** 63)", "(-2) ** 63", "(-2) ** 64",
    "9223372036854775807 + 1", "-9223372036854775807 - 2", "9223372036854775807 * 2", "(-9223372036854775807 - 1) // -1",
    "(-9223372036854775807 - 1) % -1", "7 // -2", "-7 % 3", "3 ** 40", "1.5 // 0.0", "5 % 0.0",
    '""', '"abc"', "'x'", '"\\n"', '"\\""', '"é"', '"日本語"', '"\\\\"', '"' + "a" * 3000 + '"', '"\\q"', '"abc',
    "none", "true", "false", "None", "True", "nan", "inf", "-inf", "epoch", "step", "x", "lr", "pi", "e",
    "[]", "[[]]", "[[], []]", "[1]", "[1, 2, 3]", "[1, [2, [3, [4]]]]", "[none]", "[true, false]", '["a", 1]',
    "[1,]", "[,]", "[", "]", "[1 2]", "()", "(1)", "((((1))))", "(1, 2)", "f()", "f(1)", "f(1, x = 2)",
    "f(x = 1, x = 2)", "f(x = 1, 2)", "f(= 1)", "f(1,)", "f(,)", "f(", "f)", "f(x =)", "1 +", "* 2", "1 ** ** 2",
    "a" * 300, "a" * 5000, "é", "日本", "α_β", "x.y", "a.b.c", "1.", ".5", "1e", "1e+", "0x10", "1_000", "--1",
    "-" * 200 + "1", "(" * 200 + "1" + ")" * 200, "[" * 200 + "]" * 200, "(" * 5000 + "1" + ")" * 5000,
    "[" * 5000 + "]" * 5000, "-" * 20000 + "1", "f(" * 2000 + ")" * 2000, "1 + " * 3000 + "1", "2 ** " * 200 + "2",
    "", " ", "\t", "#", "1 # comment", "1;", "1 2", "'", '"', "\\", "\x01", "1\x00", "1 == 1", "1 < 2", "not 1",
    "SGD()", "SGD(lr = 0.1)", "Adam()", "accuracy", "[accuracy]", "idx()", "group()", "early_stop()",
    "StepLR(1)", "LambdaLR(epoch)", "scale(2)", "{}", "{1: 2}", "@", "$x", "`", "1.2.3", "1e400", "-1e400",
    "1e-400", "4.9e-324", "1.7976931348623157e308", "0e0", "00", "007", "1" * 400, "0." + "0" * 400 + "1",
]

SPECIFIC = {
    "data": [
        f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 1 / 255)", f"idx({TRAIN_IMG}, {TRAIN_LBL})", f"idx({TRAIN_IMG})",
        "idx()", f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 0)", f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = -1)",
        f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 1e308 * 10)", f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 0 / 0)",
        f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 1 / 255, scale = 2)", f"idx({TRAIN_IMG}, {TRAIN_LBL}, scal = 1)",
        f"idx({TRAIN_IMG}, {TRAIN_LBL}, 1, 2)", f"idx({TRAIN_LBL}, {TRAIN_IMG})", f"idx({TRAIN_IMG}, {TEST_LBL})",
        f"idx({TRAIN_IMG}, {TRAIN_IMG})", f"idx({TRAIN_LBL}, {TRAIN_LBL})", 'idx("", "")', 'idx("/", "/")',
        'idx(".", ".")', 'idx("/dev/null", "/dev/null")', 'idx("/dev/zero", "/dev/zero")', 'idx("nope", "nope")',
        'idx("/proc/self/mem", "/proc/self/mem")', "idx(1, 2)", "idx(none, none)", "idx([], [])",
        f"idx(images = {TRAIN_IMG}, labels = {TRAIN_LBL})", f"idx(labels = {TRAIN_LBL}, images = {TRAIN_IMG})",
        "generate(10)", "generate(0)", "generate(-1)", "generate(10 ** 12)", "generate(2 ** 62)", "generate(1e308 * 10)",
        "generate(10, x = uniform(0, 1))", "generate(10, x = normal(0, -1))", "generate(10, y = 1 / x)",
        "generate(10, y = log(x))", "generate(10, y = epoch)", "generate(10, noise = -1)", "generate(10, seed = -1)",
        "text(\"nope.txt\")", "csv(\"nope.csv\")", "npy(\"nope.npy\")", "images(\"nope\")", "images(\"/\")",
        "SGD(lr = 1)", "split(0.1)", '"train-images-idx3-ubyte.gz"',
    ],
    "test": [
        f"idx({TEST_IMG}, {TEST_LBL}, scale = 1 / 255)", "none", f"idx({TEST_IMG})", 'idx("nope", "nope")',
        f"idx({TEST_IMG}, {TEST_LBL}, scale = 1 / 0)", "generate(3)", "0.1", "validation",
    ],
    "validation": [
        "0.1", "0.5", "0.999", "0", "1", "-0.1", "1.5", "0 / 0", "1e-300", "2", "none",
        f"idx({TEST_IMG}, {TEST_LBL}, scale = 1 / 255)", "split(0.1)", "[0.1]", '"0.1"', "1e308 * 10",
        "63 / 64", "1 / 64", "0.99999999999",
    ],
    "classes": [
        "[]", '["a"]', '["a", "b"]', '["a"] ' , "[1, 2]", '["' + '", "'.join(str(i) for i in range(10)) + '"]',
        '["' + '", "'.join(str(i) for i in range(11)) + '"]', '["' + '", "'.join(str(i) for i in range(1000)) + '"]',
        '["' + "x" * 5000 + '"] * 10', '[["a"]]', '["", "", "", "", "", "", "", "", "", ""]', '["\\n"] * 10', "10",
    ],
    "batch": ["1", "2", "63", "64", "65", "1000", "60000", "2 ** 31", "2 ** 40", "2 ** 62", "2 ** 63 - 1", "0", "-1",
              "1.5", "64.0", "true"],
    "epochs": ["1", "2", "0", "-1", "1.0", "2 ** 62", "2 ** 63 - 1", "true", "none"],
    "shuffle": ["true", "false", "1", "0", "none", '"true"'],
    "seed": ["0", "1", "2 ** 63 - 1", "2 ** 64", "-1", "1.5", "none", "2 ** 32", "2 ** 53 + 1"],
    "workers": ["0", "1", "2", "4", "16", "64", "65", "1000", "2 ** 31", "2 ** 62", "-1", "1.5", "true", "none"],
    "drop_last": ["true", "false", "1", "none"],
    "transforms": [
        "[]", "[scale(2)]", "[scale(0)]", "[scale(1e308 * 10)]", "[scale(-1)]", "[scale()]", "[scale(1, 2)]",
        "[normalize(0.5, 0.5)]", "[normalize(0, 0)]", "[normalize(0.5, -1)]", "[normalize([0.5], [0.5])]",
        "[normalize([0.5, 0.5], [0.5, 0.5])]", "[normalize([], [])]", "[normalize(0.5)]", "[normalize(1e308, 1e-308)]",
        "[random_crop(28, padding = 4)]", "[random_crop(28)]", "[random_crop(29)]", "[random_crop(0)]",
        "[random_crop(-1)]", "[random_crop(2 ** 40, padding = 2 ** 40)]", "[random_crop(28, padding = -1)]",
        "[random_crop(28, padding = 2 ** 62)]", "[random_crop(1, padding = 100000)]", "[random_crop([28, 28])]",
        "[random_crop(28, 4, 5)]", "[random_hflip()]", "[random_hflip(0)]", "[random_hflip(1)]",
        "[random_hflip(2)]", "[random_hflip(-1)]", "[random_hflip(0 / 0)]", "[random_hflip(p = 0.5, p = 0.5)]",
        "[random_flip()]", "[scale]", "[random_hflip]", "scale(2)", "[[scale(2)]]", "[scale(2)] ",
        "[" + ", ".join(["random_hflip()"] * 500) + "]", "[" + ", ".join(["scale(1.01)"] * 2000) + "]",
        "[random_crop(28, padding = 4), random_hflip(), normalize(0.2860, 0.3530)]",
    ],
    "optimizer": [
        "SGD(lr = 0.1)", "SGD()", "SGD(0.1)", "SGD(lr = -1)", "SGD(lr = 0)", "SGD(lr = 1e308 * 10)", "SGD(lr = 1e308)",
        "SGD(lr = 0 / 0)", "SGD(lr = 0.1, momentum = 0.9)", "SGD(lr = 0.1, momentum = -1)", "SGD(lr = 0.1, momentum = 2)",
        "SGD(lr = 0.1, nesterov = true)", "SGD(lr = 0.1, momentum = 0.9, nesterov = true, dampening = 0.5)",
        "SGD(lr = 0.1, weight_decay = -1)", "SGD(lr = 0.1, weight_decay = 1e308)", "SGD(lr = 0.1, maximize = true)",
        "SGD(lr = 0.1, maximize = 1)", "SGD(lr = 0.1, lr = 0.2)", "SGD(lr = 0.1, foo = 1)", "SGD(0.1, 0.9, 0, 0, true, false, 7)",
        "SGD(lr = epoch)", "SGD(lr = [0.1])", 'SGD(lr = "0.1")', "SGD(lr = none)",
        "Adam()", "Adam(lr = 1e-3)", "Adam(betas = [0.9, 0.999])", "Adam(betas = [0.9])", "Adam(betas = [])",
        "Adam(betas = [1, 1])", "Adam(betas = [-1, 2])", "Adam(betas = [0.9, 0.999, 0.5])", "Adam(betas = 0.9)",
        "Adam(betas = [[0.9], [0.9]])", "Adam(eps = 0)", "Adam(eps = -1)", "Adam(amsgrad = true)", "Adam(lr = 1e308)",
        "AdamW()", "AdamW(weight_decay = 1e308)", "AdamW(weight_decay = 1e308 * 10)", "RMSprop()",
        "RMSprop(alpha = 0)", "RMSprop(alpha = 2)", "RMSprop(momentum = 0.9, centered = true)", "RMSprop(eps = 0)",
        "Adagrad()", "Adagrad(lr_decay = -1)", "Adagrad(lr_decay = 1e308)", "Adagrad(initial_accumulator_value = -1)",
        "Adagrad(eps = 0)", "LBFGS()", "sgd(lr = 0.1)", "SGD", "Adam", "[SGD(lr = 0.1)]", "SGD(lr = 0.1)(1)",
    ],
    "param_groups": [
        "[]", '[group("*.bias", weight_decay = 0)]', '[group("*", lr = 0.1)]', '[group("nope", lr = 0.1)]',
        "[group()]", "[group(lr = 0.1)]", '[group("*", lr = -1)]', '[group("*", lr = 1e308 * 10)]',
        '[group("*", foo = 1)]', '[group("*", lr = 0.1, lr = 0.2)]', '[group(1, lr = 0.1)]', '[group("")]',
        '[group("*", lr = 0.1), group("*", lr = 0.2)]', '[group("' + "*" * 3000 + '")]', '[group("[")]',
        '[group("' + "?" * 200 + '")]', '[group("' + "*a" * 100 + '")]', "[" + ", ".join(['group("*")'] * 100) + "]",
        '[group(' + ", ".join(['"*"'] * 100) + ')]', 'group("*")', '[group("*", momentum = 0.9)]',
        '[group("*", betas = [0.5, 0.5])]', '[group("*", weight_decay = none)]', '[[group("*")]]',
    ],
    "clip_grad_norm": ["1", "0", "-1", "1e308", "1e308 * 10", "0 / 0", "1e-300", "none", "[1]", '"1"', "true",
                       "max_norm(1)", "1.0"],
    "clip_grad_value": ["1", "0", "-1", "1e308", "1e308 * 10", "0 / 0", "1e-300", "none", "[1]", "true"],
    "accumulate": ["1", "2", "64", "1000", "100000", "2 ** 31", "2 ** 62", "2 ** 63 - 1", "0", "-1", "1.5", "none",
                   "true"],
    "schedule": [
        "StepLR(1)", "StepLR(step_size = 1, gamma = 0.5)", "StepLR(0)", "StepLR(-1)", "StepLR(2 ** 62)",
        "StepLR(1, gamma = 0)", "StepLR(1, gamma = -1)", "StepLR(1, gamma = 1e308)", "StepLR(1, gamma = 1e308 * 10)",
        "StepLR()", "StepLR(1, 2, 3)", "StepLR(1, step_size = 2)", "StepLR(1.5)",
        "MultiStepLR([1, 2])", "MultiStepLR([])", "MultiStepLR([2, 1])", "MultiStepLR([-1])", "MultiStepLR([1, 1])",
        "MultiStepLR(1)", "MultiStepLR([[1]])", "MultiStepLR([2 ** 62])", "MultiStepLR([1], gamma = 1e308)",
        "MultiStepLR([" + ", ".join(str(i) for i in range(3000)) + "])",
        "ExponentialLR(0.5)", "ExponentialLR(0)", "ExponentialLR(-1)", "ExponentialLR(1e308)", "ExponentialLR()",
        "CosineAnnealingLR(10)", "CosineAnnealingLR(0)", "CosineAnnealingLR(-1)", "CosineAnnealingLR(1, eta_min = -1)",
        "CosineAnnealingLR(1, eta_min = 1e308)", "CosineAnnealingLR(2 ** 62)",
        "OneCycleLR()", "OneCycleLR(max_lr = 0.1)", "OneCycleLR(max_lr = -1)", "OneCycleLR(total_steps = 1)",
        "OneCycleLR(total_steps = 0)", "OneCycleLR(total_steps = -1)", "OneCycleLR(total_steps = 2 ** 62)",
        "OneCycleLR(pct_start = 0)", "OneCycleLR(pct_start = 1)", "OneCycleLR(pct_start = 2)",
        "OneCycleLR(anneal_strategy = \"linear\")", "OneCycleLR(anneal_strategy = \"x\")", "OneCycleLR(anneal_strategy = 1)",
        "OneCycleLR(div_factor = 0)", "OneCycleLR(final_div_factor = 0)", "OneCycleLR(div_factor = -1)",
        "OneCycleLR(three_phase = true)", "OneCycleLR(three_phase = true, pct_start = 0.5)",
        "OneCycleLR(three_phase = true, pct_start = 0.9)", "OneCycleLR(total_steps = 2, three_phase = true)",
        "LinearLR()", "LinearLR(start_factor = 0)", "LinearLR(start_factor = -1)", "LinearLR(total_iters = 0)",
        "LinearLR(total_iters = -1)", "LinearLR(end_factor = 1e308 * 10)", "LinearLR(start_factor = 2)",
        "ConstantLR()", "ConstantLR(factor = 0)", "ConstantLR(factor = -1)", "ConstantLR(factor = 2)",
        "ConstantLR(total_iters = -1)",
        "LambdaLR(1)", "LambdaLR(-1)", "LambdaLR(0)", "LambdaLR(1 / (2 - epoch))", "LambdaLR(1 / (1 - epoch))",
        "LambdaLR(1 / epoch)", "LambdaLR(log(epoch))", "LambdaLR(log(0))", "LambdaLR(sqrt(-1))",
        "LambdaLR(sqrt(1 - epoch))", "LambdaLR(10 ** (400 * epoch))", "LambdaLR(1e308 * (epoch + 1) * 10)",
        "LambdaLR(exp(1000 * epoch))", "LambdaLR(0.95 ** epoch)", "LambdaLR(1 - epoch)", "LambdaLR((-1) ** epoch)",
        "LambdaLR(epoch // 0)", "LambdaLR(epoch % 0)", "LambdaLR(step)", "LambdaLR(x)", "LambdaLR(epochs)",
        "LambdaLR(lr)", "LambdaLR(foo(epoch))", "LambdaLR(cos())", "LambdaLR(min(epoch))", "LambdaLR(max(1, 2, 3))",
        "LambdaLR(round(epoch))", "LambdaLR(\"epoch\")", "LambdaLR([epoch])", "LambdaLR()", "LambdaLR(1, 2)",
        "LambdaLR(lr_lambda = 1)", "LambdaLR(lr_lambda = 1, lr_lambda = 2)", "LambdaLR(" + "(" * 3000 + "epoch" + ")" * 3000 + ")",
        "LambdaLR(" + " + ".join(["epoch"] * 3000) + ")", "LambdaLR(tan(pi / 2 * (epoch + 1)))",
        "LambdaLR(2 ** (2 ** (epoch + 10)))", "LambdaLR(epoch ** -1)", "LambdaLR((0 - epoch) ** 0.5)",
        "LambdaLR(9223372036854775807 * (epoch + 1) * 2)", "LambdaLR(e ** 1000)", "LambdaLR(none)",
        "ReduceLROnPlateau()", "StepLR", "[StepLR(1)]", "none",
    ],
    "warmup": ["0", "1", "2", "10", "1000", "2 ** 31", "2 ** 62", "2 ** 63 - 1", "-1", "1.5", "none", "true",
               "1e308", "1e308 * 10", "0 / 0", "[1]", "warmup(1)", "LinearLR()"],
    "loss": ["cross_entropy(logits, label)", "mse(logits, label)", "1"],
    "metrics": [
        "[]", "[accuracy]", "[top_k(1)]", "[top_k(3)]", "[top_k(10)]", "[top_k(11)]", "[top_k(0)]", "[top_k(-1)]",
        "[top_k()]", "[top_k(2 ** 62)]", "[top_k(1, 2)]", "[top_k(k = 1, k = 2)]", "[top_k(j = 1)]", "[top_k]",
        "[precision, recall, f1, confusion_matrix]", "[mae, mse]", "[accuracy, accuracy]", "[accuracy] * 3",
        "[nope]", '["accuracy"]', "[1]", "[[accuracy]]", "accuracy", "[" + ", ".join(["accuracy"] * 500) + "]",
        "[" + ", ".join(f"top_k({i})" for i in range(1, 11)) + "]", "[" + ", ".join(["top_k(2)"] * 50) + "]",
        "[loss]", "[none]", "[f1(average = \"macro\")]", "[accuracy()]", "[confusion_matrix(1)]",
    ],
    "early_stop": [
        "early_stop(val_loss)", "early_stop(train_loss)", "early_stop(test_loss)", "early_stop(test_accuracy)",
        "early_stop(test_f1)", "early_stop(val_f1)", "early_stop(train_f1)", "early_stop(val_accuracy)",
        "early_stop(test_top_3)", "early_stop(test_mae)", "early_stop(train_accuracy)", "early_stop(test_precision)",
        "early_stop(test_nope)", "early_stop(nope)", "early_stop(\"val_loss\")", "early_stop()", "early_stop(1)",
        "early_stop(val_loss, patience = 0)", "early_stop(val_loss, patience = -1)", "early_stop(val_loss, patience = 2 ** 62)",
        "early_stop(train_loss, min_delta = -1)", "early_stop(train_loss, min_delta = 1e308 * 10)",
        "early_stop(train_loss, min_delta = 0 / 0)", "early_stop(train_loss, mode = \"max\")",
        "early_stop(train_loss, mode = \"x\")", "early_stop(train_loss, mode = max)", "early_stop(train_loss, 1, 2, 3)",
        "early_stop(train_loss, 1, 2, \"min\", 5)", "early_stop(monitor = train_loss, monitor = val_loss)",
        "early_stop(train_)", "early_stop(val_)", "early_stop(test_)", "early_stop(_)", "early_stop(train_loss, foo = 1)",
        "early_stop(" + "train_" + "x" * 3000 + ")", "EarlyStopping(val_loss)", "early_stop",
    ],
}

# Whole runs whose extra flags pair keys (what one key checks against another).
COMBOS = [
    ["--set", "workers=64"],
    ["--set", "workers=64", "--set", "batch=1"],
    ["--set", "accumulate=1000"],
    ["--set", "accumulate=2", "--set", "drop_last=true", "--set", "batch=64"],
    ["--set", "drop_last=true", "--set", "batch=65"],
    ["--set", "drop_last=true", "--set", "batch=1000", "--set", "validation=0.5"],
    ["--set", "validation=0.99", "--set", "drop_last=true"],
    ["--set", "warmup=1000000", "--set", "schedule=StepLR(1)"],
    ["--set", "warmup=2 ** 62", "--set", "schedule=OneCycleLR()"],
    ["--set", "warmup=2 ** 62", "--set", "schedule=CosineAnnealingLR(2)"],
    ["--set", "test=none", "--set", "early_stop=early_stop(test_accuracy)"],
    ["--set", "test=none", "--set", "early_stop=early_stop(test_loss)"],
    ["--set", "early_stop=early_stop(test_f1)"],
    ["--set", "early_stop=early_stop(val_loss)"],
    ["--set", "metrics=[f1]", "--set", "early_stop=early_stop(test_f1)"],
    ["--set", "metrics=[f1]", "--set", "test=none", "--set", "early_stop=early_stop(test_f1)"],
    ["--set", "metrics=[f1]", "--set", "validation=0.5", "--set", "early_stop=early_stop(val_f1)"],
    ["--set", "validation=0.5", "--set", "early_stop=early_stop(val_top_3)"],
    ["--set", "early_stop=early_stop(train_accuracy)"],
    ["--set", "early_stop=early_stop(train_loss, patience = 0)", "--epochs", "3"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(1 / (2 - epoch))"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(-1)"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(1 - epoch)"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(10 ** (300 * epoch))"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(sqrt(1 - epoch))"],
    ["--epochs", "3", "--set", "schedule=LambdaLR(exp(800 * epoch))"],
    ["--epochs", "3", "--set", "schedule=StepLR(1, gamma = 1e300)"],
    ["--epochs", "3", "--set", "schedule=ExponentialLR(1e300)"],
    ["--epochs", "3", "--lr", "1e300", "--set", "schedule=ExponentialLR(1e300)"],
    ["--epochs", "3", "--set", "schedule=LinearLR(start_factor = 1e308, end_factor = 1e308)"],
    ["--epochs", "2", "--set", "optimizer=SGD(lr = 1e308)"],
    ["--epochs", "2", "--set", "optimizer=Adam(lr = 1e308)"],
    ["--set", "optimizer=SGD(lr = 0.1)", "--set", "optimizer.momentum=0.9"],
    ["--set", "optimizer.lr=0.5"], ["--set", "optimizer.lr=-1"], ["--set", "optimizer.nope=1"],
    ["--set", "optimizer.lr=1 / 0"], ["--set", "optimizer.=1"], ["--set", "optimizer.lr.x=1"],
    ["--set", "optimizer.1=1"], ["--set", "data.scale=0"], ["--set", "data.scale=1e308 * 10"],
    ["--set", "data.images=\"nope\""], ["--set", "data.foo=1"], ["--set", "lr=1e308 * 10"], ["--set", "lr=-0"],
    ["--set", "metrics.k=1"], ["--set", "batch.x=1"], ["--set", "schedule.gamma=0.5"],
    ["--set", "=1"], ["--set", "1=1"], ["--set", "nokey=1"], ["--set", "batchh=1"], ["--set", "batch"],
    ["--set", "batch=="], ["--set", "batch= 64"], ["--set", "batch=64 "], ["--set", " batch=64"],
    ["--set", "x" * 300 + "=1"], ["--set", "optimizer." + "x" * 300 + "=1"], ["--set", "é=1"],
    ["--set", "batch=1", "--set", "batch=2", "--set", "batch=3"],
    ["--set", "classes=[\"a\"]"], ["--set", "seed=2 ** 63 - 1", "--set", "shuffle=true"],
    ["--set", "transforms=[random_crop(28, padding = 4), random_hflip()]", "--set", "workers=64"],
    ["--set", "validation=0.5", "--set", "workers=64", "--set", "batch=1"],
    ["--set", "param_groups=[group(\"*.bias\", weight_decay = 0)]", "--set", "optimizer=Adam()"],
    ["--set", "clip_grad_norm=1e-300", "--set", "clip_grad_value=1e-300"],
]

# Runs of the bugs found so far, run every time with the exit status and a part of the message they must give.
REGRESSIONS = [
    (["--set", "validation=1e-3\n00"], 2, "--set validation=1e-3\\n00: column 6"),
    (["--set", "data=idx(\"a\\nb\", \"c\")"], 1, "a\\nb"),
    (["--epochs", "3", "--set", "schedule=LambdaLR(1 - epoch)"], 1,
     "recipe key schedule: the learning rate at epoch = 2, step = 2 is -0.001"),
    (["--set", "schedule=LambdaLR(-1)"], 1, "the learning rate at epoch = 0, step = 0 is -0.001"),
    (["--epochs", "2", "--lr", "1e300", "--set", "schedule=ExponentialLR(1e300)"], 1,
     "the learning rate at epoch = 1, step = 1 is inf"),
    (["--set", "early_stop=early_stop(test_f1)"], 2, "monitor test_f1 names a score that is not computed"),
    (["--set", "early_stop=early_stop(val_loss)"], 2, "monitor val_loss needs a validation set"),
    (["--set", "metrics=[f1]", "--set", "early_stop=early_stop(test_f1)"], 0, ""),
    (["--set", "workers=64"], 0, ""),
    (["--set", "classes=[\"a\"]"], 2, "recipe key classes: 1 name for the model's 10 classes"),
    (["--set", "accumulate=1000"], 0, ""),
    (["--set", "warmup=9223372036854775807"], 0, ""),
]

# Valid expressions that mutations start from.
SEEDS = [f"idx({TRAIN_IMG}, {TRAIN_LBL}, scale = 1 / 255)", "SGD(lr = 0.1, momentum = 0.9)",
         "Adam(betas = [0.9, 0.999], eps = 1e-8)", "LambdaLR(0.95 ** epoch)", "StepLR(step_size = 1, gamma = 0.5)",
         "OneCycleLR(max_lr = 0.1, pct_start = 0.3)", "[accuracy, top_k(3), f1]", "early_stop(val_loss, patience = 2)",
         "[random_crop(28, padding = 4), random_hflip(), normalize(0.2860, 0.3530)]", '[group("*.bias", weight_decay = 0)]',
         "MultiStepLR([1, 2], gamma = 0.1)", "generate(10, x = uniform(0, 1), y = 2 * x + 1)", "0.1", "64", "2 ** 3"]

BYTES = list("()[],=+-*/%.\"'e0123456789 _ax") + ["**", "//", "\\", "\x00", "\xff", "é", "\n", "#", "none", "epoch"]


def mutate(rng, text):
    s = text
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(s) + 1)
        if op == 0 and s:  # delete a span
            j = min(len(s), i + rng.randint(1, 4))
            s = s[:i] + s[j:]
        elif op == 1:  # insert a token
            s = s[:i] + rng.choice(BYTES) + s[i:]
        elif op == 2 and s:  # replace one character
            s = s[:max(0, i - 1)] + rng.choice(BYTES) + s[i:]
        elif op == 3 and s:  # duplicate a span
            j = min(len(s), i + rng.randint(1, 12))
            s = s[:j] + s[i:j] * rng.randint(1, 50) + s[j:]
        else:  # splice with another seed
            o = rng.choice(SEEDS)
            k = rng.randrange(len(o) + 1)
            s = s[:i] + o[k:]
    return s.replace("\x00", "")  # argv cannot hold NUL


def cases(seed, count):
    """count runs, each a list of extra flags; the first ones cover every key and combination once."""
    rng = random.Random(seed)
    fixed = [["--set", f"{k}={v}"] for k in KEYS for v in SPECIFIC.get(k, [])] + COMBOS
    rng.shuffle(fixed)
    out = fixed[:count // 2]
    while len(out) < count:
        r = rng.random()
        key = rng.choice(KEYS)
        if r < 0.45:
            value = rng.choice(GENERIC)
        elif r < 0.55:
            value = rng.choice(SPECIFIC.get(key) or GENERIC)
        else:
            value = mutate(rng, rng.choice(SEEDS + SPECIFIC.get(key, [])))
        run = ["--set", f"{key}={value}"]
        if rng.random() < 0.25:  # a second key, for the checks between keys
            other = rng.choice(KEYS)
            run += ["--set", f"{other}={rng.choice(SPECIFIC.get(other) or GENERIC)}"]
        out.append(run)
    return out


SLOW = None  # --slow S: print the runs that take longer than S seconds

SANITIZER = re.compile(r"Sanitizer|runtime error:|Segmentation|Aborted|core dumped|Assertion|LeakSanitizer")


def run_one(binary, data, extra, timeout, expect=None):
    """None when the run keeps the house rule (and expect's (status, message part) where given), else what went
    wrong."""
    prog = os.path.basename(binary)
    extra = [x.replace("\x00", "") for x in extra]  # argv cannot hold NUL
    ck = tempfile.mkdtemp(prefix="fuzz-ck-")
    try:
        cmd = [binary, "train", "--data", data, "--limit", "64", "--epochs", "1", "--checkpoint-dir", ck] + extra
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return f"hang (no exit in {timeout} s)"
        err = p.stderr.decode("utf-8", "replace")
        if SLOW is not None and time.monotonic() - t0 > SLOW:
            print(f"slow ({time.monotonic() - t0:.1f} s): {extra[:4]!r:.300}", flush=True)
        leftovers = [os.path.join(d, f) for d, _, fs in os.walk(ck) for f in fs if ".tmp" in f]
        if leftovers:
            return f"left {leftovers[0]} (rc {p.returncode})"
        if p.returncode < 0:
            return f"killed by signal {-p.returncode}: {err[-2000:]}"
        if p.returncode not in (0, 1, 2):
            return f"exit status {p.returncode}: {err[-2000:]}"
        if SANITIZER.search(err):
            return f"sanitizer report (rc {p.returncode}): {err[-3000:]}"
        if p.returncode != 0:
            lines = err.splitlines()
            if len(lines) != 1 or not lines[0].startswith(f"{prog}: error: ") or len(lines[0]) <= len(prog) + 9:
                return f"rc {p.returncode} without exactly one '{prog}: error: ...' line: {err[-2000:]!r}"
        if expect and (p.returncode != expect[0] or expect[1] not in err):
            return f"expected status {expect[0]} and a message with {expect[1]!r}, got {p.returncode}: {err[-2000:]!r}"
        return None
    finally:
        shutil.rmtree(ck, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--slow", type=float)
    a = ap.parse_args()
    global SLOW
    SLOW = a.slow
    runs = [(extra, None) for extra in cases(a.seed, a.count)] + [(extra, (rc, msg)) for extra, rc, msg in REGRESSIONS]
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futs = {pool.submit(run_one, a.binary, a.data, extra, a.timeout, expect): extra for extra, expect in runs}
        for f in concurrent.futures.as_completed(futs):
            extra = futs[f]
            problem = f.result()
            shown = " ".join(repr(x) if (" " in x or not x.isprintable()) else x for x in extra)
            if len(shown) > 300:
                shown = shown[:300] + f"... ({len(shown)} chars)"
            if problem:
                failures += 1
                print(f"FAIL: {shown}\n  {problem.strip()[:3000]}", flush=True)
            elif a.verbose:
                print(f"ok: {shown}", flush=True)
    print(f"{len(runs)} runs, {failures} failures (seed {a.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
