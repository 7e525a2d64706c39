/* memcheck.h: out of memory, told before it happens (memcheck.c). Before the first step a training run adds
   up what it will allocate at its batch (the train step's binding, the loader's buffers, the evaluation
   binding, the parameters, the optimizer's state and the data sets it holds) and compares the sum with the
   memory it can have: on CPU the smaller of MemAvailable (/proc/meminfo) and what the cgroup's limit leaves,
   or LATHE_MEMORY_LIMIT. A run that does not fit stops with the figure, what it is for, the memory there is
   and the largest batch that fits; `--batch auto` trains at that largest batch. */
#ifndef LATHE_RT_MEMCHECK_H
#define LATHE_RT_MEMCHECK_H

#include "rt.h"

/* ---------------------------------------------------------------- the memory there is */

/* The environment variable that replaces the detected figure: a cap in bytes on each process's run (a
   suffix K, M, G or T multiplies by 1024^k), for tests and for users who want to bound a run. */
#define RT_MEMORY_LIMIT_ENV "LATHE_MEMORY_LIMIT"

/* A limit at or above this is no limit (cgroup v1 writes 2^63 rounded down to a page for "none"). */
#define RT_MEM_UNLIMITED ((int64_t)1 << 60)

typedef struct RtMemAvail {
    int64_t bytes;    /* what the run can have; -1: unknown (nothing could be read), no check */
    bool cap;         /* LATHE_MEMORY_LIMIT: a cap on the whole run, not what is free beside it */
    char source[256]; /* where the figure comes from: "MemAvailable in /proc/meminfo" */
} RtMemAvail;

/* MemAvailable of a /proc/meminfo file at path, in bytes. RT_ERR (and *out -1) when the file cannot be read
   or has no such line (kernels before 3.14). */
int rt_mem_meminfo(const char *path, int64_t *out);
/* What a cgroup's limit leaves: limit - (usage - inactive file pages, which the kernel reclaims before it
   kills). limit_path holds a byte count or "max" (v2's memory.max, v1's memory.limit_in_bytes), usage_path a
   byte count (memory.current, memory.usage_in_bytes), stat_path (may be NULL) lines "KEY VALUE" of which
   stat_key (v2: "inactive_file", v1: "total_inactive_file") is read. *out is RT_MEM_UNLIMITED when there is
   no limit; RT_ERR when a file cannot be read or parsed. */
int rt_mem_cgroup(const char *limit_path, const char *usage_path, const char *stat_path, const char *stat_key,
                  int64_t *out);
/* A byte count as LATHE_MEMORY_LIMIT takes it ("1000000", "512M", "2G"): RT_ERR on anything else, zero
   or an overflow. */
int rt_mem_parse_bytes(const char *s, int64_t *out);
/* The memory this process can have now: LATHE_MEMORY_LIMIT when set (RT_ERR when it is not a byte count),
   else the smaller of MemAvailable and the cgroup's room (v2, then v1; this process's own cgroup, read from
   /proc/self/cgroup, else the root of the mount), shared by the processes of an mpirun job on this machine. */
int rt_mem_available(RtMemAvail *a, RtErr *e);

/* ---------------------------------------------------------------- what the run needs */

/* The parts of a run's memory, in the order messages list them. */
typedef enum {
    RT_MEM_ARENA,   /* the train step's scratch arena */
    RT_MEM_BATCH,   /* the train step's inputs and outputs (the batch, the loss, the logits) */
    RT_MEM_GRADS,   /* the gradients the runtime's optimizer reads (and their buckets under mpirun) */
    RT_MEM_LOADER,  /* the loader's two batches being gathered */
    RT_MEM_EVAL,    /* the evaluation binding: its arena, inputs and outputs */
    RT_MEM_PARAMS,  /* parameters and buffers */
    RT_MEM_OPTIM,   /* the optimizer's state (the fused step's, or the runtime optimizer's) */
    RT_MEM_DATA,    /* the data sets held in memory and the sample orders */
    RT_MEM_NPARTS
} RtMemPart;

typedef struct RtMemNeed {
    int64_t part[RT_MEM_NPARTS];
    int64_t total;
    int64_t held; /* of total, what the run holds already (parameters, data): it is in use, not free */
} RtMemNeed;

/* What the memory of a training run depends on besides its batch. */
typedef struct RtMemRun {
    const RtManifest *m;
    const RtGraph *step;     /* the train graph (SGD fused in) or the grads graph */
    const RtGraph *eval;     /* NULL: no evaluation pass */
    int64_t ntrain, neval;   /* training samples; samples of the largest evaluation pass */
    int ranks;               /* processes sharing each batch (mpirun), 1 alone */
    int64_t params, optim;   /* bytes, whatever the batch */
    int64_t data, data_held; /* the data sets and sample orders; of it, what is allocated already */
    int64_t held;            /* allocated already: parameters, the train graph's state, data_held */
} RtMemRun;

/* The data that a training run holds: the data sets (NULL entries skipped) and the sample counts. */
typedef struct RtMemData {
    const RtDataset *sets[4];
    int64_t ntrain;  /* training samples (after a validation split) */
    int64_t nval;    /* validation samples of a split of the training data (0: none) */
    int64_t neval;   /* samples of the largest evaluation pass (0: none) */
} RtMemData;

/* Reads what the run's memory depends on from the manifest, the configuration (its optimizer decides the
   graph) and the data. */
int rt_mem_run_init(RtMemRun *r, const RtManifest *m, const RtConfig *cfg, const RtMemData *d, RtErr *e);
/* The memory of the run at global batch n (each process's share under mpirun); false on overflow. */
bool rt_mem_need(const RtMemRun *r, int64_t n, RtMemNeed *out);
/* The bytes of the buffers a data set holds (as the allocator gave them: a --limit does not shrink them). */
int64_t rt_mem_dataset_bytes(const RtDataset *d);

/* The largest n in [1, cap] whose cost fits in avail bytes, for a cost that does not fall as n grows;
   cost returns false where the figure overflows (that n does not fit). 0 when not even n = 1 fits. */
typedef bool (*RtMemCost)(const void *ctx, int64_t n, int64_t *bytes);
int64_t rt_mem_largest(RtMemCost cost, const void *ctx, int64_t avail, int64_t cap);

/* "1.5 GiB", "512 KiB", "100 B" into buf. */
void rt_mem_text(int64_t bytes, char *buf, size_t n);

/* ---------------------------------------------------------------- the check */

/* The largest batch --batch auto tries: this many times the recipe's batch (and never more samples than
   the training data has). */
#define RT_BATCH_AUTO_FACTOR 64

/* Before the first step of `train`: with --batch auto, sets cfg->batch to the largest batch that fits and
   says so on out (the run's first line); otherwise RT_ERR with the whole message when the run at cfg->batch
   does not fit in the memory there is. Nothing is checked where that memory cannot be read. */
int rt_mem_check_train(const RtManifest *m, RtConfig *cfg, const RtMemData *d, FILE *out, RtErr *e);
/* `info`: the memory there is, beside the plan's peak, and the largest batch whose train step fits. */
void rt_mem_info(FILE *f, const RtManifest *m, const json_t *recipe);

#endif
