/* sweep.h: `lathe sweep` (sweep.c). A sweep compiles a model once and trains the executable over a grid of
   recipe values and/or random draws of them, a few trials at a time, each a child process with its own
   --set flags and JSON log; the trials are ranked by a metric of their logs' last lines. The parsing,
   drawing, ranking and printing are exported for the unit tests (tests/unit/test_sweep.c). */
#ifndef LATHE_CLI_SWEEP_H
#define LATHE_CLI_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Compiles the model file `model` into the executable `exe` as `lathe compile MODEL -o EXE` does, printing
   its diagnostics; returns 0 or the exit status. cli/main.c passes its own compile. */
typedef int (*SweepCompileFn)(const char *model, const char *exe);

/* `lathe sweep ...` with argv[0] == "sweep": the exit status (0: at least one trial succeeded, 1: none did
   or the model does not compile, 2: bad usage, 128 + N: stopped by signal N). */
int sweep_main(int argc, char **argv, SweepCompileFn compile);

/* How an axis gets its values: a grid's list, or a draw per random trial. */
typedef enum SweepDist { SWEEP_GRID, SWEEP_UNIFORM, SWEEP_LOG, SWEEP_INT, SWEEP_CHOICE } SweepDist;

typedef struct SweepAxis {
    char *key;     /* as --set takes it: a recipe key, KEY.ARG, or lr (optimizer.lr) */
    SweepDist dist;
    double lo, hi; /* uniform, log: the interval; int: whole numbers, both ends included */
    char **values; /* grid: its values in order; choice: the choices (model-language expressions) */
    int nvalues;
} SweepAxis;

typedef enum SweepState { SWEEP_NOT_RUN, SWEEP_OK, SWEEP_FAILED, SWEEP_STOPPED } SweepState;

typedef struct SweepTrial {
    int id;           /* 1-based, in the order the trials start: DIR/trial-ID.log and .jsonl */
    char **values;    /* one per axis, as passed to --set KEY=VALUE */
    SweepState state;
    char *why;        /* failed: the exit status and the trial's last line of stderr */
    char *last_json;  /* ok: the last line of its JSON log */
    double metric;    /* from last_json (NAN: null, that is not finite) */
    double train_loss;
    double seconds;   /* wall-clock seconds of the trial's process */
} SweepTrial;

typedef struct Sweep {
    const char *model, *metric, *csv, *out;
    int maximize;     /* 1 max, 0 min, -1: by the metric's name (sweep_maximizes) */
    uint64_t seed;
    int jobs;
    int nrandom;      /* --random N: N trials per grid point; 0: no random axes */
    SweepAxis *axes;
    int naxes;
    char **pass;      /* the executable's flags, everything after -- */
    int npass;
    SweepTrial *trials;
    int ntrials;
    bool help;
    char err[512];    /* the message of the last failed call */
} Sweep;

#define SWEEP_MAX_TRIALS 10000

void sweep_init(Sweep *s);
void sweep_free(Sweep *s);

/* Reads `sweep ARGS...` (argv[0] is "sweep") into s; false with s->err on bad usage. */
bool sweep_parse_args(Sweep *s, int argc, char **argv);

/* Splits text at its top-level commas (outside (), [], {} and quotes) into trimmed, malloc'd items; false
   with err on an empty item or unbalanced brackets or quotes. */
bool sweep_split(const char *text, char ***items, int *nitems, char *err, size_t errlen);

/* Fills s->trials: the cross product of the grid axes (the last axis varies fastest), and at each grid
   point s->nrandom trials whose random axes are drawn in order from one generator seeded with s->seed. */
bool sweep_plan(Sweep *s);

/* splitmix64: the next of the stream that *state keeps. */
uint64_t sweep_rng_next(uint64_t *state);
/* One value of a random axis, written as the model language writes it (a real keeps its '.' or 'e'). */
void sweep_draw(const SweepAxis *ax, uint64_t *rng, char *buf, size_t n);

/* Whether a larger value of the metric is better: false for a loss, mae, mse and seconds, as early_stop. */
bool sweep_maximizes(const char *metric);

/* Chooses the metric where s->metric is NULL (test_accuracy when the first good log's last line has it,
   else val_loss, else train_loss) and the mode, and reads each ok trial's metric and train_loss; an ok
   trial whose log lacks the metric becomes failed. */
void sweep_score(Sweep *s);
/* Sorts s->trials best first: ok by the metric (NAN last), then failed, stopped and not run, each by id. */
void sweep_rank(Sweep *s);

/* The ranked table: rank, trial, the swept values, the metric, train_loss, seconds, status. */
void sweep_print_table(FILE *f, const Sweep *s);
/* The same rows as CSV (RFC 4180 quoting) with a header row; false when f reports an error. */
bool sweep_write_csv(FILE *f, const Sweep *s);

#endif
