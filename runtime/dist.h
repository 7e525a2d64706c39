/* dist.h: data-parallel training over processes, with PyTorch DistributedDataParallel's meaning (dist.c).

   An executable compiled with `lathe compile --mpi` carries the Open MPI backend (runtime/mpi/dist_mpi.c,
   in liblathe_rt_mpi.a); started by mpirun it joins the job, started alone it is one process and never
   calls MPI at all. Every other executable is one process; under an mpirun of more than one process it
   says so and stops rather than train K times alone.

   The semantics, those of DDP:
   - `batch` is the global batch. Global batch k of an epoch is the samples order[k*batch ..) of the seeded
     order one process would use; rank r takes positions [n*r/K, n*(r+1)/K) of its n samples, so the split
     of an uneven batch differs by at most one sample, and a rank may get none.
   - Each rank's gradient is the mean over its own samples; it is weighted by n_r / n and the weighted
     gradients are summed with an allreduce: the mean over the global batch, whatever K. The allreduce runs
     in buckets (gradients in reverse parameter order, about RT_DIST_BUCKET_BYTES each), each started as
     soon as backward has written its last gradient (lathe_output_ready_hook), so that communication overlaps
     the rest of backward. Every rank then applies the same update with the runtime's optimizer.
   - Parameters and buffers are broadcast from rank 0 at start (after --resume or --init-from, which every
     rank reads). Losses and metrics are summed across ranks; only rank 0 prints, logs and writes
     checkpoints, whose counters are in global batches, so a checkpoint does not depend on K.
   - Every collective has a deadline (--dist-timeout, default RT_DIST_TIMEOUT seconds): a rank that died or
     hangs ends the whole job with a message instead of a hang. */
#ifndef LATHE_RT_DIST_H
#define LATHE_RT_DIST_H

#include "metrics.h"

#define RT_DIST_TIMEOUT 300.0
#define RT_DIST_BUCKET_BYTES (1 << 20)

/* What a backend does (the MPI one: runtime/mpi/dist_mpi.c). Requests are opaque; counts fit an int (dist.c
   splits larger buffers). */
typedef enum { RT_DIST_F32, RT_DIST_F64 } RtDistType;
typedef struct RtDistOps {
    const char *name;
    /* Whether this process was started by a launcher of this backend (mpirun). */
    bool (*launched)(void);
    int (*init)(int *rank, int *size, RtErr *e);
    void (*finalize)(void);
    /* In place: buf becomes the sum over ranks. */
    int (*iallreduce)(void *buf, int count, RtDistType t, void **req, RtErr *e);
    int (*ibcast)(void *buf, int bytes, void **req, RtErr *e);
    /* Progresses the backend; *done once the request completes (the request is freed then). */
    int (*test)(void **req, bool *done, RtErr *e);
    /* Ends every process of the job. */
    void (*abort)(int status);
} RtDistOps;

/* The MPI backend, where the executable was linked with it (a weak symbol: NULL otherwise). */
const RtDistOps *rt_dist_mpi_ops(void) __attribute__((weak));

typedef struct RtDist {
    int rank, size;       /* 0 and 1 alone */
    const RtDistOps *ops; /* NULL alone */
    double timeout;       /* seconds a collective may wait */
} RtDist;
extern RtDist rt_dist;

/* Joins the job where the process was started by mpirun (and the executable has the backend); alone
   otherwise. On ranks other than 0, standard output goes to /dev/null from here on (errors stay on stderr,
   prefixed with the rank by the driver). RT_ERR: an mpirun of K > 1 processes and no backend, or the
   backend's failure. */
int rt_dist_init(RtErr *e);
void rt_dist_finalize(void);
/* More than one process. */
static inline bool rt_dist_on(void) { return rt_dist.size > 1; }

/* Blocking collectives with the deadline; no-ops alone. */
int rt_dist_allreduce(void *buf, int64_t count, RtDistType t, RtErr *e);
int rt_dist_bcast(void *buf, int64_t bytes, RtErr *e);
/* Ends the job (every rank) with status, after the message has been printed. */
void rt_dist_abort(int status);

/* Rank r's share [*lo, *hi) of n positions. */
void rt_dist_share(int64_t n, int64_t *lo, int64_t *hi);

/* ---------------------------------------------------------------- gradients in buckets
   Between rt_gradsync_begin and rt_gradsync_end, the grads graph's ready calls start the buckets whose
   gradients are all written. The gradient outputs of the binding are moved into one block, a bucket's
   gradients side by side, so that a bucket is reduced in place. */
typedef struct RtGradSync {
    RtBinding *b;
    int nbuckets;
    struct RtBucket *bucket;
    int *bucket_of_arg;   /* by argument of b's graph: its bucket, or -1 */
    void *block;          /* the gradients' memory */
    void **saved;         /* b->args of the gradients before they moved */
    double weight;        /* n_r / n of the current step */
    RtErr err;            /* the first failure of a hook (hooks cannot return one) */
    bool failed;
} RtGradSync;

/* b: a binding of the grads graph; grad_arg[p] its gradient arguments (-1: none). */
int rt_gradsync_open(RtGradSync *s, RtBinding *b, const RtManifest *m, RtErr *e);
void rt_gradsync_close(RtGradSync *s);
/* Before the step: this rank's samples are weight = n_r / n of the global batch. */
void rt_gradsync_begin(RtGradSync *s, double weight);
/* After the step (or instead of it, for a rank without samples: ran = false zeroes the gradients): starts
   what is left and waits for every bucket. */
int rt_gradsync_end(RtGradSync *s, bool ran, RtErr *e);

/* Metrics summed across ranks (metrics.c's counters), in place. */
int rt_dist_reduce_metrics(RtMetrics *s, RtErr *e);

#endif
