/* rt.h: the runtime's internal interface, shared by its files and by the runtime tests. Library code never
   prints and never exits: a failure fills an RtErr with one message and returns RT_ERR; the driver
   (driver.c) prints it and chooses the exit status (2 for a bad flag, 1 for everything else). */
#ifndef LATHE_RT_INTERNAL_H
#define LATHE_RT_INTERNAL_H

#include "lathe_rt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RT_VERSION "0.1.0"

enum { RT_OK = 0, RT_ERR = -1, RT_HELP = 1 };

typedef struct RtErr {
    char msg[1024];
} RtErr;

/* Fills e (when not NULL) and returns RT_ERR, so that callers write `return rt_errf(e, ...)`. */
int rt_errf(RtErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- dtypes and tensors (manifest.c) */
typedef enum { RT_F32, RT_F64, RT_I32, RT_I64, RT_U8 } RtDType;

#define RT_MAX_RANK 8

typedef enum { RT_ROLE_INPUT, RT_ROLE_PARAM, RT_ROLE_STATE, RT_ROLE_OUTPUT } RtRole;

typedef struct RtTensorSpec {
    const char *name; /* borrowed from the manifest's JSON */
    RtDType dtype;
    int rank;
    int64_t shape[RT_MAX_RANK]; /* -1 is the batch dimension N */
    RtRole role;                /* for graph args */
} RtTensorSpec;

size_t rt_dtype_size(RtDType t);
const char *rt_dtype_name(RtDType t);   /* "f32" */
int rt_dtype_parse(const char *s, RtDType *out);
/* Element count with N bound to n; false on overflow. */
bool rt_numel(const RtTensorSpec *t, int64_t n, int64_t *out);
/* "[N, 784]", the form of shapes in messages (N: the batch dimension); truncated to n bytes. */
void rt_shape_text(const int64_t *shape, int rank, char *buf, size_t n);
/* Reads and writes one element as a double, whatever the dtype. */
double rt_load(RtDType t, const void *p, int64_t i);
void rt_store(RtDType t, void *p, int64_t i, double v);

/* ---------------------------------------------------------------- the manifest (manifest.c) */
typedef enum { RT_INIT_ZEROS, RT_INIT_ONES, RT_INIT_CONST, RT_INIT_UNIFORM, RT_INIT_NORMAL } RtInitKind;

typedef struct RtParam {
    RtTensorSpec t;
    RtInitKind init;
    double a, b;
    bool trainable;
    bool buffer; /* a buffer (BatchNorm's running_mean): saved and loaded as a parameter, never trained */
} RtParam;

typedef struct RtGraph {
    bool present;
    const char *name;
    int64_t arena_const, arena_per_n; /* scratch bytes: arena_const + arena_per_n * n */
    int kernels;
    int nargs;
    RtTensorSpec *args;
    LatheGraphFn fn; /* set by the driver (or a test) */
} RtGraph;

typedef struct RtManifest {
    json_t *root; /* owns every string below */
    const char *lathe, *model, *source, *hash;
    int ninputs;
    RtTensorSpec *inputs;
    int nparams;
    RtParam *params;
    RtGraph train, eval, predict;
    json_t *recipe; /* borrowed from root; an empty object when absent */
} RtManifest;

int rt_manifest_parse(RtManifest *m, const char *text, RtErr *e);
void rt_manifest_free(RtManifest *m);
int rt_manifest_param_index(const RtManifest *m, const char *name); /* -1 when absent */
/* Bytes of a graph's arena for a batch of n, rounded up to 64; false on overflow. */
bool rt_arena_bytes(const RtGraph *g, int64_t n, size_t *out);
/* Number of classes: the last dimension of the predict graph's first output (0 when unknown). */
int64_t rt_manifest_classes(const RtManifest *m);
/* The manifest's batch input named name ("x", "label"), or NULL. */
const RtTensorSpec *rt_manifest_input(const RtManifest *m, const char *name);

/* ---------------------------------------------------------------- configuration (flags.c) */
typedef enum { RT_CMD_TRAIN, RT_CMD_EVAL, RT_CMD_PREDICT, RT_CMD_INFO } RtCommand;

/* The recipe's data sources: idx(images, labels, scale = 1), text(file, context = T, stride = T),
   csv(file, header = true, label_column = -1, regression = false). */
typedef enum { RT_DATA_IDX, RT_DATA_TEXT, RT_DATA_CSV } RtDataKind;

typedef struct RtDataSpec {
    bool present;
    RtDataKind kind;
    const char *images, *labels; /* as written in the recipe; borrowed. text, csv: images is the file */
    double scale;                /* idx */
    int64_t context, stride;     /* text: tokens per sample, bytes from one sample's start to the next */
    bool header, regression;     /* csv: skip the first line; labels are real values, not classes */
    int64_t label_column;        /* csv: as a Python index (-1: the last column) */
} RtDataSpec;

typedef struct RtConfig {
    RtCommand cmd;
    json_t *recipe; /* owned: the manifest's recipe with --set applied */
    int64_t epochs, batch, limit, index; /* limit -1: all samples */
    uint64_t seed;
    bool seed_given;
    double lr;
    bool has_lr;
    bool shuffle, json;
    int threads; /* the thread pool's size (--threads); 0: one per core */
    const char *data_dir, *checkpoint_dir, *log_json, *resume, *weights; /* borrowed from argv */
    RtDataSpec train_data, test_data;
    int nclasses;
    const char **classes; /* borrowed from recipe */
} RtConfig;

/* Parses argv (argv[1] is the command) against the manifest's recipe. RT_HELP: --help was asked for
   (cfg->cmd says for which command; -1 cast when none). RT_ERR: a bad flag or value, named in e. */
int rt_config_parse(RtConfig *cfg, const RtManifest *m, int argc, char **argv, RtErr *e);
void rt_config_free(RtConfig *cfg);
void rt_usage(FILE *f, const char *prog, int cmd); /* cmd < 0: the general help */

/* ---------------------------------------------------------------- recipe calls (recipe.c) */
/* A call of the recipe ({"call": "idx", "args": [...], "kwargs": {...}}, see lathe_rt.h) as its readers
   see it. Messages name the recipe key: "recipe key data: idx has no argument 'scal'". */
json_t *rt_call_arg(const json_t *call, const char *arg, int pos); /* kwargs[arg], else args[pos] (pos < 0:
                                                                      keyword only); NULL when absent */
/* At most npositional positional arguments, and keywords only among known[0..nknown); sig is the call's
   signature for messages ("idx(images, labels, scale = 1)"). */
int rt_call_check(const json_t *call, const char *key, const char *sig, const char *const *known, int nknown,
                  int npositional, RtErr *e);
/* An argument's value, dflt when absent, refused outside its range or of the wrong kind. */
int rt_call_int(const json_t *call, const char *key, const char *arg, int pos, int64_t dflt, int64_t min,
                int64_t *out, RtErr *e);
int rt_call_bool(const json_t *call, const char *key, const char *arg, int pos, bool dflt, bool *out, RtErr *e);
int rt_call_num(const json_t *call, const char *key, const char *arg, int pos, double dflt, double min, double max,
                double *out, RtErr *e);

/* ---------------------------------------------------------------- random numbers (rng.c) */
typedef struct RtRng {
    uint64_t state, inc;
} RtRng;

/* PCG32 (O'Neill): stream selects one of 2^63 independent sequences. */
void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream);
uint32_t rt_rng_u32(RtRng *r);
uint32_t rt_rng_below(RtRng *r, uint32_t bound); /* uniform in [0, bound), unbiased */
uint64_t rt_rng_below64(RtRng *r, uint64_t bound);
double rt_rng_unit(RtRng *r); /* uniform in [0, 1), 53 bits */
/* Initializes parameter index pi from its init spec; the generator is keyed by (seed, pi) so that the
   values do not depend on the order in which parameters are initialized. */
void rt_param_init(const RtParam *p, int pi, uint64_t seed, void *data);

/* ---------------------------------------------------------------- data (idx.c, data.c) */
#define RT_IDX_MAX_DIMS 5

typedef struct RtIdx {
    int ndims;
    int64_t dims[RT_IDX_MAX_DIMS];
    int64_t count; /* dims[0] */
    int64_t per_item; /* product of the other dims */
    uint8_t *data;
} RtIdx;

/* An IDX file of unsigned bytes (magic 0x000008NN) with min_dims to max_dims dimensions (the count
   included); plain or gzip. Images: 2 to 5, labels: 1 to 1. */
int rt_idx_read(const char *path, int min_dims, int max_dims, RtIdx *out, RtErr *e);
void rt_idx_free(RtIdx *x);

/* A whole file, plain or gzip (textdata.c), NUL-terminated; at most max bytes after decompression. */
int rt_read_file(const char *path, int64_t max, uint8_t **data, int64_t *size, RtErr *e);

typedef struct RtDataset {
    RtDataKind kind;
    char *images_path, *labels_path; /* owned, for messages (text, csv: both the one file) */
    int64_t count;
    int64_t per_sample, per_label; /* values of x and of the label per sample */
    uint8_t *images;   /* idx: count * per_sample bytes; text: the file's bytes */
    uint8_t *labels;   /* idx: count */
    int64_t size;      /* text: bytes in images */
    int64_t stride;    /* text: bytes from one sample's start to the next */
    double *features;  /* csv: count * per_sample */
    double *targets;   /* csv: count */
    int64_t *lines;    /* csv: the line of each record, for messages */
    bool regression;   /* csv: targets are values, not classes */
    double scale;      /* idx */
} RtDataset;

/* Reads a source call of the recipe (v: the value of recipe key `key`, NULL when absent: d->present false)
   into d (dataspec.c); the model's input gives text's default context. */
int rt_data_spec_parse(const json_t *v, const RtManifest *m, const char *key, RtDataSpec *d, RtErr *e);
/* Loads the files of spec (names resolved against dir unless absolute). */
int rt_dataset_load(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e);
/* text and csv sources (textdata.c), called by rt_dataset_load with the resolved path in d->images_path */
int rt_text_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
int rt_csv_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
/* Checks the dataset against the model: values per sample against the input "x" (inputs[0]), labels per
   sample against the input "label", and class labels below the number of classes. */
int rt_dataset_check(const RtDataset *d, const RtManifest *m, const char *what, RtErr *e);
void rt_dataset_limit(RtDataset *d, int64_t limit);
void rt_dataset_free(RtDataset *d);
/* Label k (0 <= k < per_label) of sample i. */
double rt_dataset_label(const RtDataset *d, int64_t i, int64_t k);
/* Copies samples idx[0..n) into x (as xt) and y (per_label labels each, as yt); y may be NULL. */
void rt_dataset_gather(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x, RtDType yt,
                       void *y);

#include "loader.h" /* the sample order, the batches, the prefetching loader, splits and transforms */

/* ---------------------------------------------------------------- checkpoints (safetensors.c) */
typedef struct RtTensor {
    const char *name;
    RtDType dtype;
    int rank;
    int64_t shape[RT_MAX_RANK];
    void *data;
} RtTensor;

/* Writes path atomically: a temporary file beside it, fsync, rename, fsync of the folder. meta is an
   object of string values (may be NULL). */
int rt_st_save(const char *path, const RtTensor *ts, int nts, json_t *meta, RtErr *e);
/* Loads the tensors named in req (each must be present, with its dtype and shape) and those of opt that are
   present; anything else in the file is an error. Nothing is written into the tensors unless the whole file
   is valid. *meta_out (may be NULL) receives the metadata object (a new reference, maybe empty). */
int rt_st_load(const char *path, RtTensor *req, int nreq, RtTensor *opt, int nopt, json_t **meta_out, RtErr *e);

/* ---------------------------------------------------------------- the model at run time (model.c) */
typedef struct RtModel {
    const RtManifest *m;
    void **params;      /* one buffer per manifest param */
    int nstate;
    RtTensorSpec *state; /* state args of the train graph */
    void **state_data;
    int64_t step;        /* train steps done */
} RtModel;

typedef struct RtBinding {
    const RtGraph *g;
    int64_t max_n;
    void **args;
    void **owned; /* buffers this binding allocated (NULL for params/state) */
    uint8_t *arena;
    int x_arg, y_arg;                 /* -1 when the graph does not take them */
    int loss_arg, correct_arg, logits_arg, lr_arg, step_arg, seed_arg;
} RtBinding;

int rt_model_init(RtModel *md, const RtManifest *m, uint64_t seed, RtErr *e);
void rt_model_free(RtModel *md);
/* The model's tensors for checkpoints: its params, then its optimizer state (malloc'd; NULL when out of
   memory). */
RtTensor *rt_model_tensors(const RtModel *md);

int rt_bind(RtBinding *b, RtModel *md, const RtGraph *g, const RtConfig *cfg, int64_t max_n, RtErr *e);
void rt_unbind(RtBinding *b);
/* Runs the graph on samples idx[0..n) of d. */
void rt_run_batch(RtBinding *b, RtModel *md, const RtDataset *d, const int64_t *idx, int64_t n);
double rt_output_scalar(const RtBinding *b, int arg); /* NAN when arg < 0 */

/* Mean of per-batch mean losses and total correct / labels, over d in order; accuracy is NaN when the graph
   has no output "correct". */
typedef struct RtEvalResult {
    double loss, accuracy;
    int64_t samples;
} RtEvalResult;
void rt_evaluate(RtBinding *b, RtModel *md, const RtDataset *d, int64_t batch, RtEvalResult *out);

/* One training epoch (epoch counts from 0); prints progress to out when not NULL. Returns the mean loss.
   With a loader (opened on d for b's inputs), batch k+1 is gathered while step k runs; without one (NULL),
   each batch is gathered before its step. The samples, their order and the steps are the same either way. */
double rt_train_epoch(RtBinding *b, RtModel *md, RtLoader *ld, const RtDataset *d, const RtConfig *cfg,
                      int64_t epoch, FILE *out);

/* ---------------------------------------------------------------- the driver (driver.c) */
/* rt_main with an explicit manifest text and graph entries, so that tests can run the whole driver. */
int rt_run(const char *manifest, LatheGraphFn train, LatheGraphFn eval, LatheGraphFn predict, int argc,
           char **argv);

#endif
