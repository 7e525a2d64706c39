/* loader.h: the sample order of an epoch, the batches, the prefetching loader (loader.c), the validation
   split and the loader's transforms. Included by rt.h after the dataset section. */
#ifndef LATHE_RT_LOADER_H
#define LATHE_RT_LOADER_H

/* The sample order of one epoch: 0..n-1, or a permutation derived from (seed, epoch) only. */
void rt_epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order);
int64_t rt_batch_count(int64_t n, int64_t batch); /* the last partial batch is kept */

/* The prefetching loader: rt_loader_request starts gathering a batch into one of two buffer pairs on the
   loader's thread, so that the gather of batch k+1 runs while the step of batch k does; rt_loader_wait
   returns that batch's buffers, which stay valid until the request after the next one. The samples and the
   values are those of rt_dataset_gather. Without a thread (prefetch false, or none could start) a request
   gathers at once on the caller. The buffers are 64-byte aligned, as the binding's own. */
typedef struct RtLoader {
    const RtDataset *d;
    RtDType xt, yt;
    bool has_y, threaded;
    void *x[2], *y[2];
    int slot;  /* the buffer pair of the latest request */
    int state; /* LOADER_IDLE, _REQUESTED, _WORKING, _QUIT (data.c); under mu */
    const int64_t *idx;
    int64_t n;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} RtLoader;

/* x: the model's input spec (and y its labels' spec, or NULL), buffers sized for batches of max_n. */
int rt_loader_open(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y, int64_t max_n,
                   bool prefetch, RtErr *e);
/* Starts gathering samples idx[0..n) (idx must stay valid until rt_loader_wait returns); the previous request
   must have been waited for. */
void rt_loader_request(RtLoader *l, const int64_t *idx, int64_t n);
void rt_loader_wait(RtLoader *l, void **x, void **y);
void rt_loader_close(RtLoader *l);

/* ---------------------------------------------------------------- loader options (to be built)
   Recipe keys, with PyTorch DataLoader's names and meanings:
     workers   = 2          prefetching threads (0: gather on the training thread; default 1). The batches,
                            their samples and their values are the same for any number of workers.
     drop_last = true       the last partial batch is dropped (default false)
     validation = 0.1       a seeded split of the training data (a fraction in (0, 1)): the same samples for
                            a seed in every run, never trained on; or a source (validation = idx(...))
     transforms = [normalize(mean = [0.2860], std = [0.3530]), random_crop(28, padding = 4),
                   random_hflip(p = 0.5), scale(1 / 255)]
                            applied in order to each training sample after it is gathered (the eval and
                            predict inputs take the deterministic ones only: scale and normalize), seeded by
                            (seed, epoch, sample index) so that they do not depend on workers or batch. */

/* Batches in an epoch of n samples: the last partial batch is dropped with drop_last. */
int64_t rt_batch_count_drop(int64_t n, int64_t batch, bool drop_last);

/* The order of one epoch over the samples subset[0..n) (subset NULL: 0..n-1): subset's order, or a
   permutation of it derived from (seed, epoch) only. rt_epoch_order is this with subset NULL. */
void rt_epoch_order_of(const int64_t *subset, int64_t n, bool shuffle, uint64_t seed, int64_t epoch,
                       int64_t *order);

/* A seeded split of 0..n-1: nval = round(n * fraction) samples (at least 1 and at most n - 1) into val, the
   rest into train, each in increasing order; the same for a seed whatever else the run does. The arrays are
   malloc'd (free them); RT_ERR on a fraction outside (0, 1) or n < 2. */
int rt_split(int64_t n, double fraction, uint64_t seed, int64_t **train, int64_t *ntrain, int64_t **val,
             int64_t *nval, RtErr *e);

typedef enum { RT_TF_SCALE, RT_TF_NORMALIZE, RT_TF_RANDOM_CROP, RT_TF_RANDOM_HFLIP } RtTransformKind;
#define RT_MAX_TRANSFORMS 8
#define RT_TF_MAX_CHANNELS 16
typedef struct RtTransform {
    RtTransformKind kind;
    double scale;                                                          /* scale */
    int nch;                                                               /* normalize */
    double mean[RT_TF_MAX_CHANNELS], std[RT_TF_MAX_CHANNELS];
    int64_t size_h, size_w, padding;                                       /* random_crop */
    double p;                                                              /* random_hflip */
} RtTransform;
typedef struct RtTransforms {
    int n;
    RtTransform t[RT_MAX_TRANSFORMS];
} RtTransforms;

/* Reads the recipe key "transforms" (absent: none) against the model's input x: normalize needs one mean and
   std per channel (dimension 1 of [N, C, H, W], or one for any shape), random_crop and random_hflip an input
   [N, C, H, W] whose H and W the crop size equals; errors name the transform and the argument. */
int rt_transforms_parse(const json_t *recipe, const RtTensorSpec *x, RtTransforms *t, RtErr *e);

/* Applies the transforms to a gathered float batch x (n samples, as xs with N bound to n) whose sample k
   is dataset sample ids[k]; train false applies only scale and normalize. */
void rt_transforms_apply(const RtTransforms *t, bool train, RtDType xt, void *x, const RtTensorSpec *xs,
                         int64_t n, const int64_t *ids, uint64_t seed, int64_t epoch);

#endif
