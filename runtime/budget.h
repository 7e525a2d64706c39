/* budget.h: one budget of bytes for everything the readers allocate while they load one thing (a data set
   with its labels, a checkpoint), so that a hostile or oversized file stops with one message before the
   allocation that would pass it, not with the kernel's OOM killer part way through (budget.c).

   The budget is LATHE_READ_LIMIT when set, else the memory this process can have when the load starts
   (rt_mem_available: LATHE_MEMORY_LIMIT, MemAvailable and the cgroup's room). A load is opened on the
   calling thread by rt_budget_begin; the readers' allocations made on that thread until rt_budget_end are
   counted against it (a reader called within another's load, as rt_idx_read within rt_dataset_load, joins
   that load). Without an open load nothing is counted, so a reader called alone opens its own. */
#ifndef LATHE_RT_BUDGET_H
#define LATHE_RT_BUDGET_H

#include "rt.h"

/* A byte count (K, M, G, T suffixes as LATHE_MEMORY_LIMIT's) that replaces the memory there is. */
#define RT_READ_LIMIT_ENV "LATHE_READ_LIMIT"

typedef struct RtBudget {
    const char *what;  /* what is loaded, for messages: "data set", "checkpoint" */
    int64_t limit;     /* bytes; -1: none (the memory there is could not be read) */
    int64_t held;      /* bytes counted so far, less what the readers gave back */
    int64_t refused;   /* the bytes of the last allocation refused behind a library (jansson); 0: none */
    char source[256];  /* where limit comes from */
    bool joined;       /* another load was open: this one counts against it */
} RtBudget;

/* Opens a load of what on this thread, or joins the one open. RT_ERR when LATHE_READ_LIMIT is not a byte
   count or the memory there is cannot be read as LATHE_MEMORY_LIMIT asks. */
int rt_budget_begin(RtBudget *b, const char *what, RtErr *e);
void rt_budget_end(RtBudget *b);

/* Counts n more bytes, which the reader of path is about to allocate for what ("the IDX data"): RT_ERR with
   the message naming the file, what and the budget when they would pass it. Nothing open: RT_OK. */
int rt_budget_take(int64_t n, const char *path, const char *what, RtErr *e);
/* Gives back n bytes that the reader freed during the load. */
void rt_budget_give(int64_t n);

/* malloc, calloc and realloc with the bytes counted first (realloc counts new - old) and given back when
   the allocation fails; NULL with the message in e ("out of memory" or the budget's). */
void *rt_budget_malloc(size_t n, const char *path, const char *what, RtErr *e);
void *rt_budget_calloc(size_t k, size_t n, const char *path, const char *what, RtErr *e);
void *rt_budget_realloc(void *p, size_t old, size_t n, const char *path, const char *what, RtErr *e);

/* jansson's allocations on this thread are counted while a load is open (they cannot be given back: jansson
   frees without a size) and one that would pass the budget fails as out of memory inside jansson. After a
   jansson call fails, this returns RT_ERR with the budget's message for path and what when that was why,
   RT_OK otherwise (the caller reports jansson's own error). */
int rt_budget_refused(const char *path, const char *what, RtErr *e);

#endif
