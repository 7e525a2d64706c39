/* driver.c: the commands of a produced executable (train, eval, predict, info). This is the only file that
   prints errors and picks exit statuses: 2 for a bad flag or value, 1 for bad data, checkpoints or I/O. */
#include "rt.h"
#include "lathe_kern.h"
#include "rexpr.h"
#include "tb.h"
#include "train.h"
#include "dist.h"
#include "profile.h"
#include "memcheck.h"
#include "cuda.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct Run {
    const char *prog;
    RtManifest m;
    RtConfig cfg;
    RtModel md;
    RtErr err;
    RtTransforms tf; /* the recipe's transforms: eval and predict apply their deterministic part */
    bool stopped;    /* train ended for SIGINT or SIGTERM: its status is 128 + the signal, and no error */
} Run;

/* Binds graph g for batches of max_n, with the recipe's deterministic transforms on its inputs. */
static int bind_eval(Run *r, RtBinding *b, const RtGraph *g, int64_t max_n) {
    RtLoaderRecipe lr;
    if (rt_bind(b, &r->md, g, &r->cfg, max_n, &r->err) != RT_OK ||
        rt_loader_recipe(r->cfg.recipe, b->x_arg >= 0 ? &b->g->args[b->x_arg] : NULL, &lr, &r->err) != RT_OK)
        return RT_ERR;
    r->tf = lr.tf;
    b->tf = &r->tf;
    return RT_OK;
}

/* The message is one line whatever it quotes: a control character of a --set value or a file name (a
   newline) is written as an escape (\n, \x01). */
static void print_error(const char *prog, const char *msg) {
    if (rt_dist_on()) /* which of the job's processes says it */
        fprintf(stderr, "%s (rank %d): error: ", prog, rt_dist.rank);
    else
        fprintf(stderr, "%s: error: ", prog);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stderr);
        else if (*p == '\t')
            fputs("\\t", stderr);
        else if (*p == '\r')
            fputs("\\r", stderr);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
}

static int fail(Run *r, int status) {
    print_error(r->prog, r->err.msg);
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
    /* a read-only folder fails now, not after the first epoch's work */
    if (access(dir, W_OK | X_OK) != 0)
        return rt_errf(e, "%s: cannot write in this folder: %s", dir, strerror(errno));
    return RT_OK;
}

static int load_data(Run *r, const RtDataSpec *spec, const char *key, RtDataset *d) {
    if (!spec->present)
        return rt_errf(&r->err, "the recipe has no %s = idx(...), csv(...), npy(...), images(...), text(...) or "
                                "generate(...) to read", key);
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
    int rc = rt_st_load(path, ts, np, ts + np, r->md.nstate + r->md.nopt_tensors, meta, &r->err);
    free(ts);
    if (rc == RT_OK) {
        const char *h = json_string_value(json_object_get(*meta, "hash"));
        if (h && strcmp(h, r->m.hash) != 0) /* resuming another model's run */
            return rt_errf(&r->err, "%s: written by a model with hash %s, this one has %s: --resume continues a run of "
                                    "the same model (--init-from starts from another's weights)", path, h, r->m.hash);
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

/* Where a run stands after an epoch: what --resume needs besides the tensors. */
typedef struct Progress {
    int64_t epochs, batch, optimizer_steps; /* batch: batches of the current epoch done (a mid-epoch checkpoint) */
    double best;          /* the monitored value of the best epoch (NAN: none yet) */
    int64_t best_epoch, wait;
} Progress;

static void meta_int(json_t *meta, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    json_object_set_new(meta, key, json_string(buf));
}

static int save_checkpoint(Run *r, const char *dir, const char *file, const Progress *pg) {
    char path[4200], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    json_t *meta = json_object();
    meta_int(meta, "epoch", pg->epochs);
    meta_int(meta, "batch", pg->batch);
    meta_int(meta, "step", r->md.step);
    meta_int(meta, "optimizer_steps", pg->optimizer_steps);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->cfg.seed);
    json_object_set_new(meta, "seed", json_string(buf));
    if (!isnan(pg->best)) {
        snprintf(buf, sizeof buf, "%.17g", pg->best);
        json_object_set_new(meta, "best", json_string(buf));
        meta_int(meta, "best_epoch", pg->best_epoch);
    }
    meta_int(meta, "wait", pg->wait);
    /* what the counters above stand for: every draw is keyed by them, so they are the whole random state */
    json_object_set_new(meta, "data_order", json_string("permutation of (seed, epoch); resumes at batch"));
    json_object_set_new(meta, "rng", json_string("pcg32 streams keyed by (seed, epoch, sample) and Philox by (seed, step)"));
    json_object_set_new(meta, "schedule", json_string("closed form of (epoch, optimizer_steps)"));
    json_object_set_new(meta, "model", json_string(r->m.model));
    json_object_set_new(meta, "hash", json_string(r->m.hash));
    json_object_set_new(meta, "lathe", json_string(RT_VERSION));
    RtTensor *ts = rt_model_tensors(&r->md);
    int rc = ts ? rt_st_save(path, ts, r->m.nparams + r->md.nstate + r->md.nopt_tensors, meta, &r->err)
                : rt_errf(&r->err, "out of memory writing %s", path);
    free(ts);
    json_decref(meta);
    return rc;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The temporary files of checkpoint writes that a killed run left in dir (".NAME.tmp-PID" of a process that is
   gone): a complete checkpoint is never among them, so they go. */
static void remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *t = de->d_name[0] == '.' ? strstr(de->d_name, ".safetensors.tmp-") : NULL;
        char *end;
        long pid = t ? strtol(t + 17, &end, 10) : 0;
        if (!t || pid <= 0 || *end || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

/* --keep K: the K most recent checkpoint-STEP.safetensors stay, older ones go. */
static void prune_checkpoints(const char *dir, int64_t keep) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t steps[4096];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        long long k;
        char tail[32];
        if (sscanf(de->d_name, "checkpoint-%lld.%31s", &k, tail) == 2 && !strcmp(tail, "safetensors"))
            steps[n++] = k;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (newer >= keep) {
            char path[4200];
            snprintf(path, sizeof path, "%s/checkpoint-%lld.safetensors", dir, (long long)steps[i]);
            unlink(path);
        }
    }
}

/* Writes the checkpoint of pg: DIR/last.safetensors, and with --keep K also DIR/checkpoint-STEP.safetensors
   (the K most recent kept). Each file is written whole and renamed into place: what is on disk is always a
   complete checkpoint. */
static int write_checkpoints(Run *r, const Progress *pg) {
    const char *dir = r->cfg.checkpoint_dir;
    if (save_checkpoint(r, dir, "last.safetensors", pg) != RT_OK)
        return RT_ERR;
    if (r->cfg.keep <= 0)
        return RT_OK;
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%lld.safetensors", (long long)r->md.step);
    if (save_checkpoint(r, dir, name, pg) != RT_OK)
        return RT_ERR;
    prune_checkpoints(dir, r->cfg.keep);
    return RT_OK;
}

/* What the trainer's step checkpoints need from the train command. */
typedef struct StepCkpt {
    Run *r;
    RtTrainer *tr;
    double best;
    int64_t best_epoch, wait;
} StepCkpt;

static int step_checkpoint(void *ctx, int64_t epoch, int64_t batches_done, RtErr *e) {
    StepCkpt *sc = ctx;
    Progress pg = {epoch, batches_done, sc->tr->has_opt ? sc->tr->opt.steps : sc->r->md.step, sc->best,
                   sc->best_epoch, sc->wait};
    (void)e; /* save_checkpoint reports into the run's own error */
    return write_checkpoints(sc->r, &pg);
}

/* SIGINT and SIGTERM during train set rt_stop_signal (train.h) and nothing else. The handler puts both back
   as they were (their default), so that a second signal (a second Ctrl-C while the checkpoint is written)
   ends the process at once: the write is atomic, so the folder keeps the previous checkpoint and a temporary
   file that the next run removes. */
static struct sigaction saved_int, saved_term;

static void release_stop_signals(void) {
    sigaction(SIGINT, &saved_int, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
}

static void on_stop_signal(int sig) {
    release_stop_signals(); /* sigaction is async-signal-safe */
    rt_stop_signal = sig;
}

/* A signal that the parent ignores stays ignored (a shell's background job ignores SIGINT), as the GNU
   coding standards ask of a program that catches it. */
static void catch_stop_signals(void) {
    struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    rt_stop_signal = 0;
    sigaction(SIGINT, NULL, &saved_int);
    sigaction(SIGTERM, NULL, &saved_term);
    if (saved_int.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
    if (saved_term.sa_handler != SIG_IGN)
        sigaction(SIGTERM, &sa, NULL);
}

/* The run stopped for rt_stop_signal with `batches` batches of epoch ep (from 0) done: the checkpoint of that
   point, resumable as a --checkpoint-every one is, one line, and 128 + the signal as the status, as a shell
   reports a process that the signal ended. With several processes the ranks that did not see the signal stop
   too (the trainer agrees on the step), as SIGTERM. */
static int stop_run(Run *r, StepCkpt *sc, int64_t ep, int64_t batches) {
    int sig = rt_stop_signal ? (int)rt_stop_signal : SIGTERM;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    const char *dir = r->cfg.checkpoint_dir;
    if (dir && step_checkpoint(sc, ep, batches, &r->err) != RT_OK)
        return 1; /* the message says why nothing was saved; the previous checkpoint is intact */
    r->stopped = true;
    if (rt_dist.rank != 0)
        return 128 + sig;
    if (dir)
        fprintf(stderr, "%s: stopped by %s in epoch %lld after %lld batches: saved %s/last.safetensors (continue "
                        "with --resume %s/last.safetensors)\n", r->prog, name, (long long)ep + 1, (long long)batches,
                dir, dir);
    else
        fprintf(stderr, "%s: stopped by %s in epoch %lld after %lld batches: nothing saved (no --checkpoint-dir)\n",
                r->prog, name, (long long)ep + 1, (long long)batches);
    return 128 + sig;
}

/* --init-from: the matching tensors of another model's file, reported as load_state_dict(strict=False)
   reports them. The optimizer's state starts fresh. */
static int init_from(Run *r) {
    const RtConfig *c = &r->cfg;
    RtTensor *ts = rt_model_tensors(&r->md);
    if (!ts)
        return rt_errf(&r->err, "out of memory");
    RtStInit init = {.nmap = c->ninit_map, .from = (const char *const *)c->init_map_from,
                     .to = (const char *const *)c->init_map_to};
    int rc = rt_st_init_from(c->init_from, ts, r->m.nparams, &init, &r->err);
    free(ts);
    if (rc != RT_OK)
        return RT_ERR;
    printf("Loaded %d of %d tensors from %s\n", init.loaded, r->m.nparams, c->init_from);
    printf("  missing (kept as initialized): %s\n", init.missing ? init.missing : "none");
    printf("  unexpected (not in the model): %s\n", init.unexpected ? init.unexpected : "none");
    rt_st_init_free(&init);
    return RT_OK;
}

/* --log-csv: a header of the first epoch's keys (numbers, booleans and nulls; arrays left out), then a row
   per epoch in that order. An existing file (a resumed run) keeps its header. */
static int write_csv_row(FILE *f, json_t *o, bool header) {
    const char *key;
    json_t *v;
    bool first = true;
    if (header) {
        json_object_foreach(o, key, v) {
            if (json_is_array(v) || json_is_object(v))
                continue;
            fprintf(f, "%s%s", first ? "" : ",", key);
            first = false;
        }
        fprintf(f, "\n");
        first = true;
    }
    json_object_foreach(o, key, v) {
        if (json_is_array(v) || json_is_object(v))
            continue;
        if (!first)
            fputc(',', f);
        first = false;
        if (json_is_integer(v))
            fprintf(f, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            fprintf(f, "%.10g", json_real_value(v));
        else if (json_is_boolean(v))
            fputs(json_is_true(v) ? "true" : "false", f);
        else if (json_is_string(v))
            fprintf(f, "%s", json_string_value(v));
    }
    fprintf(f, "\n");
    return fflush(f) == 0 && !ferror(f) ? RT_OK : RT_ERR;
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

/* "Test Error: \n Accuracy: 65.3%, Avg loss: 1.071 \n" as the PyTorch Quickstart prints it, then the other
   metrics on a line of their own. */
static void print_scores(const char *title, const RtMetrics *s) {
    double acc = rt_metrics_value(s, "accuracy"), loss = rt_metrics_value(s, "loss");
    if (isnan(acc))
        printf("%s: \n Avg loss: %f \n", title, loss);
    else
        printf("%s: \n Accuracy: %.1f%%, Avg loss: %f \n", title, 100.0 * acc, loss);
    bool more = s->spec.n > 1 || (s->spec.n == 1 && s->spec.kind[0] != RT_METRIC_ACCURACY);
    if (more) { /* the recipe's other metrics */
        char line[1024];
        rt_metrics_line(s, line, sizeof line);
        printf(" %s\n", line);
    }
    printf("\n");
}

/* The monitored value among the epoch's scores; NAN where that pass did not run. */
static double monitored(const RtEarlyStop *es, const RtMetrics *train, const RtMetrics *val, const RtMetrics *test,
                        bool has_val, bool has_test) {
    const char *m = es->monitor;
    if (!strncmp(m, "train_", 6))
        return rt_metrics_value(train, m + 6);
    if (!strncmp(m, "val_", 4))
        return has_val ? rt_metrics_value(val, m + 4) : NAN;
    return has_test ? rt_metrics_value(test, m + 5) : NAN;
}

static bool improves(const RtEarlyStop *es, double v, double best) {
    if (isnan(v))
        return false;
    if (isnan(best))
        return true;
    return es->maximize ? v > best + es->min_delta : v < best - es->min_delta;
}

/* The validation samples: a split of the training data (validation = 0.1), or a source of its own. */
typedef struct Validation {
    bool present;
    RtDataset own;       /* validation = idx(...) */
    bool has_own;
    int64_t *train_idx, *val_idx;
    int64_t ntrain, nval;
} Validation;

static int load_validation(Run *r, RtDataset *train, Validation *v) {
    memset(v, 0, sizeof *v);
    const json_t *j = json_object_get(r->cfg.recipe, "validation");
    if (!j || json_is_null(j))
        return RT_OK;
    v->present = true;
    if (json_is_number(j))
        return rt_split(train->count, json_number_value(j), r->cfg.seed, &v->train_idx, &v->ntrain, &v->val_idx,
                        &v->nval, &r->err);
    RtDataSpec spec;
    if (rt_data_spec_parse(j, &r->m, "validation", &spec, &r->err) != RT_OK ||
        load_data(r, &spec, "validation", &v->own) != RT_OK)
        return RT_ERR;
    v->has_own = true;
    v->nval = v->own.count;
    return RT_OK;
}

static void free_validation(Validation *v) {
    if (v->has_own)
        rt_dataset_free(&v->own);
    free(v->train_idx);
    free(v->val_idx);
}

/* After an evaluation pass: with --detect-anomaly, a non-finite kernel output of the eval graph stops the run;
   without, the checks are off and nothing is recorded. */
static int eval_anomaly(Run *r, const RtBinding *eb) {
    if (!r->cfg.detect_anomaly)
        return RT_OK;
    return rt_anomaly_check_run(eb, &r->md, -1, false, false, &r->err);
}

/* Several processes start from rank 0's parameters, buffers and optimizer state: each has read the same
   seed and files, so this guards against what differs between machines (a file, a math library). */
static int sync_model(Run *r) {
    if (!rt_dist_on())
        return RT_OK;
    RtTensor *ts = rt_model_tensors(&r->md);
    if (!ts)
        return rt_errf(&r->err, "out of memory");
    int n = r->m.nparams + r->md.nstate + r->md.nopt_tensors, rc = RT_OK;
    for (int i = 0; i < n && rc == RT_OK; i++) {
        RtTensorSpec sp = {.dtype = ts[i].dtype, .rank = ts[i].rank};
        memcpy(sp.shape, ts[i].shape, sizeof sp.shape);
        int64_t k;
        if (!rt_numel(&sp, 1, &k))
            rc = rt_errf(&r->err, "%s: too large", ts[i].name);
        else
            rc = rt_dist_bcast(ts[i].data, k * (int64_t)rt_dtype_size(ts[i].dtype), &r->err);
    }
    free(ts);
    return rc;
}

static int cmd_train(Run *r) {
    RtConfig *c = &r->cfg;
    if (rt_dist.rank != 0) { /* rank 0 alone writes checkpoints and logs (the same numbers on every rank) */
        c->checkpoint_dir = c->log_json = c->log_csv = c->tensorboard = NULL;
        c->checkpoint_every = c->keep = 0;
    }
    RtDataset train = {0}, test = {0};
    Validation val = {0};
    RtTrainer tr = {0};
    bool tr_open = false;
    RtBinding eb = {0};
    RtMetrics vs = {0}, ts = {0};
    RtEarlyStop es;
    FILE *log = NULL, *csv = NULL;
    bool csv_header = true;
    RtTb tb = {0};
    json_t *meta = NULL;
    int status = 1;
    bool signals = false; /* SIGINT and SIGTERM are caught */
    int64_t start_epoch = 0, start_batch = 0, best_epoch = 0, wait = 0;
    double best = NAN;
    if (rt_early_stop_parse(c->recipe, &es, &r->err) != RT_OK) {
        status = 2;
        goto done;
    }
    /* a resumed run takes its seed before anything is drawn (the validation split, the loader's transforms) */
    if (c->resume) {
        int64_t seed = (int64_t)c->seed;
        if (rt_st_read_meta(c->resume, &meta, &r->err) != RT_OK || meta_count(r, meta, "seed", &seed) != RT_OK)
            goto done;
        if (!c->seed_given)
            c->seed = (uint64_t)seed;
        json_decref(meta);
        meta = NULL;
    }
    if (load_data(r, &c->train_data, "data", &train) != RT_OK || load_validation(r, &train, &val) != RT_OK)
        goto done;
    if (c->test_data.present && (load_data(r, &c->test_data, "test", &test) != RT_OK ||
                                 rt_dataset_same_classes(&train, &test, &r->err) != RT_OK))
        goto done;
    if (val.has_own && rt_dataset_same_classes(&train, &val.own, &r->err) != RT_OK)
        goto done;
    int64_t ntrain = val.train_idx ? val.ntrain : train.count;
    /* out of memory told before it happens: the whole run at its batch (or --batch auto's pick) against the
       memory there is, now that the data sets' sizes are known and before the step's buffers exist */
    RtMemData held = {{&train, &test, val.has_own ? &val.own : NULL}, ntrain, val.train_idx ? val.nval : 0,
                      val.nval > test.count ? val.nval : test.count};
    if (rt_mem_check_train(&r->m, c, &held, stdout, &r->err) != RT_OK)
        goto done;
    if (rt_trainer_open(&tr, &r->md, c, &train, val.train_idx, ntrain, &r->err) != RT_OK) {
        tr_open = true;
        goto done;
    }
    tr_open = true;
    int64_t eval_n = min64(c->batch, val.nval > test.count ? val.nval : test.count);
    if (eval_n > 0 && (bind_eval(r, &eb, &r->m.eval, eval_n) != RT_OK ||
                       rt_scores_open(&vs, &r->m, c->recipe, &r->err) != RT_OK ||
                       rt_scores_open(&ts, &r->m, c->recipe, &r->err) != RT_OK))
        goto done;
    if (c->resume) { /* after the trainer, whose optimizer state the checkpoint holds too */
        if (load_checkpoint(r, c->resume, &meta) != RT_OK)
            goto done;
        start_epoch = -1;
        int64_t steps = 0;
        if (meta_count(r, meta, "epoch", &start_epoch) || meta_count(r, meta, "batch", &start_batch) ||
            meta_count(r, meta, "step", &r->md.step) || meta_count(r, meta, "optimizer_steps", &steps) ||
            meta_count(r, meta, "best_epoch", &best_epoch) || meta_count(r, meta, "wait", &wait))
            goto done;
        if (start_epoch < 0) {
            rt_errf(&r->err, "%s: the metadata has no epoch count to resume from", c->resume);
            goto done;
        }
        if (start_batch >= tr.steps_per_epoch * (tr.ospec.accumulate > 0 ? tr.ospec.accumulate : 1) + 1) {
            rt_errf(&r->err, "%s: batch %lld of the epoch is past the epoch's batches at this batch size (resume with "
                             "the run's --batch and --limit)", c->resume, (long long)start_batch);
            goto done;
        }
        if (tr.has_opt)
            tr.opt.steps = steps;
        tr.start_batch = start_batch;
        const char *b = json_string_value(json_object_get(meta, "best"));
        best = b ? strtod(b, NULL) : NAN;
    } else if (c->init_from && init_from(r) != RT_OK) {
        goto done;
    }
    if (sync_model(r) != RT_OK)
        goto done;
    if (c->checkpoint_dir && mkdir_p(c->checkpoint_dir, &r->err) != RT_OK)
        goto done;
    if (c->checkpoint_dir)
        remove_stale_temporaries(c->checkpoint_dir);
    if (c->log_json && !(log = fopen(c->log_json, "a"))) {
        rt_errf(&r->err, "%s: cannot open: %s", c->log_json, strerror(errno));
        goto done;
    }
    if (c->log_csv) {
        struct stat st;
        csv_header = !(c->resume && stat(c->log_csv, &st) == 0 && st.st_size > 0);
        if (!(csv = fopen(c->log_csv, csv_header ? "w" : "a"))) {
            rt_errf(&r->err, "%s: cannot open: %s", c->log_csv, strerror(errno));
            goto done;
        }
    }
    if (c->tensorboard && rt_tb_open(&tb, c->tensorboard, &r->err) != RT_OK)
        goto done;
    rt_anomaly_enable(c->detect_anomaly);
    tr.check_grads = c->detect_anomaly;
    StepCkpt sc = {r, &tr, best, best_epoch, wait};
    if (c->checkpoint_dir && c->checkpoint_every) {
        tr.every = c->checkpoint_every;
        tr.checkpoint = step_checkpoint;
        tr.ctx = &sc;
    }
    printf("Optimizer: %s\n", rt_trainer_kind(&tr));
    if (rt_dist_on())
        printf("Processes: %d (%s), %lld samples per global batch, gradients in %d buckets\n", rt_dist.size,
               rt_dist.ops->name, (long long)c->batch, tr.sync.nbuckets);
    if (start_epoch >= c->epochs)
        printf("%s already holds %lld epochs (of %lld)\n", c->resume, (long long)start_epoch, (long long)c->epochs);
    catch_stop_signals();
    signals = true;
    for (int64_t ep = start_epoch; ep < c->epochs; ep++) {
        /* a signal during the previous epoch's last batch, evaluation or checkpoint (alone: several processes
           agree on a step inside the epoch) */
        if (rt_stop_signal && !rt_dist_on()) {
            fflush(stdout);
            status = stop_run(r, &sc, ep, tr.start_batch);
            goto done;
        }
        printf("Epoch %lld\n-------------------------------\n", (long long)ep + 1);
        double t0 = now();
        int trc = rt_trainer_epoch(&tr, ep, stdout, &r->err);
        if (trc == RT_STOPPED) {
            fflush(stdout);
            status = stop_run(r, &sc, ep, tr.stop_batch);
            goto done;
        }
        if (trc != RT_OK)
            goto done;
        double secs = now() - t0;
        /* the epoch's training metrics and the learning rate it ran at, as the JSON log has them */
        char line[1024];
        rt_metrics_line(&tr.scores, line, sizeof line);
        printf("Train: %s, lr %g\n\n", line, tr.lr[0]);
        if (val.present) {
            rt_evaluate_scores(&eb, &r->md, val.has_own ? &val.own : &train, val.val_idx, val.nval, c->batch, &vs);
            if (eval_anomaly(r, &eb) != RT_OK)
                goto done;
            print_scores("Validation", &vs);
        }
        if (test.count) {
            rt_evaluate_scores(&eb, &r->md, &test, NULL, test.count, c->batch, &ts);
            if (eval_anomaly(r, &eb) != RT_OK)
                goto done;
            print_scores("Test Error", &ts);
        }
        fflush(stdout);
        json_t *o = json_object();
        json_object_set_new(o, "epoch", json_integer(ep + 1));
        json_object_set_new(o, "lr", number(tr.lr[0]));
        json_object_set_new(o, "steps", json_integer(tr.has_opt ? tr.opt.steps : r->md.step));
        rt_metrics_json(&tr.scores, o, "train_");
        if (val.present)
            rt_metrics_json(&vs, o, "val_");
        if (test.count)
            rt_metrics_json(&ts, o, "test_");
        json_object_set_new(o, "seconds", number(secs));
        json_object_set_new(o, "samples_per_s", number(secs > 0 ? (double)ntrain / secs : 0.0));
        if (log && write_json_line(log, json_incref(o)) != RT_OK) {
            json_decref(o);
            rt_errf(&r->err, "%s: cannot write: %s", c->log_json, strerror(errno));
            goto done;
        }
        if (csv && write_csv_row(csv, o, csv_header) != RT_OK) {
            json_decref(o);
            rt_errf(&r->err, "%s: cannot write: %s", c->log_csv, strerror(errno));
            goto done;
        }
        csv_header = false;
        if (c->tensorboard && rt_tb_epoch(&tb, ep + 1, o, c->tb_histograms ? &r->md : NULL, &r->err) != RT_OK) {
            json_decref(o);
            goto done;
        }
        json_decref(o);
        bool stop = false, better = false;
        if (es.present || val.present || test.count) {
            RtEarlyStop sel = es;
            if (!es.present) /* model selection without early stopping: the validation (or test) loss */
                sel = (RtEarlyStop){.monitor = val.present ? "val_loss" : "test_loss"};
            double v = monitored(&sel, &tr.scores, &vs, &ts, val.present, test.count > 0);
            better = improves(&sel, v, best);
            if (better) {
                best = v;
                best_epoch = ep + 1;
                wait = 0;
            } else if (es.present && ++wait >= es.patience) {
                stop = true;
            }
        }
        sc.best = best;
        sc.best_epoch = best_epoch;
        sc.wait = wait;
        if (c->checkpoint_dir) {
            Progress pg = {ep + 1, 0, tr.has_opt ? tr.opt.steps : r->md.step, best, best_epoch, wait};
            if ((better && save_checkpoint(r, c->checkpoint_dir, "best.safetensors", &pg) != RT_OK) ||
                write_checkpoints(r, &pg) != RT_OK)
                goto done;
        }
        if (stop) {
            printf("Early stopping: %s has not improved for %lld epochs (best %g at epoch %lld)\n", es.monitor,
                   (long long)es.patience, best, (long long)best_epoch);
            break;
        }
    }
    printf("Done!\n");
    status = 0;
done:
    if (signals)
        release_stop_signals();
    if (log && fclose(log) != 0 && status == 0) {
        rt_errf(&r->err, "%s: cannot write: %s", c->log_json, strerror(errno));
        status = 1;
    }
    if (csv && fclose(csv) != 0 && status == 0) {
        rt_errf(&r->err, "%s: cannot write: %s", c->log_csv, strerror(errno));
        status = 1;
    }
    if (rt_tb_close(&tb, status == 0 ? &r->err : NULL) != RT_OK && status == 0)
        status = 1;
    json_decref(meta);
    rt_metrics_close(&vs);
    rt_metrics_close(&ts);
    rt_unbind(&eb);
    if (tr_open)
        rt_trainer_close(&tr);
    free_validation(&val);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    return status && !r->stopped ? fail(r, status) : status;
}

/* What eval and predict start with: the --weights checkpoint into the parameters, and the test set. */
/* eval and predict's --weights: every parameter and buffer of the model, and nothing else but the state of
   whichever optimizer trained it ("optimizer.*", which they do not need). */
static int load_weights(Run *r, const char *path, json_t **meta) {
    RtTensor *ts = rt_model_tensors(&r->md);
    if (!ts)
        return rt_errf(&r->err, "out of memory");
    /* one read of the file: the tensors, the metadata, and the optimizer's state checked and left aside */
    RtStInit init = {.skip = "optimizer.", .meta = meta};
    int rc = rt_st_init_from(path, ts, r->m.nparams, &init, &r->err);
    free(ts);
    if (rc != RT_OK)
        return RT_ERR;
    const char *names = init.missing ? init.missing : init.unexpected;
    if (names) /* the first name of the list */
        rc = rt_errf(&r->err, "%s: %s tensor '%.*s'%s", path, init.missing ? "missing" : "unexpected",
                     (int)strcspn(names, ","), names,
                     init.missing ? "" : " (the model has no parameter of that name)");
    rt_st_init_free(&init);
    if (rc == RT_OK) {
        const char *h = json_string_value(json_object_get(*meta, "hash"));
        if (h && strcmp(h, r->m.hash) != 0)
            fprintf(stderr, "%s: warning: %s was written by a model with hash %s, this one has %s\n", r->prog, path,
                    h, r->m.hash);
    }
    return rc;
}

static int load_weights_and_test(Run *r, json_t **meta, RtDataset *test) {
    if (load_weights(r, r->cfg.weights, meta) != RT_OK)
        return RT_ERR;
    return load_data(r, &r->cfg.test_data, "test", test);
}

static int cmd_eval(Run *r) {
    RtDataset test = {0};
    RtBinding eb = {0};
    RtMetrics sc = {0};
    json_t *meta = NULL;
    int status = 1;
    if (load_weights_and_test(r, &meta, &test) != RT_OK ||
        bind_eval(r, &eb, &r->m.eval, min64(r->cfg.batch, test.count)) != RT_OK ||
        rt_scores_open(&sc, &r->m, r->cfg.recipe, &r->err) != RT_OK)
        goto done;
    rt_evaluate_scores(&eb, &r->md, &test, NULL, test.count, r->cfg.batch, &sc);
    if (r->cfg.json) {
        json_t *o = json_object();
        rt_metrics_json(&sc, o, "test_");
        json_object_set_new(o, "samples", json_integer(test.count));
        write_json_line(stdout, o);
    } else {
        print_scores("Test Error", &sc);
    }
    status = 0;
done:
    json_decref(meta);
    rt_metrics_close(&sc);
    rt_unbind(&eb);
    rt_dataset_free(&test);
    return status ? fail(r, status) : 0;
}

/* A label or prediction as the user reads it: the recipe's class name, the data's own (an image folder's
   class, a character of a text), a byte of a text as a character, a regression value, or the class index. */
static void label_text(const RtConfig *c, const RtDataset *d, double v, char *buf, size_t n) {
    int64_t k = (int64_t)v;
    if (d->regression)
        snprintf(buf, n, "%g", v);
    else if (k < 0)
        snprintf(buf, n, "(no label: %lld)", (long long)k); /* a padded position's ignored label */
    else if (k < c->nclasses)
        snprintf(buf, n, "%s", c->classes[k]);
    else if (k < d->nclass_names && d->class_names[k])
        snprintf(buf, n, "%s", d->class_names[k]);
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
    if (bind_eval(r, &pb, &r->m.predict, 1) != RT_OK)
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
    /* of a sequence, the last position that has a label (padded lines end in ignored ones) */
    int64_t pos = test.per_label - 1;
    while (pos > 0 && rt_dataset_label(&test, r->cfg.index, pos) < 0 && !test.regression)
        pos--;
    int64_t positions = ncls > 0 ? total / ncls : 1;
    if (test.per_label != positions) /* labels and outputs do not line up position by position */
        pos = positions - 1;
    int64_t first = pos * (ncls > 0 ? ncls : 1), best = first;
    for (int64_t k = first + 1; k < first + ncls; k++)
        if (rt_load(out->dtype, logits, k) > rt_load(out->dtype, logits, best))
            best = k;
    bool regression = test.regression;
    char pred[256], actual[256];
    label_text(&r->cfg, &test, regression ? rt_load(out->dtype, logits, first) : (double)(best - first), pred,
               sizeof pred);
    label_text(&r->cfg, &test, rt_dataset_label(&test, r->cfg.index, test.per_label == positions ? pos : test.per_label - 1),
               actual, sizeof actual);
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
    const RtGraph *gs[] = {&m->train, &m->grads, &m->eval, &m->predict};
    for (int i = 0; i < 4; i++) {
        if (!gs[i]->present)
            continue;
        int64_t bytes;
        bool ok = !__builtin_mul_overflow(gs[i]->arena_per_n, r->cfg.batch, &bytes) &&
                  !__builtin_add_overflow(bytes, gs[i]->arena_const, &bytes);
        printf("  %-8s %lld  (%lld + %lld per sample, %d kernels)\n", gs[i]->name, ok ? (long long)bytes : -1LL,
               (long long)gs[i]->arena_const, (long long)gs[i]->arena_per_n, gs[i]->kernels);
    }
    /* the train step's peak, the very line `lathe compile --mem-report` ends with (a benchmark parses it) */
    RtPeak pk;
    if (rt_plan_peak(m, r->cfg.recipe, r->cfg.batch, &pk, &r->err) == RT_OK) {
        printf("\n");
        rt_peak_print(stdout, &pk, r->cfg.batch);
        rt_mem_info(stdout, m, r->cfg.recipe); /* beside it, the memory there is */
    }
    printf("\nthreads: %d\n", lathe_pool_threads());
    printf("\nrecipe:\n");
    const char *key;
    json_t *v;
    json_object_foreach(r->cfg.recipe, key, v) {
        char *s = rt_rexpr_text(v); /* as the model file writes it: SGD(lr = 0.001) */
        printf("  %-15s %s\n", key, s ? s : "?");
        free(s);
    }
    printf("\n");
    rt_cuda_print_info(stdout);
    return rt_device_select(&r->m, r->cfg.device, r->cfg.batch, r->prog, stdout, &r->err) == RT_OK ? 0 : fail(r, 1);
}

static int dispatch(Run *r, int argc, char **argv) {
    int rc = rt_config_parse(&r->cfg, &r->m, argc, argv, &r->err);
    if (rc == RT_HELP) {
        rt_usage(stdout, r->prog, (int)r->cfg.cmd);
        return 0;
    }
    /* a bad value of the recipe (from --set, or a manifest that the compiler did not check) before any work */
    if (rc != RT_OK || (r->cfg.cmd != RT_CMD_INFO && rt_recipe_check(&r->m, r->cfg.recipe, &r->err) != RT_OK))
        return fail(r, 2);
    if (r->cfg.dist_timeout > 0)
        rt_dist.timeout = r->cfg.dist_timeout;
    /* --device: CUDA reroutes the graph entries, before --profile wraps them (info says it at its end) */
    if (r->cfg.cmd != RT_CMD_INFO && rt_device_select(&r->m, r->cfg.device, r->cfg.batch, r->prog, stderr, &r->err) != RT_OK)
        return fail(r, 1);
    /* an unwritable --profile FILE fails here, before any work; rank 0 alone profiles a job */
    if (r->cfg.profile && rt_dist.rank == 0 &&
        rt_profile_open(&r->m, r->cfg.profile, r->cfg.profile_first, r->cfg.profile_last, &r->err) != RT_OK)
        return fail(r, 1);
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
    RtEntries fns = {.train = train, .eval = eval, .predict = predict};
    return rt_run_entries(manifest, &fns, argc, argv);
}

int rt_run_entries(const char *manifest, const RtEntries *fns, int argc, char **argv) {
    Run r = {0};
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    r.prog = argc > 0 ? (slash ? slash + 1 : argv[0]) : "lathe-model";
    if (rt_manifest_parse(&r.m, manifest, &r.err) != RT_OK) {
        rt_manifest_free(&r.m);
        return fail(&r, 1);
    }
    r.m.train.fn = fns->train;
    r.m.grads.fn = fns->grads;
    r.m.eval.fn = fns->eval;
    r.m.predict.fn = fns->predict;
    if (rt_dist_init(&r.err) != RT_OK) {
        rt_manifest_free(&r.m);
        return fail(&r, 2);
    }
    int status = dispatch(&r, argc, argv);
    rt_device_release();
    /* --profile's trace and table, after a failed run too: of the steps that ran */
    if (rt_profile_close(&r.m, stderr, &r.err) != RT_OK && status == 0)
        status = fail(&r, 1);
    /* `eval --json > file` on a full disk must not exit 0 with the result lost */
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == 0) {
        rt_errf(&r.err, "standard output: cannot write: %s", strerror(errno));
        status = fail(&r, 1);
    }
    rt_model_free(&r.md);
    rt_config_free(&r.cfg);
    rt_manifest_free(&r.m);
    /* a failed rank ends the job rather than leave the others waiting for it until the deadline; a stopped
       one has stopped at the same step as the others (rank 0 may still be writing the checkpoint) */
    if (status != 0 && !r.stopped)
        rt_dist_abort(status);
    rt_dist_finalize();
    return status;
}
