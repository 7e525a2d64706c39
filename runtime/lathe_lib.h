/* lathe_lib.h: the model library's runtime side (libapi.c), between the per-model wrappers that
   `lathe compile --emit lib|shared` generates and the runtime. A wrapper such as fashion_mlp_predict(m, ...)
   is one call of lathe_lib_predict(&model, m, ...), where model describes the compiled model: its manifest
   and graph entries (lathe_rt.h). The user never sees this header: the generated PREFIX.h declares the
   wrappers with the model's own types and shapes.

   Every call returns LATHE_LIB_OK (0) or a negative LATHE_LIB_E_* code, and on failure leaves one message
   for lathe_lib_last_error: a thread-local buffer, so each thread reads its own last failure (with the
   runtime linked privately into each model library, each model keeps its own too). Calls on different
   handles may run on different threads at once; calls on one handle must not overlap. */
#ifndef LATHE_LIB_H
#define LATHE_LIB_H

#include "lathe_rt.h"

#include <stdint.h>

enum {
    LATHE_LIB_OK = 0,
    LATHE_LIB_E_ARGUMENT = -1,  /* a NULL handle or pointer, a batch < 1, another model's handle */
    LATHE_LIB_E_IO = -2,        /* a checkpoint that cannot be read or written, or is not this model's */
    LATHE_LIB_E_MODEL = -3,     /* the model lacks what the call needs (no predict or train graph) */
    LATHE_LIB_E_NONFINITE = -4, /* the loss of a train step is NaN or infinite */
    LATHE_LIB_E_MEMORY = -5,    /* out of memory */
};

/* What the generated code tells the runtime about its model: a constant in the model's object. */
typedef struct LatheLibModel {
    const char *manifest; /* lathe_rt.h's manifest JSON */
    LatheGraphFn train, grads, eval, predict;
} LatheLibModel;

typedef struct LatheLib LatheLib;

/* A model with the parameters of the safetensors checkpoint at path (the optimizer's state too, where the
   file has the recipe's), or freshly initialised with the recipe's seed as a produced binary's `train`
   starts (path NULL). NULL on error. The first open starts the kernels' thread pool: LATHE_THREADS threads
   (one per core when unset or 0). */
LatheLib *lathe_lib_open(const LatheLibModel *model, const char *path);
void lathe_lib_close(const LatheLibModel *model, LatheLib *lib);
/* The message of this thread's last failed call ("" before any). */
const char *lathe_lib_last_error(void);

/* The predict graph on batch samples: input holds batch * (values of one sample of the model's input x) in
   x's dtype, output receives batch * (values of one sample's output). The recipe's deterministic transforms
   (scale, normalize) apply to a copy of the input, as the produced binary's `predict` applies them. */
int lathe_lib_predict(const LatheLibModel *model, LatheLib *lib, const void *input, int64_t batch, void *output);
/* One batch of the training loop: the fused train graph, or the grads graph and the runtime's optimizer, as
   the produced binary chooses (runtime/train.c), at the learning rate last set (the recipe's at first; the
   recipe's schedule is the caller's to apply through set_lr). The loss of the batch into *loss (may be
   NULL), as a float. */
int lathe_lib_train_step(const LatheLibModel *model, LatheLib *lib, const void *input, const void *labels,
                         int64_t batch, float *loss);
int lathe_lib_set_lr(const LatheLibModel *model, LatheLib *lib, double lr);
/* Writes a checkpoint that the produced binary's --weights, --resume and --init-from read. */
int lathe_lib_save(const LatheLibModel *model, LatheLib *lib, const char *path);

#endif
