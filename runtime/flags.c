/* flags.c: the command line of a produced executable. The recipe (the model file's train block) gives the
   defaults, --set KEY=VALUE overrides any recipe key, and the dedicated flags (--epochs, --lr, ...) override
   both. Every bad flag or value is one message naming the flag. */
#include "rt.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *commands[] = {"train", "eval", "predict", "info"};

enum {
    OPT_EPOCHS = 256, OPT_BATCH, OPT_LR, OPT_SEED, OPT_SHUFFLE, OPT_NO_SHUFFLE, OPT_DATA, OPT_LIMIT, OPT_SET,
    OPT_CKPT, OPT_LOG, OPT_RESUME, OPT_WEIGHTS, OPT_JSON, OPT_INDEX, OPT_THREADS, OPT_HELP = 'h'
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
                "  --batch N             samples per batch\n"
                "  --lr X                learning rate of the optimizer\n"
                "  --seed N              seed of initialization and shuffling\n"
                "  --shuffle, --no-shuffle  shuffle the training samples each epoch, or not\n"
                "  --limit N             use the first N training and test samples\n"
                "  --set KEY=VALUE       override a recipe key (optimizer.lr=0.1 for a call's argument)\n"
                "  --checkpoint-dir DIR  write DIR/last.safetensors after each epoch\n"
                "  --log-json FILE       append one JSON object per epoch to FILE\n"
                "  --resume FILE         continue from a checkpoint with the next epoch\n"
                "  --threads N           threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                        default: one per core\n",
                prog);
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
                "  --threads N     threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                  default: one per core\n",
                prog);
        break;
    case RT_CMD_PREDICT:
        fprintf(f,
                "usage: %s predict --weights FILE [--index I] [options]\n"
                "Predicts the class of test sample I (default 0).\n"
                "  --weights FILE  the checkpoint (safetensors)\n"
                "  --data DIR      folder of the recipe's data files (default .)\n"
                "  --index I       the test sample\n"
                "  --threads N     threads for Lathe's kernels (OpenBLAS runs inside them);\n"
                "                  default: one per core\n",
                prog);
        break;
    case RT_CMD_INFO:
        fprintf(f, "usage: %s info\nPrints the model, its parameters, the memory of each graph and the recipe.\n",
                prog);
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
                "Exit status: 0 success, 1 bad data, checkpoint or I/O, 2 a bad flag or value.\n",
                prog, prog, prog, prog, prog, prog);
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

/* A --set value as JSON: an integer, a number, true/false, or else a string. */
static json_t *parse_value(const char *s) {
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end && errno == 0)
        return json_integer(i);
    errno = 0;
    double d = strtod(s, &end);
    if (*s && !*end && errno == 0 && isfinite(d))
        return json_real(d);
    if (strcmp(s, "true") == 0)
        return json_true();
    if (strcmp(s, "false") == 0)
        return json_false();
    return json_string(s);
}

static const char *json_kind(json_t *v) {
    if (json_is_number(v))
        return "number";
    if (json_is_boolean(v))
        return "boolean";
    if (json_is_string(v))
        return "string";
    if (json_is_array(v))
        return "list";
    return json_object_get(v, "call") ? "call" : "identifier";
}

/* Replaces obj[key] (which exists) by text, keeping the kind of value it holds. */
static int replace_value(json_t *obj, const char *key, const char *full, const char *text, RtErr *e) {
    json_t *old = json_object_get(obj, key);
    json_t *v = parse_value(text);
    if (json_is_number(old) && !json_is_number(v)) {
        json_decref(v);
        return rt_errf(e, "--set %s=%s: %s takes a number", full, text, full);
    }
    if (json_is_boolean(old) && !json_is_boolean(v)) {
        json_decref(v);
        return rt_errf(e, "--set %s=%s: %s takes true or false", full, text, full);
    }
    if (json_is_string(old)) {
        json_decref(v);
        v = json_string(text);
    } else if (!json_is_number(old) && !json_is_boolean(old)) {
        json_decref(v);
        return rt_errf(e, "--set %s=%s: %s holds a %s, which --set cannot override", full, text, full,
                       json_kind(old));
    }
    json_object_set_new(obj, key, v);
    return RT_OK;
}

static json_t *call_kwargs(json_t *recipe, const char *key) {
    json_t *call = json_object_get(recipe, key);
    return json_object_get(call, "call") ? json_object_get(call, "kwargs") : NULL;
}

static bool graph_takes(const RtGraph *g, const char *name) {
    for (int i = 0; i < g->nargs; i++)
        if (g->args[i].role == RT_ROLE_INPUT && strcmp(g->args[i].name, name) == 0)
            return true;
    return false;
}

static int apply_set(json_t *recipe, const RtManifest *m, const char *arg, RtErr *e) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return rt_errf(e, "--set: expected KEY=VALUE, got '%s'", arg);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    const char *text = eq + 1;
    char *dot = strchr(key, '.');
    if (dot) {
        *dot = 0;
        json_t *kw = call_kwargs(recipe, key);
        *dot = '.';
        if (!kw || !json_object_get(kw, dot + 1))
            return rt_errf(e, "--set %s: unknown recipe key '%s'", arg, key);
        /* the optimizer's arguments other than lr are constants of the compiled train step, unless it takes
           them as inputs: changing the recipe alone would train with other values than the ones shown */
        if (strncmp(key, "optimizer.", 10) == 0 && strcmp(dot + 1, "lr") != 0 && !graph_takes(&m->train, dot + 1))
            return rt_errf(e, "--set %s: %s is compiled into the train step; change it in the model file", arg, key);
        return replace_value(kw, dot + 1, key, text, e);
    }
    if (json_object_get(recipe, key))
        return replace_value(recipe, key, key, text, e);
    if (strcmp(key, "lr") == 0) {
        json_t *kw = call_kwargs(recipe, "optimizer");
        if (kw && json_object_get(kw, "lr"))
            return replace_value(kw, "lr", "lr", text, e);
    }
    /* keys the runtime understands even when the model file leaves them out */
    static const char *known[] = {"epochs", "batch", "seed", "shuffle"};
    for (int i = 0; i < 4; i++)
        if (strcmp(key, known[i]) == 0) {
            json_object_set_new(recipe, key, strcmp(key, "shuffle") == 0 ? json_false() : json_integer(0));
            return replace_value(recipe, key, key, text, e);
        }
    return rt_errf(e, "--set %s: unknown recipe key '%s'", arg, key);
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
    const char *epochs, *batch, *lr, *seed, *limit, *index, *threads;
    int shuffle; /* -1: recipe */
} Flags;

static int apply_flags(RtConfig *c, const Flags *f, RtErr *e) {
    int64_t v = 0;
    if (f->epochs && parse_int("--epochs", f->epochs, 1, &c->epochs, e))
        return RT_ERR;
    if (f->batch && parse_int("--batch", f->batch, 1, &c->batch, e))
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
    if (f->shuffle >= 0)
        c->shuffle = f->shuffle;
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
        rc = apply_set(c->recipe, m, sets[i], e);
    free(sets);
    if (rc != RT_OK)
        return rc;
    if (recipe_defaults(c, m, e) != RT_OK || apply_flags(c, &f, e) != RT_OK)
        return RT_ERR;
    if ((c->cmd == RT_CMD_EVAL || c->cmd == RT_CMD_PREDICT) && !c->weights)
        return rt_errf(e, "%s: --weights FILE is required", argv[1]);
    if (c->resume && c->cmd != RT_CMD_TRAIN)
        return rt_errf(e, "--resume: only for train (use --weights with %s)", argv[1]);
    return RT_OK;
}

void rt_config_free(RtConfig *c) {
    json_decref(c->recipe);
    free(c->classes);
    memset(c, 0, sizeof *c);
}
