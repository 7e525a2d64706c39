/* driver.c: the commands of a produced executable (train, eval, predict, info). This is the only file that
   prints errors and picks exit statuses: 2 for a bad flag or value, 1 for bad data, checkpoints or I/O. */
#include "rt.h"
#include "lathe_kern.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct Run {
    const char *prog;
    RtManifest m;
    RtConfig cfg;
    RtModel md;
    RtErr err;
} Run;

static int fail(Run *r, int status) {
    fprintf(stderr, "%s: error: %s\n", r->prog, r->err.msg);
    return status;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mkdir_p(const char *dir, RtErr *e) {
    char path[4096];
    if (!dir[0])
        return rt_errf(e, "--checkpoint-dir: the folder name is empty");
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return rt_errf(e, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return rt_errf(e, "%s: cannot create folder: %s", path, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rt_errf(e, "%s: not a folder", dir);
    return RT_OK;
}

static int load_data(Run *r, const RtDataSpec *spec, const char *key, RtDataset *d) {
    if (!spec->present)
        return rt_errf(&r->err, "the recipe has no %s = idx(...), text(...) or csv(...) to read", key);
    if (rt_dataset_load(d, r->cfg.data_dir, spec, &r->err) != RT_OK)
        return RT_ERR;
    if (rt_dataset_check(d, &r->m, key, &r->err) != RT_OK) {
        rt_dataset_free(d);
        return RT_ERR;
    }
    rt_dataset_limit(d, r->cfg.limit);
    return RT_OK;
}

/* Loads params (required) and optimizer state (optional) from path; returns the metadata. */
static int load_checkpoint(Run *r, const char *path, json_t **meta) {
    RtTensor *ts = rt_model_tensors(&r->md);
    if (!ts)
        return rt_errf(&r->err, "out of memory");
    int np = r->m.nparams;
    int rc = rt_st_load(path, ts, np, ts + np, r->md.nstate, meta, &r->err);
    free(ts);
    if (rc == RT_OK) {
        const char *h = json_string_value(json_object_get(*meta, "hash"));
        if (h && strcmp(h, r->m.hash) != 0)
            fprintf(stderr, "%s: warning: %s was written by a model with hash %s, this one has %s\n", r->prog, path,
                    h, r->m.hash);
    }
    return rc;
}

/* A count that save_checkpoint wrote into the metadata as a decimal string; *out is left as it is when the key
   is absent. A negative or overflowing value would resume with a wrong step (and so a wrong Adam bias
   correction), so it is an error. */
static int meta_count(Run *r, json_t *meta, const char *key, int64_t *out) {
    json_t *v = json_object_get(meta, key);
    if (!v)
        return RT_OK;
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long long n = s ? strtoll(s, &end, 10) : -1;
    if (!s || !*s || *end || errno == ERANGE || n < 0)
        return rt_errf(&r->err, "%s: metadata '%s' is not a non-negative integer", r->cfg.resume, key);
    *out = n;
    return RT_OK;
}

static int save_checkpoint(Run *r, const char *dir, int64_t epochs_done) {
    char path[4200], buf[64];
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    json_t *meta = json_object();
    snprintf(buf, sizeof buf, "%lld", (long long)epochs_done);
    json_object_set_new(meta, "epoch", json_string(buf));
    snprintf(buf, sizeof buf, "%lld", (long long)r->md.step);
    json_object_set_new(meta, "step", json_string(buf));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->cfg.seed);
    json_object_set_new(meta, "seed", json_string(buf));
    json_object_set_new(meta, "model", json_string(r->m.model));
    json_object_set_new(meta, "hash", json_string(r->m.hash));
    json_object_set_new(meta, "lathe", json_string(RT_VERSION));
    RtTensor *ts = rt_model_tensors(&r->md);
    int rc = ts ? rt_st_save(path, ts, r->m.nparams + r->md.nstate, meta, &r->err)
                : rt_errf(&r->err, "out of memory writing %s", path);
    free(ts);
    json_decref(meta);
    return rc;
}

/* JSON has no NaN: a diverged loss is logged as null */
static json_t *number(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int write_json_line(FILE *f, json_t *o) {
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    int rc = line && fprintf(f, "%s\n", line) >= 0 && fflush(f) == 0 ? RT_OK : RT_ERR;
    free(line);
    return rc;
}

/* Accuracy only where the graph counts correct predictions (a classifier with metrics = [accuracy]). */
static void print_test(const RtEvalResult *ev) {
    if (isnan(ev->accuracy))
        printf("Test Error: \n Avg loss: %f \n\n", ev->loss);
    else
        printf("Test Error: \n Accuracy: %.1f%%, Avg loss: %f \n\n", 100.0 * ev->accuracy, ev->loss);
}

/* The test results of a JSON line: none without a test set, no accuracy without "correct". */
static void set_test_json(json_t *o, const RtEvalResult *ev, bool tested) {
    if (!tested)
        return;
    json_object_set_new(o, "test_loss", number(ev->loss));
    if (!isnan(ev->accuracy))
        json_object_set_new(o, "test_accuracy", number(ev->accuracy));
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int cmd_train(Run *r) {
    RtConfig *c = &r->cfg;
    RtDataset train = {0}, test = {0};
    RtBinding tb = {0}, eb = {0};
    RtLoader loader = {0};
    FILE *log = NULL;
    json_t *meta = NULL;
    int status = 1;
    int64_t start_epoch = 0;
    if (c->resume) {
        if (load_checkpoint(r, c->resume, &meta) != RT_OK)
            goto done;
        start_epoch = -1;
        int64_t seed = (int64_t)c->seed;
        if (meta_count(r, meta, "epoch", &start_epoch) || meta_count(r, meta, "step", &r->md.step) ||
            meta_count(r, meta, "seed", &seed))
            goto done;
        if (start_epoch < 0) {
            rt_errf(&r->err, "%s: the metadata has no epoch count to resume from", c->resume);
            goto done;
        }
        if (!c->seed_given)
            c->seed = (uint64_t)seed;
    }
    if (load_data(r, &c->train_data, "data", &train) != RT_OK)
        goto done;
    if (c->test_data.present && load_data(r, &c->test_data, "test", &test) != RT_OK)
        goto done;
    if (rt_bind(&tb, &r->md, &r->m.train, c, min64(c->batch, train.count), &r->err) != RT_OK)
        goto done;
    if (test.count && rt_bind(&eb, &r->md, &r->m.eval, c, min64(c->batch, test.count), &r->err) != RT_OK)
        goto done;
    if (tb.x_arg >= 0 && rt_loader_open(&loader, &train, &tb.g->args[tb.x_arg],
                                        tb.y_arg >= 0 ? &tb.g->args[tb.y_arg] : NULL, tb.max_n, true,
                                        &r->err) != RT_OK)
        goto done;
    if (c->checkpoint_dir && mkdir_p(c->checkpoint_dir, &r->err) != RT_OK)
        goto done;
    if (c->log_json && !(log = fopen(c->log_json, "a"))) {
        rt_errf(&r->err, "%s: cannot open: %s", c->log_json, strerror(errno));
        goto done;
    }
    if (start_epoch >= c->epochs)
        printf("%s already holds %lld epochs (of %lld)\n", c->resume, (long long)start_epoch, (long long)c->epochs);
    for (int64_t ep = start_epoch; ep < c->epochs; ep++) {
        printf("Epoch %lld\n-------------------------------\n", (long long)ep + 1);
        double t0 = now();
        double train_loss = rt_train_epoch(&tb, &r->md, tb.x_arg >= 0 ? &loader : NULL, &train, c, ep, stdout);
        double secs = now() - t0;
        RtEvalResult ev = {NAN, NAN, 0};
        if (test.count) {
            rt_evaluate(&eb, &r->md, &test, c->batch, &ev);
            print_test(&ev);
        }
        fflush(stdout);
        if (log) {
            json_t *o = json_object();
            json_object_set_new(o, "epoch", json_integer(ep + 1));
            json_object_set_new(o, "train_loss", number(train_loss));
            set_test_json(o, &ev, test.count > 0);
            json_object_set_new(o, "seconds", number(secs));
            json_object_set_new(o, "samples_per_s", number(secs > 0 ? (double)train.count / secs : 0.0));
            if (write_json_line(log, o) != RT_OK) {
                rt_errf(&r->err, "%s: cannot write: %s", c->log_json, strerror(errno));
                goto done;
            }
        }
        if (c->checkpoint_dir && save_checkpoint(r, c->checkpoint_dir, ep + 1) != RT_OK)
            goto done;
    }
    printf("Done!\n");
    status = 0;
done:
    if (log && fclose(log) != 0 && status == 0) {
        rt_errf(&r->err, "%s: cannot write: %s", c->log_json, strerror(errno));
        status = 1;
    }
    json_decref(meta);
    rt_loader_close(&loader);
    rt_unbind(&tb);
    rt_unbind(&eb);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    return status ? fail(r, status) : 0;
}

/* What eval and predict start with: the --weights checkpoint into the parameters, and the test set. */
static int load_weights_and_test(Run *r, json_t **meta, RtDataset *test) {
    if (load_checkpoint(r, r->cfg.weights, meta) != RT_OK)
        return RT_ERR;
    return load_data(r, &r->cfg.test_data, "test", test);
}

static int cmd_eval(Run *r) {
    RtDataset test = {0};
    RtBinding eb = {0};
    json_t *meta = NULL;
    int status = 1;
    if (load_weights_and_test(r, &meta, &test) != RT_OK ||
        rt_bind(&eb, &r->md, &r->m.eval, &r->cfg, min64(r->cfg.batch, test.count), &r->err) != RT_OK)
        goto done;
    RtEvalResult ev;
    rt_evaluate(&eb, &r->md, &test, r->cfg.batch, &ev);
    if (r->cfg.json) {
        json_t *o = json_object();
        set_test_json(o, &ev, true);
        json_object_set_new(o, "samples", json_integer(ev.samples));
        write_json_line(stdout, o);
    } else {
        print_test(&ev);
    }
    status = 0;
done:
    json_decref(meta);
    rt_unbind(&eb);
    rt_dataset_free(&test);
    return status ? fail(r, status) : 0;
}

/* A label or prediction as the user reads it: the recipe's class name, a byte of a text as a character, a
   regression value, or the class index. */
static void label_text(const RtConfig *c, const RtDataset *d, double v, char *buf, size_t n) {
    int64_t k = (int64_t)v;
    if (d->kind == RT_DATA_CSV && d->regression)
        snprintf(buf, n, "%g", v);
    else if (k >= 0 && k < c->nclasses)
        snprintf(buf, n, "%s", c->classes[k]);
    else if (d->kind == RT_DATA_TEXT && k >= 0x20 && k < 0x7f && k != '"' && k != '\\')
        snprintf(buf, n, "%c", (char)k);
    else if (d->kind == RT_DATA_TEXT)
        snprintf(buf, n, "\\x%02x", (unsigned)(k & 0xff));
    else
        snprintf(buf, n, "%lld", (long long)k);
}

static int cmd_predict(Run *r) {
    RtDataset test = {0};
    RtBinding pb = {0};
    json_t *meta = NULL;
    int status = 1;
    if (load_weights_and_test(r, &meta, &test) != RT_OK)
        goto done;
    if (r->cfg.index >= test.count) {
        rt_errf(&r->err, "--index: %lld is out of range: the test set has %lld samples", (long long)r->cfg.index,
                (long long)test.count);
        status = 2;
        goto done;
    }
    if (rt_bind(&pb, &r->md, &r->m.predict, &r->cfg, 1, &r->err) != RT_OK)
        goto done;
    if (pb.logits_arg < 0) {
        rt_errf(&r->err, "the predict graph has no output");
        goto done;
    }
    rt_run_batch(&pb, &r->md, &test, &r->cfg.index, 1);
    /* the prediction of the sample's last position (of a sequence model, the next token): the argmax over the
       last dimension, or the value itself for a regression */
    const RtTensorSpec *out = &pb.g->args[pb.logits_arg];
    const void *logits = pb.args[pb.logits_arg];
    int64_t total = 1, ncls = out->rank ? out->shape[out->rank - 1] : 1;
    rt_numel(out, 1, &total);
    int64_t first = total - (ncls > 0 ? ncls : 1), best = first;
    for (int64_t k = first + 1; k < total; k++)
        if (rt_load(out->dtype, logits, k) > rt_load(out->dtype, logits, best))
            best = k;
    bool regression = test.kind == RT_DATA_CSV && test.regression;
    char pred[256], actual[256];
    label_text(&r->cfg, &test, regression ? rt_load(out->dtype, logits, first) : (double)(best - first), pred,
               sizeof pred);
    label_text(&r->cfg, &test, rt_dataset_label(&test, r->cfg.index, test.per_label - 1), actual, sizeof actual);
    printf("Predicted: \"%s\", Actual: \"%s\"\n", pred, actual);
    status = 0;
done:
    json_decref(meta);
    rt_unbind(&pb);
    rt_dataset_free(&test);
    return status ? fail(r, status) : 0;
}

static int cmd_info(Run *r) {
    const RtManifest *m = &r->m;
    printf("model:   %s\nsource:  %s\nhash:    %s\nlathe:   %s\n\nparameters:\n", m->model, m->source, m->hash,
           m->lathe);
    /* parameters first, then buffers, counted apart as PyTorch's parameters() leaves buffers out */
    int64_t total[2] = {0, 0};
    int count[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && count[1])
            printf("\nbuffers:\n");
        for (int i = 0; i < m->nparams; i++) {
            const RtParam *p = &m->params[i];
            if (p->buffer != (pass == 1))
                continue;
            int64_t n = 0;
            rt_numel(&p->t, 1, &n);
            total[pass] += n;
            count[pass]++;
            char shape[256], typed[272];
            rt_shape_text(p->t.shape, p->t.rank, shape, sizeof shape);
            snprintf(typed, sizeof typed, "%s%s", rt_dtype_name(p->t.dtype), shape);
            printf("  %-32s %-16s %10lld%s\n", p->t.name, typed, (long long)n,
                   p->trainable || p->buffer ? "" : "  (frozen)");
        }
        if (pass == 0)
            count[1] = m->nparams - count[0];
    }
    printf("total parameters: %lld\n", (long long)total[0]);
    if (count[1])
        printf("total buffer values: %lld\n", (long long)total[1]);
    printf("\narena bytes (batch %lld):\n", (long long)r->cfg.batch);
    const RtGraph *gs[] = {&m->train, &m->eval, &m->predict};
    for (int i = 0; i < 3; i++) {
        if (!gs[i]->present)
            continue;
        int64_t bytes;
        bool ok = !__builtin_mul_overflow(gs[i]->arena_per_n, r->cfg.batch, &bytes) &&
                  !__builtin_add_overflow(bytes, gs[i]->arena_const, &bytes);
        printf("  %-8s %lld  (%lld + %lld per sample, %d kernels)\n", gs[i]->name, ok ? (long long)bytes : -1LL,
               (long long)gs[i]->arena_const, (long long)gs[i]->arena_per_n, gs[i]->kernels);
    }
    /* the train step's peak, the very line `lathe compile --mem-report` ends with (a benchmark parses it):
       arena + parameters + optimizer state + inputs, from the manifest's "memory" (absent: an older one) */
    json_t *mem = json_object_get(json_object_get(json_object_get(m->root, "graphs"), "train"), "memory");
    json_t *in = json_object_get(mem, "inputs");
    if (m->train.present && json_is_integer(json_object_get(mem, "params")) &&
        json_is_integer(json_object_get(mem, "state")) && json_is_integer(json_array_get(in, 0)) &&
        json_is_integer(json_array_get(in, 1))) {
        int64_t batch = r->cfg.batch, params = json_integer_value(json_object_get(mem, "params")),
                state = json_integer_value(json_object_get(mem, "state")), arena, inputs, peak;
        bool ok = !__builtin_mul_overflow(m->train.arena_per_n, batch, &arena) &&
                  !__builtin_add_overflow(arena, m->train.arena_const, &arena) &&
                  !__builtin_mul_overflow(json_integer_value(json_array_get(in, 1)), batch, &inputs) &&
                  !__builtin_add_overflow(inputs, json_integer_value(json_array_get(in, 0)), &inputs) &&
                  !__builtin_add_overflow(arena, params, &peak) && !__builtin_add_overflow(peak, state, &peak) &&
                  !__builtin_add_overflow(peak, inputs, &peak);
        if (ok)
            printf("\npeak: %lld bytes at batch %lld (arena %lld, parameters %lld, optimizer state %lld, batch "
                   "inputs %lld)\n", (long long)peak, (long long)batch, (long long)arena, (long long)params,
                   (long long)state, (long long)inputs);
    }
    printf("\nthreads: %d\n", lathe_pool_threads());
    printf("\nrecipe:\n");
    const char *key;
    json_t *v;
    json_object_foreach(r->cfg.recipe, key, v) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        printf("  %-10s %s\n", key, s ? s : "?");
        free(s);
    }
    return 0;
}

static int dispatch(Run *r, int argc, char **argv) {
    int rc = rt_config_parse(&r->cfg, &r->m, argc, argv, &r->err);
    if (rc == RT_HELP) {
        rt_usage(stdout, r->prog, (int)r->cfg.cmd);
        return 0;
    }
    if (rc != RT_OK)
        return fail(r, 2);
    lathe_pool_init(r->cfg.threads);
    if (r->cfg.cmd == RT_CMD_INFO)
        return cmd_info(r);
    if (rt_model_init(&r->md, &r->m, r->cfg.seed, &r->err) != RT_OK)
        return fail(r, 1);
    switch (r->cfg.cmd) {
    case RT_CMD_TRAIN: return cmd_train(r);
    case RT_CMD_EVAL: return cmd_eval(r);
    case RT_CMD_PREDICT: return cmd_predict(r);
    default: return 0;
    }
}

int rt_run(const char *manifest, LatheGraphFn train, LatheGraphFn eval, LatheGraphFn predict, int argc,
           char **argv) {
    Run r = {0};
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    r.prog = argc > 0 ? (slash ? slash + 1 : argv[0]) : "lathe-model";
    if (rt_manifest_parse(&r.m, manifest, &r.err) != RT_OK) {
        rt_manifest_free(&r.m);
        return fail(&r, 1);
    }
    r.m.train.fn = train;
    r.m.eval.fn = eval;
    r.m.predict.fn = predict;
    int status = dispatch(&r, argc, argv);
    /* `eval --json > file` on a full disk must not exit 0 with the result lost */
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == 0) {
        rt_errf(&r.err, "standard output: cannot write: %s", strerror(errno));
        status = fail(&r, 1);
    }
    rt_model_free(&r.md);
    rt_config_free(&r.cfg);
    rt_manifest_free(&r.m);
    return status;
}

int rt_main(int argc, char **argv) {
    return rt_run(lathe_manifest, lathe_train, lathe_eval, lathe_predict, argc, argv);
}
