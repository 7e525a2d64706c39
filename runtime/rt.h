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

/* One entry of a graph's "checks": a kernel output that --detect-anomaly checks after the kernel, by index
   (the check id that the generated code passes to lathe_check_finite). Strings borrowed from the manifest. */
typedef struct RtCheck {
    const char *node; /* "%42" */
    const char *op;   /* "matmul" */
    const char *name; /* the output's or updated parameter's name ("grad.fc1.weight"); NULL: none */
    const char *loc;  /* "fashion_mlp.lathe:9:9"; NULL: unknown */
} RtCheck;

typedef struct RtGraph {
    bool present;
    const char *name;
    int64_t arena_const, arena_per_n; /* scratch bytes: arena_const + arena_per_n * n */
    int kernels;
    int nargs;
    RtTensorSpec *args;
    int nchecks; /* 0 for a manifest without "checks" */
    RtCheck *checks;
    LatheGraphFn fn; /* set by the driver (or a test) */
} RtGraph;

typedef struct RtManifest {
    json_t *root; /* owns every string below */
    const char *lathe, *model, *source, *hash;
    int ninputs;
    RtTensorSpec *inputs;
    int nparams;
    RtParam *params;
    RtGraph train, grads, eval, predict; /* train: the fused SGD step, absent for other optimizers */
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

/* ---------------------------------------------------------------- non-finite values (kern_anomaly.c)
   The generated graph entries call lathe_check_finite (lathe_kern.h) on every float kernel output while
   checking is on; the first NaN or Inf of a step is kept until rt_anomaly_take, and no further output is
   checked until then. */
typedef struct RtAnomaly {
    int graph;     /* RT_ANOMALY_TRAIN ..., or -1 for a graph of another name (the tests' JIT) */
    int check;     /* index into that graph's checks */
    int64_t index; /* the first non-finite element's index in the output */
    double value;  /* NaN, +Inf or -Inf */
    int64_t step;  /* for the message, set by the caller (-1: not said) */
} RtAnomaly;

enum { RT_ANOMALY_TRAIN, RT_ANOMALY_GRADS, RT_ANOMALY_EVAL, RT_ANOMALY_PREDICT };

/* Turns the check of every kernel's output on or off (off at start) and forgets any hit. */
void rt_anomaly_enable(bool on);
/* The first non-finite value since the last take, if any: fills out (step -1) and clears it, which turns
   checking back on where it is enabled. false when none. */
bool rt_anomaly_take(RtAnomaly *out);
/* "a non-finite value (nan) first appeared in %42 mul (grad.fc1.weight) at fashion_mlp.lathe:9:9, element
   17, in step 31 of the train graph" into buf (n bytes). graph: the graph's name; NULL: a->graph's. */
void rt_anomaly_message(const RtManifest *m, const char *graph, const RtAnomaly *a, char *buf, size_t n);
/* Whether all n values at p are finite (integers always are): the default check of the loss and of the
   runtime optimizer's gradients. */
bool rt_all_finite(RtDType t, const void *p, int64_t n);
/* After one run of the graph bound in b (step: the steps done with this one, for the message; -1: none):
   RT_ERR with the message when --detect-anomaly found a non-finite kernel output (in this graph or one run
   before it since the last take), or, where asked, when the graph's "loss" output or one of its gradients
   "grad.NAME" is not finite. */
struct RtBinding;
struct RtModel;
int rt_anomaly_check_run(const struct RtBinding *b, const struct RtModel *md, int64_t step, bool loss, bool grads,
                         RtErr *e);

/* ---------------------------------------------------------------- configuration (flags.c) */
typedef enum { RT_CMD_TRAIN, RT_CMD_EVAL, RT_CMD_PREDICT, RT_CMD_INFO } RtCommand;

/* The recipe's data sources (dataspec.c reads them):
     idx(images, labels, scale = 1)                       IDX files of u8 (MNIST's format)
     text(file, context = T, stride = T, tokens = "bytes", lines = false, pad = 0)
     csv(file, header = true, label_column = -1, regression = false, features = all but the label, labels = "auto",
         delimiter = ",")                                 numeric features, a numeric or categorical label
     npy(x, y = none, scale = 1, regression = false, label_shape = [K])   NumPy .npy arrays
     images(folder, scale = 1 / 255, grayscale = true)    a sub-folder of .png/.pgm a class (ImageFolder)
     generate(n, x = uniform(0, 10), y = 2 * x + 1, noise = 0, seed = 0)   y = f(x) + normal noise */
typedef enum { RT_DATA_IDX, RT_DATA_TEXT, RT_DATA_CSV, RT_DATA_NPY, RT_DATA_IMAGES, RT_DATA_GENERATE } RtDataKind;

/* csv's labels: numbers (class indices or, with regression, values), class names (their distinct strings,
   sorted, become classes 0..C-1), or numbers when every label parses as one and names otherwise */
typedef enum { RT_LABELS_AUTO, RT_LABELS_NUMERIC, RT_LABELS_CATEGORICAL } RtLabelsKind;

typedef struct RtDataSpec {
    bool present;
    RtDataKind kind;
    const char *images, *labels; /* as written in the recipe; borrowed. idx: the two files; npy: x and y (labels
                                    NULL: none); text, csv: images is the file; images: the folder */
    double scale;                /* idx, npy, images: x = value * scale */
    int64_t context, stride;     /* text: tokens per sample, tokens from one sample's start to the next */
    bool chars;                  /* text: tokens = "chars" (UTF-8 code points), else bytes */
    bool lines;                  /* text: one sample per line, padded with pad and labelled -100 past its end */
    int64_t pad;                 /* text lines: the token of padded positions */
    bool header, regression;     /* csv: skip the first line; labels are real values, not classes */
    int64_t label_column;        /* csv: as a Python index (-1: the last column) */
    const char *label_name;      /* csv: label_column given as a header name (NULL: by index); borrowed */
    const json_t *features;      /* csv: a list of column indices and header names (NULL: all but the label) */
    RtLabelsKind labels_kind;    /* csv */
    char delimiter;              /* csv: the cell separator (',' when 0) */
    bool grayscale;              /* images: one channel (else RGB) */
    int64_t height, width;       /* images: what the model's input fixes (0: as the first image) */
    int64_t n;                   /* generate: samples */
    bool x_normal;               /* generate: x from normal(xa = mean, xb = std), else uniform(xa, xb) */
    double xa, xb, noise;        /* generate: noise is the std of normal noise added to y */
    const json_t *y_expr;        /* generate: y as an expression of x (rexpr.h); borrowed */
    uint64_t seed;               /* generate */
} RtDataSpec;

typedef struct RtConfig {
    RtCommand cmd;
    json_t *recipe; /* owned: the manifest's recipe with --set applied */
    int64_t epochs, batch, limit, index; /* limit -1: all samples */
    bool batch_auto; /* --batch auto: batch holds the recipe's until train picks the largest that fits (memcheck.h) */
    uint64_t seed;
    bool seed_given;
    double lr;
    bool has_lr;
    bool shuffle, json;
    int threads; /* the thread pool's size (--threads); 0: one per core */
    const char *device; /* --device cpu|cuda|auto, checked (cuda.h's rt_device_select); NULL: not given */
    const char *data_dir, *checkpoint_dir, *log_json, *resume, *weights; /* borrowed from argv */
    const char *log_csv, *tensorboard, *init_from;                      /* borrowed from argv */
    int64_t checkpoint_every; /* optimizer steps between checkpoints within an epoch (0: at epoch ends only) */
    int64_t keep;             /* checkpoint-STEP.safetensors files kept besides last and best (0: none) */
    bool tb_histograms, detect_anomaly;
    const char *profile;                 /* --profile FILE: the Chrome trace to write (NULL: no profile) */
    int64_t profile_first, profile_last; /* --profile-steps A:B, the calls of each graph traced (from 1);
                                            0: not given (profile.h's default) */
    double dist_timeout;      /* --dist-timeout seconds (0: dist.h's default) */
    int ninit_map;            /* --init-map FROM=TO prefix rules for --init-from */
    char *init_map_from[16], *init_map_to[16];
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
/* Levenshtein distance ignoring case (1000 past 64 characters), and the candidate closest to name when it is
   close enough to be a typo (a third of name's length plus one edits): the "did you mean" of every message. */
int rt_edit_distance(const char *a, const char *b);
const char *rt_closest(const char *name, const char *const *cands, int n);

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

/* ---------------------------------------------------------------- data (data.c and one file a source) */
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

/* A .npy array (npy.c): format 1.0 to 3.0, C order, dtype <f4 <f8 <i4 <i8 or |u1, plain or gzip. data holds
   the values in the file's dtype (malloc'd); offset is the byte offset of the first value in the file. */
#define RT_NPY_MAX_DIMS 8
typedef struct RtNpy {
    RtDType dtype;
    int ndims;
    int64_t dims[RT_NPY_MAX_DIMS];
    int64_t count, per_item; /* dims[0] and the product of the others */
    int64_t offset;
    void *data;
} RtNpy;
int rt_npy_read(const char *path, RtNpy *out, RtErr *e);

typedef struct RtDataset {
    RtDataKind kind;
    char *images_path, *labels_path; /* owned, for messages (text, csv, images: both the one file or folder;
                                        npy without y: x's file; generate: a description) */
    int64_t count;
    int64_t per_sample, per_label; /* values of x and of the label per sample */
    /* idx, npy, images, generate: x and the labels as stored (IDX and images: bytes), converted in gather;
       text: the tokens (bytes, or with tokens = "chars" ids as images_dtype) */
    uint8_t *images;   /* count * per_sample values of images_dtype; text: size tokens */
    uint8_t *labels;   /* count * per_label values of labels_dtype (NULL: no labels) */
    RtDType images_dtype, labels_dtype;
    int64_t labels_offset; /* npy: the byte offset of y's first value, for messages */
    int64_t size;      /* text: tokens in images */
    int64_t stride;    /* text: tokens from one sample's start to the next */
    int64_t *offsets;  /* text lines: sample i's tokens are images[offsets[i] .. offsets[i + 1]) */
    int64_t pad;       /* text lines: the token of padded positions (their labels are RT_IGNORE_LABEL) */
    uint32_t *vocab;   /* text chars: the code point of each token id, ascending */
    int64_t nvocab;
    double *features;  /* csv: count * per_sample */
    double *targets;   /* csv: count */
    int64_t *lines;    /* csv, text lines: the line of each record, for messages */
    bool regression;   /* csv, npy with a float y, generate: labels are values, not classes */
    double scale;      /* idx, npy, images */
    char **class_names; /* images: the class folders' names; text chars: each token as UTF-8; csv with
                           categorical labels: the label strings, sorted (NULL: none) */
    int nclass_names;
} RtDataset;

/* The label of a padded position (text lines): what PyTorch's cross_entropy ignores (ignore_index). */
#define RT_IGNORE_LABEL (-100)

/* Reads a source call of the recipe (v: the value of recipe key `key`, NULL when absent: d->present false)
   into d (dataspec.c); the model's input gives text's default context and images' height and width. */
int rt_data_spec_parse(const json_t *v, const RtManifest *m, const char *key, RtDataSpec *d, RtErr *e);
/* Loads the files of spec (names resolved against dir unless absolute). */
int rt_dataset_load(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e);
/* The sources, called by rt_dataset_load with the resolved paths in d->images_path and d->labels_path:
   text and csv (textdata.c), npy (npy.c), images (imgdir.c), generate (gendata.c). */
int rt_text_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
int rt_csv_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
int rt_npy_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
int rt_images_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
int rt_generate_load(RtDataset *d, const RtDataSpec *spec, RtErr *e);
/* Checks the dataset against the model: values per sample against the input "x" (inputs[0]), labels per
   sample against the input "label", and class labels below the number of classes. */
int rt_dataset_check(const RtDataset *d, const RtManifest *m, const char *what, RtErr *e);
/* A test (or validation) set read apart from the training data numbers its class names (csv's categorical
   labels, images' folders) by its own sorted names: this renumbers test's labels by train's names, and fails
   naming the file, the line and the class when test has a class that train lacks. Nothing to do (RT_OK) when
   neither has class names. */
int rt_dataset_same_classes(const RtDataset *train, RtDataset *test, RtErr *e);
void rt_dataset_limit(RtDataset *d, int64_t limit);
void rt_dataset_free(RtDataset *d);
/* Label k (0 <= k < per_label) of sample i. */
double rt_dataset_label(const RtDataset *d, int64_t i, int64_t k);
/* Copies samples idx[0..n) into x (as xt) and y (per_label labels each, as yt); y may be NULL. Reads d only:
   the loader's threads call it at once. */
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

/* --init-from: load_state_dict(strict = False). Loads the tensors of path whose names (after the first prefix
   rule that applies: a name starting with from[i] is read as to[i] + the rest) are among ts, each checked for
   dtype and shape (a mismatch is an error, as PyTorch's), and reports the model's tensors the file lacks
   (missing) and the file's tensors the model lacks (unexpected), whose byte ranges are checked all the same.
   Nothing is written into ts unless the whole file is valid. */
typedef struct RtStInit {
    int nmap;
    const char *const *from, *const *to; /* prefix rules */
    const char *skip;                    /* file tensors named with this prefix are checked, not loaded or
                                            reported (eval's "optimizer."); NULL: none */
    json_t **meta;                       /* not NULL: receives the metadata, as rt_st_load's meta_out */
    int loaded;                          /* results: tensors loaded */
    char *missing, *unexpected;          /* comma-separated names, malloc'd; NULL for none */
} RtStInit;
int rt_st_init_from(const char *path, RtTensor *ts, int n, RtStInit *init, RtErr *e);
void rt_st_init_free(RtStInit *init);
/* The metadata of a valid file (every byte range checked), without loading a tensor. */
int rt_st_read_meta(const char *path, json_t **meta, RtErr *e);

/* ---------------------------------------------------------------- the model at run time (model.c) */
typedef struct RtModel {
    const RtManifest *m;
    void **params;      /* one buffer per manifest param */
    int nstate;
    RtTensorSpec *state; /* state args of the train graph */
    void **state_data;
    int64_t step;        /* train steps done (batches) */
    /* the runtime optimizer's state (optim.h), saved and loaded with the parameters where it trains */
    int nopt_tensors;
    RtTensor *opt_tensors;
} RtModel;

#define RT_MAX_GRAPH_METRICS 8

typedef struct RtBinding {
    const RtGraph *g;
    int64_t max_n;
    void **args;
    void **owned; /* buffers this binding allocated (NULL for params/state) */
    uint8_t *arena;
    int x_arg, y_arg;                 /* -1 when the graph does not take them */
    int loss_arg, logits_arg, lr_arg, step_arg, seed_arg;
    int *grad_arg;                    /* per manifest param: the output "grad.NAME", or -1 */
    int nmetric;                      /* outputs "metric.NAME": the model file's own metrics */
    int metric_arg[RT_MAX_GRAPH_METRICS];
    const struct RtTransforms *tf;    /* rt_run_batch applies their deterministic part (scale, normalize) to
                                         the gathered inputs: eval and predict; NULL: none */
} RtBinding;

int rt_model_init(RtModel *md, const RtManifest *m, uint64_t seed, RtErr *e);
void rt_model_free(RtModel *md);
/* The model's tensors for checkpoints: its params, then its optimizer state (malloc'd; NULL when out of
   memory). */
RtTensor *rt_model_tensors(const RtModel *md);

int rt_bind(RtBinding *b, RtModel *md, const RtGraph *g, const RtConfig *cfg, int64_t max_n, RtErr *e);
void rt_unbind(RtBinding *b);
/* Runs the graph on the batch of n samples already in its input buffers (writing the step count first). */
void rt_run_loaded(RtBinding *b, RtModel *md, int64_t n);
/* Runs the graph on samples idx[0..n) of d. */
void rt_run_batch(RtBinding *b, RtModel *md, const RtDataset *d, const int64_t *idx, int64_t n);
double rt_output_scalar(const RtBinding *b, int arg); /* NAN when arg < 0 */

/* One training epoch (epoch from 0) of the fused train graph bound in b, at the recipe's lr, without
   schedule or metrics: the prefetching loader (ld) and the serial gather (NULL) give the same steps. Returns
   the mean loss. (train.h's trainer runs the whole recipe; this is its loop with nothing around it.) */
double rt_train_epoch(RtBinding *b, RtModel *md, RtLoader *ld, const RtDataset *d, const RtConfig *cfg,
                      int64_t epoch, FILE *out);

/* ---------------------------------------------------------------- the driver (driver.c) */
/* rt_main with an explicit manifest text and graph entries, so that tests can run the whole driver. */
typedef struct RtEntries {
    LatheGraphFn train, grads, eval, predict; /* NULL where the manifest has no such graph */
} RtEntries;
int rt_run_entries(const char *manifest, const RtEntries *fns, int argc, char **argv);
/* The same without a grads graph (the runtime tests' fake models) */
int rt_run(const char *manifest, LatheGraphFn train, LatheGraphFn eval, LatheGraphFn predict, int argc,
           char **argv);

#endif
