/* flags.c: the command line of a produced executable. The recipe (the model file's train block) gives the
   defaults, --set KEY=EXPR (EXPR as in the model file, read by rexpr.c) overrides any recipe key, and the
   dedicated flags (--epochs, --lr, ...) override both. Every bad flag or value is one message naming the
   flag. */
#include "rt.h"
#include "rexpr.h"
#include "cuda.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *commands[] = {"train", "eval", "predict", "info"};

enum {
    OPT_EPOCHS = 256, OPT_BATCH, OPT_LR, OPT_SEED, OPT_SHUFFLE, OPT_NO_SHUFFLE, OPT_DATA, OPT_LIMIT, OPT_SET,
    OPT_CKPT, OPT_LOG, OPT_RESUME, OPT_WEIGHTS, OPT_JSON, OPT_INDEX, OPT_THREADS, OPT_CKPT_EVERY, OPT_KEEP,
    OPT_INIT_FROM, OPT_INIT_MAP, OPT_LOG_CSV, OPT_TB, OPT_TB_HIST, OPT_ANOMALY, OPT_DIST_TIMEOUT,
    OPT_PROFILE, OPT_PROFILE_STEPS, OPT_DEVICE, OPT_HELP = 'h'
};

static const struct option options[] = {
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"seed", required_argument, NULL, OPT_SEED},
    {"shuffle", no_argument, NULL, OPT_SHUFFLE},
    {"no-shuffle", no_argument, NULL, OPT_NO_SHUFFLE},
    {"data", required_argument, NULL, OPT_DATA},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"set", required_argument, NULL, OPT_SET},
    {"checkpoint-dir", required_argument, NULL, OPT_CKPT},
    {"log-json", required_argument, NULL, OPT_LOG},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"weights", required_argument, NULL, OPT_WEIGHTS},
    {"json", no_argument, NULL, OPT_JSON},
    {"index", required_argument, NULL, OPT_INDEX},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"init-from", required_argument, NULL, OPT_INIT_FROM},
    {"init-map", required_argument, NULL, OPT_INIT_MAP},
    {"log-csv", required_argument, NULL, OPT_LOG_CSV},
    {"tensorboard", required_argument, NULL, OPT_TB},
    {"tensorboard-histograms", no_argument, NULL, OPT_TB_HIST},
    {"detect-anomaly", no_argument, NULL, OPT_ANOMALY},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"profile-steps", required_argument, NULL, OPT_PROFILE_STEPS},
    {"dist-timeout", required_argument, NULL, OPT_DIST_TIMEOUT},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int val) {
    for (const struct option *o = options; o->name; o++)
        if (o->val == val)
            return o->name;
    return "?";
}

void rt_usage(FILE *f, const char *prog, int cmd) {
    switch (cmd) {
    case RT_CMD_TRAIN:
        fprintf(f,
                "usage: %s train [options]\n"
                "Trains the model with the recipe of its model file; the flags override the recipe.\n"
                "  --data DIR            folder of the recipe's data files (default .)\n"
                "  --epochs N            number of epochs\n"
                "  --batch N             samples per batch; auto: the largest that fits in memory (at most\n"
                "                        64 times the recipe's), printed on the first line\n"
                "  --lr X                learning rate of the optimizer\n"
                "  --seed N              seed of initialization and shuffling\n"
                "  --shuffle, --no-shuffle  shuffle the training samples each epoch, or not\n"
                "  --limit N             use the first N training and test samples\n"
                "  --set KEY=EXPR        override a recipe key, EXPR written as in the model file:\n"
                "                        --set 'optimizer=Adam(lr = 1e-3)'; KEY.ARG=EXPR sets one\n"
                "                        argument of a call: --set optimizer.lr=0.1\n"
                "  --checkpoint-dir DIR  write DIR/last.safetensors after each epoch (and DIR/best.safetensors\n"
                "                        when the monitored metric improves)\n"
                "  --checkpoint-every N  also every N optimizer steps within an epoch\n"
                "  --keep K              keep the K most recent as DIR/checkpoint-STEP.safetensors too\n"
                "  --resume FILE         continue from a checkpoint, as if never interrupted\n"
                "  --init-from FILE      start from the matching tensors of a safetensors file (as\n"
                "                        load_state_dict(strict=False)); missing and unexpected are listed\n"
                "  --init-map FROM=TO    read the file's names starting with FROM as TO + the rest\n"
                "  --log-json FILE       append one JSON object per epoch to FILE\n"
                "  --log-csv FILE        write one CSV row per epoch to FILE\n"
                "  --tensorboard DIR     write TensorBoard event files (scalars each epoch) into DIR\n"
                "  --tensorboard-histograms  add histograms of the parameters each epoch\n"
                "  --detect-anomaly      check every kernel's output for NaN and Inf (slower); by default\n"
                "                        only the loss is checked\n"
                "  --profile FILE        time every kernel: write a Chrome trace (Perfetto, chrome://tracing)\n"
                "                        of steps 2 to 6 to FILE, and print the time per model line at exit\n"
                "  --profile-steps A:B   trace steps A to B of each graph instead (from 1)\n"
                "  --threads N           threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                        default: one per core\n"
                "  --dist-timeout S      under mpirun (an executable compiled with --mpi): end the whole job\n"
                "                        when a collective waits longer than S seconds (default 300)\n"
                "  --device D            cpu, cuda or auto: where the graphs run (cuda and auto need an\n"
                "                        executable compiled with --target cuda; default: auto there, else cpu)\n"
                "Before the first step the run checks that it fits in memory (RAM, the cgroup's limit) and\n"
                "stops with the largest batch that fits; LATHE_MEMORY_LIMIT=BYTES (512M, 8G) replaces the\n"
                "detected figure with a cap on each process.\n"
                "Examples:\n"
                "  %s train --data /usr/share/datasets/fashion-mnist --epochs 5 --checkpoint-dir ckpt\n"
                "  %s train --data DIR --resume ckpt/last.safetensors --checkpoint-dir ckpt\n"
                "  %s train --data DIR --set 'optimizer=Adam(lr = 1e-3)' --log-json log.jsonl\n"
                "Exit status: 0 success, 1 bad data, checkpoint or I/O, or a non-finite loss, 2 a bad flag or value.\n",
                prog, prog, prog, prog);
        break;
    case RT_CMD_EVAL:
        fprintf(f,
                "usage: %s eval --weights FILE [options]\n"
                "Evaluates a checkpoint on the test set.\n"
                "  --weights FILE  the checkpoint (safetensors)\n"
                "  --data DIR      folder of the recipe's data files (default .)\n"
                "  --batch N       samples per batch\n"
                "  --limit N       use the first N test samples\n"
                "  --json          print one JSON object\n"
                "  --profile FILE  time every kernel: a Chrome trace of batches 2 to 6 to FILE, and the\n"
                "                  time per model line at exit (--profile-steps A:B: batches A to B)\n"
                "  --threads N     threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                  default: one per core\n"
                "  --device D      cpu, cuda or auto (as for train)\n"
                "Examples:\n"
                "  %s eval --weights ckpt/best.safetensors --data /usr/share/datasets/fashion-mnist\n"
                "  %s eval --weights ckpt/last.safetensors --data DIR --json > result.json\n",
                prog, prog, prog);
        break;
    case RT_CMD_PREDICT:
        fprintf(f,
                "usage: %s predict --weights FILE [--index I] [options]\n"
                "Predicts the class of test sample I (default 0).\n"
                "  --weights FILE  the checkpoint (safetensors)\n"
                "  --data DIR      folder of the recipe's data files (default .)\n"
                "  --index I       the test sample\n"
                "  --profile FILE  time every kernel: a Chrome trace to FILE, the time per model line at exit\n"
                "  --threads N     threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                  default: one per core\n"
                "  --device D      cpu, cuda or auto (as for train)\n"
                "Example:\n"
                "  %s predict --weights ckpt/best.safetensors --data /usr/share/datasets/fashion-mnist --index 3\n",
                prog, prog);
        break;
    case RT_CMD_INFO:
        fprintf(f,
                "usage: %s info [--device D]\nPrints the model, its parameters, the memory of each graph, the recipe,\n"
                "the GPU code it holds and the device a run would take (--device D: cpu, cuda or auto).\n"
                "Example:\n  %s info\n",
                prog, prog);
        break;
    default:
        fprintf(f,
                "usage: %s COMMAND [options]\n"
                "Commands:\n"
                "  train    train the model (see %s train --help)\n"
                "  eval     evaluate a checkpoint on the test set\n"
                "  predict  predict the class of one test sample\n"
                "  info     print the model, its parameters and its memory plan\n"
                "Examples:\n"
                "  %s train --data /usr/share/datasets/fashion-mnist --checkpoint-dir ckpt --log-json log.jsonl\n"
                "  %s train --data DIR --epochs 10 --lr 0.01 --resume ckpt/last.safetensors --checkpoint-dir ckpt\n"
                "  %s eval --weights ckpt/last.safetensors --data DIR --json\n"
                "  %s predict --weights ckpt/last.safetensors --data DIR --index 0\n"
                "  %s info\n"
                "Exit status: 0 success, 1 bad data, checkpoint or I/O, 2 a bad flag or value.\n",
                prog, prog, prog, prog, prog, prog, prog);
    }
}

static const char *prog_name(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

static int parse_int(const char *flag, const char *s, int64_t min, int64_t *out, RtErr *e) {
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE)
        return rt_errf(e, "%s: '%s' is not an integer", flag, s);
    if (v < min)
        return rt_errf(e, "%s: must be at least %lld (got %lld)", flag, (long long)min, v);
    *out = v;
    return RT_OK;
}

static int parse_real(const char *flag, const char *s, double *out, RtErr *e) {
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v))
        return rt_errf(e, "%s: '%s' is not a finite number", flag, s);
    if (v < 0)
        return rt_errf(e, "%s: must not be negative (got %s)", flag, s);
    *out = v;
    return RT_OK;
}

/* The train block's keys, as the frontend knows them (recipe_keys in frontend/lower.c): both lists must
   hold the same keys. */
static const char *const recipe_keys[] = {
    "data", "test", "validation", "classes", "batch", "epochs", "shuffle", "seed", "workers", "drop_last",
    "transforms", "optimizer", "param_groups", "clip_grad_norm", "clip_grad_value", "accumulate", "schedule",
    "warmup", "loss", "metrics", "early_stop",
};
#define NRECIPE_KEYS ((int)(sizeof recipe_keys / sizeof *recipe_keys))

static bool is_recipe_key(const char *key) {
    for (int i = 0; i < NRECIPE_KEYS; i++)
        if (strcmp(key, recipe_keys[i]) == 0)
            return true;
    return false;
}

static bool is_name(const char *s) {
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    while (isalnum((unsigned char)*s) || *s == '_')
        s++;
    return !*s;
}

/* The keys that flags.c reads itself (recipe_defaults) are checked as soon as --set gives them; every other
   key is checked by the module that reads it. */
static const char *own_key_problem(const char *key, const json_t *v) {
    if (strcmp(key, "shuffle") == 0)
        return json_is_boolean(v) ? NULL : "takes true or false";
    if (strcmp(key, "seed") == 0)
        return json_is_integer(v) && json_integer_value(v) >= 0 ? NULL : "takes an integer of at least 0";
    if (strcmp(key, "epochs") == 0 || strcmp(key, "batch") == 0)
        return json_is_integer(v) && json_integer_value(v) >= 1 ? NULL : "takes an integer of at least 1";
    return NULL;
}

/* --set KEY=EXPR: EXPR (written as in the model file) replaces recipe key KEY; --set KEY.ARG=EXPR replaces
   (or adds) the keyword argument ARG of the call that KEY holds; --set lr=X is optimizer.lr. */
static int apply_set(json_t *recipe, const char *arg, RtErr *e) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return rt_errf(e, "--set: expected KEY=EXPR, got '%s'", arg);
    char key[256];
    if (eq - arg >= (ptrdiff_t)sizeof key)
        return rt_errf(e, "--set: the key of '%.40s...' is too long", arg);
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    char *sub = strchr(key, '.');
    if (sub)
        *sub++ = 0;
    if (!sub && strcmp(key, "lr") == 0 && json_object_get(json_object_get(recipe, "optimizer"), "call")) {
        strcpy(key, "optimizer");
        sub = key + strlen(key) + 1;
        strcpy(sub, "lr");
    }
    if (strcmp(key, "loss") == 0)
        return rt_errf(e, "--set %s: the loss is compiled into the model's graphs; change it in the model file", arg);
    if (!is_recipe_key(key)) {
        const char *close = rt_closest(key, recipe_keys, NRECIPE_KEYS);
        return rt_errf(e, "--set %s: unknown recipe key '%s'%s%s%s", arg, key, close ? " (did you mean '" : "",
                       close ? close : "", close ? "'?)" : "");
    }
    json_t *call = NULL;
    if (sub) {
        call = json_object_get(recipe, key);
        if (!call)
            return rt_errf(e, "--set %s: the model file sets no '%s' (set it whole: --set '%s=CALL(...)')", arg, key,
                           key);
        if (!json_object_get(call, "call"))
            return rt_errf(e, "--set %s: '%s' holds no call, so it has no argument '%s'", arg, key, sub);
        if (!is_name(sub))
            return rt_errf(e, "--set %s: '%s' is not an argument name", arg, sub);
    }
    RtErr pe;
    json_t *v = rt_rexpr_parse(eq + 1, &pe);
    if (!v)
        return rt_errf(e, "--set %s: %s", arg, pe.msg);
    const char *problem = sub ? NULL : own_key_problem(key, v);
    if (problem) {
        json_decref(v);
        return rt_errf(e, "--set %s: %s %s", arg, key, problem);
    }
    json_object_set_new(sub ? json_object_get(call, "kwargs") : recipe, sub ? sub : key, v);
    return RT_OK;
}

static json_t *call_kwargs(json_t *recipe, const char *key) {
    json_t *call = json_object_get(recipe, key);
    return json_object_get(call, "call") ? json_object_get(call, "kwargs") : NULL;
}

static int recipe_int(json_t *recipe, const char *key, int64_t dflt, int64_t min, int64_t *out, RtErr *e) {
    json_t *v = json_object_get(recipe, key);
    if (!v) {
        *out = dflt;
        return RT_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return rt_errf(e, "recipe key %s: expected an integer of at least %lld", key, (long long)min);
    *out = json_integer_value(v);
    return RT_OK;
}

static int recipe_defaults(RtConfig *c, const RtManifest *m, RtErr *e) {
    json_t *r = c->recipe;
    int64_t seed = 0;
    if (recipe_int(r, "epochs", 1, 1, &c->epochs, e) || recipe_int(r, "batch", 64, 1, &c->batch, e) ||
        recipe_int(r, "seed", 0, 0, &seed, e))
        return RT_ERR;
    c->seed = (uint64_t)seed;
    json_t *sh = json_object_get(r, "shuffle");
    if (sh && !json_is_boolean(sh))
        return rt_errf(e, "recipe key shuffle: expected true or false");
    c->shuffle = json_is_true(sh);
    json_t *lr = json_object_get(call_kwargs(r, "optimizer"), "lr");
    if (lr) {
        if (!json_is_number(lr) || json_number_value(lr) < 0)
            return rt_errf(e, "recipe key optimizer.lr: expected a non-negative number");
        c->lr = json_number_value(lr);
        c->has_lr = true;
    }
    if (rt_data_spec_parse(json_object_get(r, "data"), m, "data", &c->train_data, e) ||
        rt_data_spec_parse(json_object_get(r, "test"), m, "test", &c->test_data, e))
        return RT_ERR;
    json_t *classes = json_object_get(r, "classes");
    if (classes && !json_is_null(classes) && !json_is_array(classes))
        return rt_errf(e, "recipe key classes: expected a list of class names, such as [\"cat\", \"dog\"]");
    int64_t model_classes = rt_manifest_classes(m);
    if (json_is_array(classes) && model_classes > 0 && (int64_t)json_array_size(classes) != model_classes)
        return rt_errf(e, "recipe key classes: %zu name%s for the model's %lld classes", json_array_size(classes),
                       json_array_size(classes) == 1 ? "" : "s", (long long)model_classes);
    if (json_is_array(classes)) {
        c->nclasses = (int)json_array_size(classes);
        c->classes = calloc((size_t)c->nclasses + 1, sizeof *c->classes);
        if (!c->classes)
            return rt_errf(e, "out of memory");
        for (int i = 0; i < c->nclasses; i++)
            if (!(c->classes[i] = json_string_value(json_array_get(classes, (size_t)i))))
                return rt_errf(e, "recipe key classes: entry %d is not a string", i);
    }
    return RT_OK;
}

/* Values of the dedicated flags, applied over the recipe once every --set is in. */
typedef struct Flags {
    const char *epochs, *batch, *lr, *seed, *limit, *index, *threads, *every, *keep, *dist_timeout;
    int shuffle; /* -1: recipe */
} Flags;

static int apply_flags(RtConfig *c, const Flags *f, RtErr *e) {
    int64_t v = 0;
    if (f->epochs && parse_int("--epochs", f->epochs, 1, &c->epochs, e))
        return RT_ERR;
    if (f->batch && strcmp(f->batch, "auto") == 0)
        c->batch_auto = true; /* the recipe's batch until train picks (memcheck.c) */
    else if (f->batch && parse_int("--batch", f->batch, 1, &c->batch, e))
        return RT_ERR;
    if (f->lr) {
        if (parse_real("--lr", f->lr, &c->lr, e))
            return RT_ERR;
        c->has_lr = true;
    }
    if (f->seed) {
        if (parse_int("--seed", f->seed, 0, &v, e))
            return RT_ERR;
        c->seed = (uint64_t)v;
        c->seed_given = true;
    }
    if (f->limit && parse_int("--limit", f->limit, 1, &c->limit, e))
        return RT_ERR;
    if (f->index && parse_int("--index", f->index, 0, &c->index, e))
        return RT_ERR;
    if (f->threads) {
        if (parse_int("--threads", f->threads, 1, &v, e))
            return RT_ERR;
        if (v > 4096)
            return rt_errf(e, "--threads: at most 4096 (got %lld)", (long long)v);
        c->threads = (int)v;
    }
    if (f->every && parse_int("--checkpoint-every", f->every, 1, &c->checkpoint_every, e))
        return RT_ERR;
    if (f->keep && parse_int("--keep", f->keep, 0, &c->keep, e))
        return RT_ERR;
    if (f->dist_timeout) {
        double t = 0;
        if (parse_real("--dist-timeout", f->dist_timeout, &t, e))
            return RT_ERR;
        if (!(t > 0 && t <= 1e7))
            return rt_errf(e, "--dist-timeout: seconds in (0, 1e7], got '%s'", f->dist_timeout);
        c->dist_timeout = t;
    }
    if (f->shuffle >= 0)
        c->shuffle = f->shuffle;
    return RT_OK;
}

/* --init-map FROM=TO: a prefix rule of --init-from. */
static int add_init_map(RtConfig *c, const char *arg, RtErr *e) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return rt_errf(e, "--init-map: expected FROM=TO (a prefix of the file's names and its replacement), got '%s'",
                       arg);
    if (c->ninit_map == 16)
        return rt_errf(e, "--init-map: at most 16 rules");
    c->init_map_from[c->ninit_map] = strndup(arg, (size_t)(eq - arg));
    c->init_map_to[c->ninit_map] = strdup(eq + 1);
    if (!c->init_map_from[c->ninit_map] || !c->init_map_to[c->ninit_map])
        return rt_errf(e, "out of memory");
    c->ninit_map++;
    return RT_OK;
}

/* --profile-steps A:B: the calls of each graph that the trace holds, 1 <= A <= B, at most 1000 of them. */
static int parse_profile_steps(RtConfig *c, const char *arg, RtErr *e) {
    const char *colon = strchr(arg, ':');
    char first[32];
    if (!colon || (size_t)(colon - arg) >= sizeof first)
        return rt_errf(e, "--profile-steps: expected A:B (the first and last step traced), got '%s'", arg);
    snprintf(first, sizeof first, "%.*s", (int)(colon - arg), arg);
    if (parse_int("--profile-steps", first, 1, &c->profile_first, e) ||
        parse_int("--profile-steps", colon + 1, c->profile_first, &c->profile_last, e))
        return RT_ERR;
    if (c->profile_last - c->profile_first >= 1000)
        return rt_errf(e, "--profile-steps: at most 1000 steps in a trace (got %s)", arg);
    return RT_OK;
}

int rt_config_parse(RtConfig *c, const RtManifest *m, int argc, char **argv, RtErr *e) {
    memset(c, 0, sizeof *c);
    c->cmd = (RtCommand)-1;
    c->limit = -1;
    c->data_dir = ".";
    c->recipe = json_deep_copy(m->recipe);
    if (!c->recipe)
        return rt_errf(e, "out of memory");
    if (argc < 2)
        return rt_errf(e, "missing command: train, eval, predict or info (see --help)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return RT_HELP;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], commands[i]) == 0)
            c->cmd = (RtCommand)i;
    if ((int)c->cmd < 0)
        return rt_errf(e, "unknown command '%s': expected train, eval, predict or info", argv[1]);

    Flags f = {.shuffle = -1};
    const char **sets = calloc((size_t)argc, sizeof *sets);
    if (!sets)
        return rt_errf(e, "out of memory");
    int nsets = 0, rc = RT_OK, opt;
    optind = 0; /* glibc: a full reset, so that the parser can run more than once in a process */
    opterr = 0;
    while (rc == RT_OK && (opt = getopt_long(argc - 1, argv + 1, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_EPOCHS: f.epochs = optarg; break;
        case OPT_BATCH: f.batch = optarg; break;
        case OPT_LR: f.lr = optarg; break;
        case OPT_SEED: f.seed = optarg; break;
        case OPT_SHUFFLE: f.shuffle = 1; break;
        case OPT_NO_SHUFFLE: f.shuffle = 0; break;
        case OPT_DATA: c->data_dir = optarg; break;
        case OPT_LIMIT: f.limit = optarg; break;
        case OPT_SET: sets[nsets++] = optarg; break;
        case OPT_CKPT: c->checkpoint_dir = optarg; break;
        case OPT_LOG: c->log_json = optarg; break;
        case OPT_RESUME: c->resume = optarg; break;
        case OPT_WEIGHTS: c->weights = optarg; break;
        case OPT_JSON: c->json = true; break;
        case OPT_INDEX: f.index = optarg; break;
        case OPT_THREADS: f.threads = optarg; break;
        case OPT_CKPT_EVERY: f.every = optarg; break;
        case OPT_KEEP: f.keep = optarg; break;
        case OPT_INIT_FROM: c->init_from = optarg; break;
        case OPT_INIT_MAP: rc = add_init_map(c, optarg, e); break;
        case OPT_LOG_CSV: c->log_csv = optarg; break;
        case OPT_TB: c->tensorboard = optarg; break;
        case OPT_TB_HIST: c->tb_histograms = true; break;
        case OPT_ANOMALY: c->detect_anomaly = true; break;
        case OPT_PROFILE: c->profile = optarg; break;
        case OPT_PROFILE_STEPS: rc = parse_profile_steps(c, optarg, e); break;
        case OPT_DIST_TIMEOUT: f.dist_timeout = optarg; break;
        case OPT_DEVICE: c->device = optarg; break;
        case OPT_HELP: rc = RT_HELP; break;
        case ':': rc = rt_errf(e, "--%s: missing value", option_name(optopt)); break;
        default:
            /* optopt: a long option's val (given a value it takes none), an unknown short option's letter (in
               a cluster such as -xq optind has not moved past it), or 0 for an unknown long option */
            if (optopt && strcmp(option_name(optopt), "?") != 0)
                rc = rt_errf(e, "--%s: takes no value", option_name(optopt));
            else if (optopt)
                rc = rt_errf(e, "-%c: unknown option for '%s' (see '%s %s --help')", optopt, argv[1],
                             prog_name(argv[0]), argv[1]);
            else
                rc = rt_errf(e, "%s: unknown option for '%s' (see '%s %s --help')", argv[optind], argv[1],
                             prog_name(argv[0]), argv[1]);
            break;
        }
    }
    if (rc == RT_OK && optind < argc - 1)
        rc = rt_errf(e, "unexpected argument '%s' for '%s'", argv[optind + 1], argv[1]);
    for (int i = 0; i < nsets && rc == RT_OK; i++)
        rc = apply_set(c->recipe, sets[i], e);
    free(sets);
    if (rc != RT_OK)
        return rc;
    if (recipe_defaults(c, m, e) != RT_OK || apply_flags(c, &f, e) != RT_OK)
        return RT_ERR;
    if ((c->cmd == RT_CMD_EVAL || c->cmd == RT_CMD_PREDICT) && !c->weights)
        return rt_errf(e, "%s: --weights FILE is required", argv[1]);
    if (c->resume && c->cmd != RT_CMD_TRAIN)
        return rt_errf(e, "--resume: only for train (use --weights with %s)", argv[1]);
    if (c->init_from && c->cmd != RT_CMD_TRAIN)
        return rt_errf(e, "--init-from: only for train (use --weights with %s)", argv[1]);
    if (c->init_from && c->resume)
        return rt_errf(e, "--init-from and --resume: a resumed run continues its own checkpoint; give one of them");
    if (c->profile_first && !c->profile)
        return rt_errf(e, "--profile-steps: goes with --profile FILE");
    if (c->profile && !c->profile[0])
        return rt_errf(e, "--profile: needs a file name");
    if (c->profile && c->cmd == RT_CMD_INFO)
        return rt_errf(e, "--profile: for train, eval and predict (info runs no graph)");
    if (c->batch_auto && (c->cmd == RT_CMD_EVAL || c->cmd == RT_CMD_PREDICT))
        return rt_errf(e, "--batch auto: for train (eval and predict take a number)");
    RtDevice dev;
    if (c->device && !rt_device_parse(c->device, &dev))
        return rt_errf(e, "--device: cpu, cuda or auto, not '%s'", c->device);
    if (c->ninit_map && !c->init_from)
        return rt_errf(e, "--init-map: goes with --init-from");
    if ((c->checkpoint_every || c->keep) && !c->checkpoint_dir)
        return rt_errf(e, "--%s: needs --checkpoint-dir DIR", c->checkpoint_every ? "checkpoint-every" : "keep");
    return RT_OK;
}

void rt_config_free(RtConfig *c) {
    for (int i = 0; i < c->ninit_map; i++) {
        free(c->init_map_from[i]);
        free(c->init_map_to[i]);
    }
    json_decref(c->recipe);
    free(c->classes);
    memset(c, 0, sizeof *c);
}
