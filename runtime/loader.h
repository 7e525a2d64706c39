/* loader.h: the sample order of an epoch, the batches, the prefetching loader (loader.c), the validation
   split and the loader's transforms. Included by rt.h after the dataset section. */
#ifndef LATHE_RT_LOADER_H
#define LATHE_RT_LOADER_H

/* The sample order of one epoch: 0..n-1, or a permutation derived from (seed, epoch) only. */
void rt_epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order);
int64_t rt_batch_count(int64_t n, int64_t batch); /* the last partial batch is kept */

/* Random streams of rng.c's PCG. A stream has 63 bits: rt_rng_seed shifts bit 63 out, so 2^63 + k is stream
   k. The epoch orders take 0 .. 2^62 - 1 (the epoch), the parameters 2^62 + their index (rng.c), the
   validation split 3 * 2^61, the transforms 7 * 2^60 + (epoch mod 2^20) * 2^40 + (sample mod 2^40), one per
   sample and epoch, the generated data 5 * 2^60 (x) and 5 * 2^60 + 1 (noise, gendata.c); up to 6 * 2^60 - 1
   is free for other uses. */
#define RT_SPLIT_STREAM (3ull << 61)
#define RT_TRANSFORM_STREAM (7ull << 60)

/* Batches in an epoch of n samples: the last partial batch is kept, or dropped with drop_last. */
int64_t rt_batch_count_drop(int64_t n, int64_t batch, bool drop_last);

/* The order of one epoch over the samples subset[0..n) (subset NULL: 0..n-1): subset's order, or a
   permutation of it derived from (seed, epoch) only, the same positions moved whatever subset holds.
   rt_epoch_order is this with subset NULL. */
void rt_epoch_order_of(const int64_t *subset, int64_t n, bool shuffle, uint64_t seed, int64_t epoch,
                       int64_t *order);

/* A seeded split of 0..n-1: nval = round(n * fraction) samples (at least 1 and at most n - 1) into val, the
   rest into train, each in increasing order; the same for (n, fraction, seed) whatever else the run does.
   The arrays are malloc'd (free them); RT_ERR on a fraction outside (0, 1), n < 2, or no memory. */
int rt_split(int64_t n, double fraction, uint64_t seed, int64_t **train, int64_t *ntrain, int64_t **val,
             int64_t *nval, RtErr *e);

/* ---------------------------------------------------------------- transforms (transforms.c)
   Applied in order to each sample of a float input, in place, with torchvision's meanings:
     scale(factor)                       x * factor (a factor 1/k divides by k, as ToTensor's x / 255)
     normalize(mean, std)                (x - mean[c]) / std[c], c the index in dimension 1 (one value: all)
     random_crop(size, padding = 0)      zero padding on each side of the last two dimensions (H, W), then a
                                         random size window (size = H and W: an int, or [h, w])
     random_hflip(p = 0.5)               reverses the last dimension (W) with probability p
   The random ones draw from a generator keyed by (seed, epoch, sample index) only, so that the values do
   not depend on the batch, its order, or the loader's workers; eval and predict inputs take the
   deterministic ones (scale, normalize) only. */
typedef enum { RT_TF_SCALE, RT_TF_NORMALIZE, RT_TF_RANDOM_CROP, RT_TF_RANDOM_HFLIP } RtTransformKind;
#define RT_MAX_TRANSFORMS 8
#define RT_TF_MAX_CHANNELS 64
typedef struct RtTransform {
    RtTransformKind kind;
    double scale;                                                          /* scale */
    int nch;                                                               /* normalize: 1 or C */
    double mean[RT_TF_MAX_CHANNELS], std[RT_TF_MAX_CHANNELS];
    int64_t size_h, size_w, padding;                                       /* random_crop */
    double p;                                                              /* random_hflip */
} RtTransform;
typedef struct RtTransforms {
    int n;
    RtTransform t[RT_MAX_TRANSFORMS];
} RtTransforms;

/* Reads recipe key "transforms" of the recipe (an object; the key absent or none: no transforms; a list of
   calls, or one call) against the model's input x: a float input; normalize takes one mean and std, or one per
   index of dimension 1; random_crop and random_hflip an input [N, C, H, W] (or [N, H, W]) whose H and W the
   crop size equals. Messages name the transform: "recipe key transforms: random_crop: ...". */
int rt_transforms_parse(const json_t *recipe, const RtTensorSpec *x, RtTransforms *t, RtErr *e);

/* Applies the transforms in place to a gathered batch x of xt (f32 or f64; n samples of the shape xs with
   N bound to 1) whose sample k is dataset sample ids[k]; train false applies only scale and normalize. */
void rt_transforms_apply(const RtTransforms *t, bool train, RtDType xt, void *x, const RtTensorSpec *xs,
                         int64_t n, const int64_t *ids, uint64_t seed, int64_t epoch);

/* ---------------------------------------------------------------- the loader
   Gathers batches into two buffer pairs: rt_loader_request starts a batch into one pair while the step of
   the previous batch, in the other pair, runs; rt_loader_wait returns its buffers, valid until the request
   after the next one. With workers W >= 1, W threads split each batch into W contiguous parts (the caller,
   when it waits, takes the parts none has started, so that a step never waits for a thread to wake up);
   with 0, a request gathers at once on the caller. The samples are those of rt_dataset_gather, then the
   transforms; the values are the same for any W. Threads sleep between batches. The buffers are 64-byte
   aligned, as the binding's own. A zeroed RtLoader may be closed. */
typedef struct RtLoaderOpts {
    int workers;           /* threads (0: the caller gathers); fewer when a thread cannot start */
    const RtTransforms *tf; /* copied; NULL: none */
    bool train;            /* all transforms; false: the deterministic ones */
    uint64_t seed;         /* of the random transforms */
} RtLoaderOpts;

typedef struct RtLoader {
    const RtDataset *d;
    RtTensorSpec xs;
    RtDType xt, yt;
    bool has_y;
    RtTransforms tf;
    bool train;
    uint64_t seed;
    int64_t epoch;        /* for the next requests (rt_loader_set_epoch) */
    void *x[2], *y[2];
    int slot;             /* the buffer pair of the latest request */
    int nworkers;         /* threads running; 0: the caller gathers */
    bool threaded;        /* nworkers > 0 */
    pthread_t *threads;
    pthread_mutex_t mu;   /* guards the request below */
    pthread_cond_t work;  /* a request has parts to take, or quit */
    pthread_cond_t done;  /* the last part of a request is done */
    const int64_t *idx;   /* the request: samples idx[0..n) of epoch req_epoch into slot */
    int64_t n, req_epoch;
    int next_part, parts_left; /* parts not taken yet (next_part .. nworkers - 1), parts not done */
    bool quit;
} RtLoader;

/* x: the model's input spec (and y its labels' spec, or NULL), buffers sized for batches of max_n. RT_ERR
   when out of memory, or with transforms on an input that is not f32 or f64. */
int rt_loader_open_opts(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y,
                        int64_t max_n, const RtLoaderOpts *o, RtErr *e);
/* rt_loader_open_opts with one worker (prefetch) or none, and no transforms. */
int rt_loader_open(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y, int64_t max_n,
                   bool prefetch, RtErr *e);
/* The epoch of the random transforms of the next requests (0 at first). */
void rt_loader_set_epoch(RtLoader *l, int64_t epoch);
/* Starts gathering samples idx[0..n) (idx must stay valid until rt_loader_wait returns); the previous request
   must have been waited for. */
void rt_loader_request(RtLoader *l, const int64_t *idx, int64_t n);
void rt_loader_wait(RtLoader *l, void **x, void **y);
void rt_loader_close(RtLoader *l);

/* ---------------------------------------------------------------- the recipe's loader keys
   Recipe keys, with PyTorch DataLoader's names and meanings:
     workers   = 2          loader threads (0: gather on the training thread; default 1). The batches,
                            their samples and their values are the same for any number of workers.
     drop_last = true       the last partial batch is dropped (default false)
     validation = 0.1       a seeded split of the training data (a fraction in (0, 1)): the same samples for
                            a seed in every run, never trained on; or a source (validation = idx(...))
     transforms = [random_crop(28, padding = 4), random_hflip(p = 0.5), normalize(mean = [0.2860],
                   std = [0.3530])]
                            applied in order to each training sample after it is gathered (see above) */
#define RT_MAX_WORKERS 256
typedef struct RtLoaderRecipe {
    int workers;
    bool drop_last;
    bool has_fraction;    /* validation is a fraction: split the training data (rt_split) */
    double fraction;
    bool is_source;       /* validation is a source call: the driver reads it (rt_data_spec_parse) */
    RtTransforms tf;
} RtLoaderRecipe;

/* Reads the keys above from the recipe (an object) against the model's input x. */
int rt_loader_recipe(const json_t *recipe, const RtTensorSpec *x, RtLoaderRecipe *out, RtErr *e);

#endif
