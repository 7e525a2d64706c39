/* train.h: training and evaluation over a dataset (train.c). A trainer runs the recipe's training loop for
   one epoch at a time: it gathers batches (on the loader's threads), sets each step's learning rate from the
   schedule, runs the train step, and feeds the runtime's optimizer and the metrics. The step is the fused
   train graph where the run's optimizer is the one compiled into it (plain SGD), or else the grads graph
   followed by the runtime's optimizer (runtime/optim.h); both give PyTorch's update. */
#ifndef LATHE_RT_TRAIN_H
#define LATHE_RT_TRAIN_H

#include "rt.h"
#include "dist.h"
#include "lrsched.h"
#include "metrics.h"
#include "optim.h"

#include <signal.h>

/* The recipe's metrics (metrics.h) for the model m: its classes, whether its labels are values, and the
   model file's own metrics among the eval graph's outputs. */
int rt_scores_open(RtMetrics *s, const RtManifest *m, const json_t *recipe, RtErr *e);
/* Adds the batch of n samples that binding b has just run: its loss, logits and labels, and its outputs
   "metric.NAME". */
void rt_scores_batch(RtMetrics *s, const RtBinding *b, int64_t n);

/* Runs b's graph (eval) over the samples subset[0..count) of d (subset NULL: 0..count-1) in batches of batch,
   in order, into s (reset first). */
void rt_evaluate_scores(RtBinding *b, RtModel *md, const RtDataset *d, const int64_t *subset, int64_t count,
                        int64_t batch, RtMetrics *s);

typedef struct RtTrainer {
    RtModel *md;
    const RtConfig *cfg;
    const RtDataset *d;
    const int64_t *subset; /* the training samples (NULL: all of d) */
    int64_t count;
    bool fused;            /* the train graph's own update, else grads + opt */
    RtBinding b;
    RtOptimSpec ospec;
    RtOptim opt;
    bool has_opt;
    RtSched sched;
    RtMetrics scores;      /* this epoch's training metrics */
    RtLoader ld;
    bool has_ld;
    RtTransforms tf;
    bool drop_last;
    void **grads;          /* per manifest param: its gradient output, or NULL */
    RtGradSync sync;       /* more than one process (dist.h): the gradients' allreduce */
    bool has_sync;
    double base_lr[RT_OPT_MAX_GROUPS];
    double lr[RT_OPT_MAX_GROUPS]; /* the latest step's learning rates */
    int ngroups;
    int64_t steps_per_epoch;
    /* set by the driver after rt_trainer_open */
    int64_t start_batch;   /* the next epoch starts at this batch (a resumed mid-epoch checkpoint), then 0 */
    int64_t every;         /* call checkpoint every this many optimizer steps within an epoch (0: never) */
    int (*checkpoint)(void *ctx, int64_t epoch, int64_t batches_done, RtErr *e);
    void *ctx;
    bool check_grads;      /* --detect-anomaly: the gradients too (the loss is always checked) */
    int64_t stop_batch;    /* rt_trainer_epoch returned RT_STOPPED: the batches of the epoch done */
} RtTrainer;

/* SIGINT or SIGTERM during `train` (its number; 0: none), set by the handler that the driver installs for the
   command and nothing else: the trainer reads it after each step, so the handler does no I/O. */
extern volatile sig_atomic_t rt_stop_signal;
/* What rt_trainer_epoch returns when it stopped for rt_stop_signal after a step where a checkpoint can be
   written (not between the batches of an accumulated step, nor after an epoch's last batch); with several
   processes every rank stops at the same step. */
#define RT_STOPPED 2

/* Chooses the step (fused or grads + optimizer), binds it for batches of cfg->batch, reads the recipe's
   optimizer, schedule, metrics, loader options and transforms. The model's optimizer state (for
   checkpoints) is the train graph's or the runtime optimizer's from here on. */
int rt_trainer_open(RtTrainer *t, RtModel *md, const RtConfig *cfg, const RtDataset *d, const int64_t *subset,
                    int64_t count, RtErr *e);
void rt_trainer_close(RtTrainer *t);

/* One epoch (from 0), from batch t->start_batch; prints progress to out (may be NULL): a bar with the rate,
   the loss and the time left on a terminal, the loss every 100 batches otherwise. t->scores holds its
   metrics. Stops with RT_ERR at a non-finite loss (or, with --detect-anomaly, kernel output or gradient),
   naming it, or when the checkpoint callback fails. */
int rt_trainer_epoch(RtTrainer *t, int64_t epoch, FILE *out, RtErr *e);

/* early_stop(monitor = val_loss, patience = 3, min_delta = 0, mode = "min"), as Lightning's EarlyStopping:
   an epoch improves when the monitored value beats the best by more than min_delta; training stops after
   `patience` epochs without improvement. The same monitor picks the epoch saved as best.safetensors. mode
   defaults to "max" except for a loss, mae and mse. */
typedef struct RtEarlyStop {
    bool present;
    const char *monitor; /* "val_loss": a pass (train_, val_, test_) and a metric's name */
    int64_t patience;
    double min_delta;
    bool maximize;
} RtEarlyStop;
int rt_early_stop_parse(const json_t *recipe, RtEarlyStop *es, RtErr *e);

/* Everything the recipe says, read as a run would read it (optimizer, schedule, metrics, loader options,
   transforms, data sources, early stopping), without loading anything: what `lathe compile` checks so that
   a mistake is reported at compile time, and what a binary checks after --set. */
int rt_recipe_check(const RtManifest *m, const json_t *recipe, RtErr *e);

/* The memory of one training step at batch n, as the plan fixes it before anything runs: the step's arena,
   the parameters, the optimizer state (the fused graph's, or the runtime optimizer's for the recipe's
   optimizer), the gradients (the grads graph's outputs; 0 when fused) and the batch inputs. */
typedef struct RtPeak {
    const char *graph; /* "train" or "grads" */
    int64_t arena, params, state, grads, inputs, total;
} RtPeak;
int rt_plan_peak(const RtManifest *m, const json_t *recipe, int64_t n, RtPeak *out, RtErr *e);
/* "peak: B bytes at batch N (arena A, parameters P, optimizer state S, batch inputs I[, gradients G])": the
   line that `lathe compile --mem-report` and a binary's `info` end with. */
void rt_peak_print(FILE *f, const RtPeak *p, int64_t n);

/* "fused SGD" or "Adam (runtime)": what trains, for `info` and the first line of a run. */
const char *rt_trainer_kind(const RtTrainer *t);

#endif
