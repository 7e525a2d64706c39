/* optim.h: the optimizers of torch.optim, run by the runtime on the gradients that the "grads" graph
   outputs (optim.c). The update formulas are PyTorch's (torch/optim, the single-tensor implementations of
   PyTorch 1.13), element by element, in the parameter's dtype (f32 or f64). The train graph's fused SGD
   (passes/optimizer.c) is the fast path for plain SGD; this file serves every optimizer and every option,
   and names its state as the fused SGD does, so that one checkpoint loads in either. */
#ifndef LATHE_RT_OPTIM_H
#define LATHE_RT_OPTIM_H

#include "rt.h"

typedef enum { RT_OPT_SGD, RT_OPT_ADAM, RT_OPT_ADAMW, RT_OPT_RMSPROP, RT_OPT_ADAGRAD } RtOptKind;

/* Every hyperparameter of the five optimizers, with PyTorch's defaults for the kind filled in by the parser:
   SGD(lr, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false)
   Adam(lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weight_decay = 0, amsgrad = false, maximize = false)
   AdamW(lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weight_decay = 1e-2, amsgrad = false, maximize = false)
   RMSprop(lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0, centered = false,
           maximize = false)
   Adagrad(lr = 1e-2, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10,
           maximize = false) */
typedef struct RtOptHyper {
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps, alpha, lr_decay, initial_accumulator_value;
    bool nesterov, amsgrad, centered, maximize;
} RtOptHyper;

/* A parameter group: the parameters whose names match any of the glob patterns (fnmatch: "*.bias",
   "*norm*", "bn?.weight") take these hyperparameters (the optimizer's, with the group's keywords over
   them). The recipe writes them as
       param_groups = [group("*.bias", "*bn*.weight", weight_decay = 0), group("head.*", lr = 1e-2)]
   A parameter takes the first group that matches it, or the optimizer's own settings (group 0 is always
   that default group). */
#define RT_OPT_MAX_GROUPS 16
#define RT_OPT_MAX_PATTERNS 16
typedef struct RtOptGroup {
    int npatterns;
    const char *patterns[RT_OPT_MAX_PATTERNS]; /* borrowed from the recipe JSON */
    RtOptHyper h;
} RtOptGroup;

typedef struct RtOptimSpec {
    RtOptKind kind;
    int ngroups;                         /* at least 1: group 0 is the optimizer's own settings */
    RtOptGroup groups[RT_OPT_MAX_GROUPS];
    double clip_grad_norm;               /* recipe key clip_grad_norm = 1.0: torch.nn.utils.clip_grad_norm_
                                            (max_norm, norm_type 2, over every trained parameter); 0: none */
    double clip_grad_value;              /* recipe key clip_grad_value = 0.5: clip_grad_value_, after the
                                            norm's clipping when both are given; 0: none */
    int64_t accumulate;                  /* recipe key accumulate = k: one step per k batches (1: every batch) */
} RtOptimSpec;

/* Reads the recipe's "optimizer" call and its keys param_groups, clip_grad_norm, clip_grad_value and
   accumulate (absent: none, 1) into s, refusing what torch.optim refuses (a negative lr, betas outside
   [0, 1), nesterov without momentum, an unknown keyword or optimizer with the closest name suggested), each
   as one message naming the key: "optimizer: Adam has no argument 'beta' (did you mean 'betas'?)". */
int rt_optim_spec_parse(const json_t *recipe, RtOptimSpec *s, RtErr *e);

/* Whether s is what the train graph's fused update computes: SGD, one group, no clipping, accumulate 1,
   and every hyperparameter but lr equal to the compiled call's (compiled: the manifest's recipe optimizer). */
bool rt_optim_is_fused(const RtOptimSpec *s, const RtOptimSpec *compiled);

typedef struct RtOptState RtOptState; /* one parameter's buffers (optim.c) */
typedef struct RtOptBlock RtOptBlock; /* a range of one parameter's elements (optim.c) */

typedef struct RtOptim {
    RtOptimSpec spec;
    const RtManifest *m;
    int nparams;          /* m->nparams */
    int *group;           /* per manifest param: its group, -1 for a parameter that is not trained */
    RtOptState *st;       /* per manifest param */
    int64_t steps;        /* optimizer steps taken (not batches): Adam's bias correction and Adagrad's lr decay
                             count these, and SGD's momentum buffer is the gradient itself at step 0 (a driver
                             that resumes from a checkpoint restores it with the state) */
    int64_t pending;      /* batches accumulated since the last step */
    int ntensors;
    RtTensor *tensors;    /* the state as checkpoint tensors, "optimizer.NAME.KEY", pointing at the buffers */
    /* The work is cut into blocks of at most a fixed number of elements of one parameter, the same for any
       number of threads, so that the global norm's partial sums, added in block order, give the same bits. */
    int64_t numel;        /* elements of the trained parameters */
    int64_t nblocks;
    RtOptBlock *blocks;
    double *block_sumsq;
    bool norm_f32;        /* clip_grad_norm_ computes in f32: every trained parameter is f32 */
    double last_norm;
    bool track_norm;      /* compute last_norm on every step (set after rt_optim_open); else only to clip */
    char *names;          /* the tensors' names */
} RtOptim;

/* Allocates the state of every trained parameter of m, zeroed as PyTorch starts it (Adagrad's sum at
   initial_accumulator_value). The state tensors are named "optimizer.<param>.<key>" with PyTorch's state
   keys: momentum_buffer (SGD, RMSprop), exp_avg, exp_avg_sq, max_exp_avg_sq (Adam, AdamW with amsgrad),
   square_avg, grad_avg (RMSprop centered), sum (Adagrad); each the parameter's dtype and shape. A state
   tensor exists only where PyTorch's would (no momentum_buffer with momentum 0). */
int rt_optim_open(RtOptim *o, const RtOptimSpec *s, const RtManifest *m, RtErr *e);
void rt_optim_close(RtOptim *o);

/* The bytes of the state that rt_optim_open allocates for s on m (with the accumulated gradients). */
int64_t rt_optim_state_bytes(const RtOptimSpec *s, const RtManifest *m);

/* One batch's gradients in: grads[i] is the gradient of manifest param i (NULL for one not trained). With
   accumulate k, the gradients of k batches are averaged (as `(loss / k).backward()` k times would give) and
   the step taken on the k-th; returns true when a step was taken. params[i]: the parameter buffers, updated
   in place. group_lr[g]: the learning rate of group g for this step (the schedule's value); NULL: each
   group's own lr. The gradient buffers are read, never written. Clipping applies
   to the averaged gradient, before weight decay, as clip_grad_norm_ before optimizer.step() does. The work
   runs on the thread pool (lathe_parallel_for), and gives the same bits for any number of threads. */
bool rt_optim_feed(RtOptim *o, void **params, void *const *grads, const double *group_lr);

/* Takes the step for batches fed since the last one (fewer than k at the end of an epoch), averaging over
   those; returns false when there were none. */
bool rt_optim_flush(RtOptim *o, void **params, const double *group_lr);

/* The global 2-norm of the gradients of the last step (averaged over the batches accumulated, before
   clipping): what clip_grad_norm_ returns. Computed on steps that clip (clip_grad_norm or clip_grad_value), or
   on every step where o->track_norm is set; 0 otherwise. */
double rt_optim_last_grad_norm(const RtOptim *o);

#endif
