/* lrsched.h: the learning-rate schedules of torch.optim.lr_scheduler (lrsched.c), as closed formulas of the
   epoch and the step, so that a resumed run needs no replay. Recipe keys:
       schedule = StepLR(step_size, gamma = 0.1)
                | MultiStepLR(milestones, gamma = 0.1)            milestones: a list of epochs, non-decreasing
                | ExponentialLR(gamma)
                | CosineAnnealingLR(T_max, eta_min = 0)
                | OneCycleLR(max_lr = lr, total_steps = none, pct_start = 0.3, anneal_strategy = "cos",
                             div_factor = 25, final_div_factor = 1e4, three_phase = false)
                | LinearLR(start_factor = 1 / 3, end_factor = 1, total_iters = 5)
                | ConstantLR(factor = 1 / 3, total_iters = 5)
                | LambdaLR(lr_lambda)        an expression of epoch and step: 0.95 ** epoch
                | none                       (the default) the optimizer's lr throughout
       warmup   = 500                        linear warmup over the first 500 steps: the schedule's value
                                             times (step + 1) / 500 while step < 500
   Epoch schedules take the value PyTorch's scheduler has after `epoch` calls of scheduler.step() (one per
   epoch, epoch counted from 0), by PyTorch's closed forms (_get_closed_form_lr); PyTorch's step() computes
   the same values recursively, equal within float rounding. CosineAnnealingLR past T_max rises again, as
   PyTorch's does. OneCycleLR is a step schedule (one scheduler.step() per batch) with PyTorch 1.13's phases;
   total_steps defaults to epochs * steps_per_epoch as PyTorch's epochs/steps_per_epoch arguments give, and a
   step at or past total_steps keeps the value of step total_steps - 1 (PyTorch raises past it); max_lr
   defaults to the group's lr; only the lr is scheduled (PyTorch's cycle_momentum is not applied). LambdaLR's
   expression gives the factor of the base lr, as lr_lambda does. Per-step values use the optimizer steps. */
#ifndef LATHE_RT_SCHED_H
#define LATHE_RT_SCHED_H

#include "rt.h"

typedef enum {
    RT_SCHED_CONSTANT, /* no schedule */
    RT_SCHED_STEP, RT_SCHED_MULTISTEP, RT_SCHED_EXPONENTIAL, RT_SCHED_COSINE, RT_SCHED_ONECYCLE,
    RT_SCHED_LINEAR, RT_SCHED_CONSTANT_FACTOR, RT_SCHED_LAMBDA,
} RtSchedKind;

#define RT_SCHED_MAX_MILESTONES 64
typedef struct RtSched {
    RtSchedKind kind;
    double gamma, eta_min, pct_start, div_factor, final_div_factor, start_factor, end_factor, factor;
    double max_lr;        /* OneCycleLR; 0: the group's lr */
    int64_t step_size, t_max, total_iters;
    int64_t total_steps;  /* OneCycleLR; 0: epochs * steps_per_epoch */
    int nmilestones;
    int64_t milestones[RT_SCHED_MAX_MILESTONES]; /* sorted */
    bool anneal_cos, three_phase;
    const json_t *lambda; /* LambdaLR: borrowed from the recipe */
    bool lambda_reads_step;
    int64_t warmup;       /* steps; 0: none */
} RtSched;

/* Reads the recipe keys "schedule" and "warmup" (both optional) into s; errors name the key and argument
   ("recipe key schedule: StepLR has no argument 'gama' (did you mean 'gamma'?)"); an unknown schedule
   suggests the closest name. LambdaLR's expression is checked here (rt_rexpr_check over epoch and step). */
int rt_sched_parse(const json_t *recipe, RtSched *s, RtErr *e);

/* The learning rate for the optimizer step `step` (counted from 0 over the whole run) in epoch `epoch`
   (from 0), for a group whose lr is base_lr; steps_per_epoch and epochs give OneCycleLR's default length.
   RT_ERR only where LambdaLR's expression cannot be evaluated or gives no finite number (e names it). */
int rt_sched_lr(const RtSched *s, double base_lr, int64_t epoch, int64_t step, int64_t steps_per_epoch,
                int64_t epochs, double *lr, RtErr *e);

/* Whether the value can change within an epoch (OneCycleLR, warmup, a LambdaLR that reads step). */
bool rt_sched_per_step(const RtSched *s);

/* The schedule in the model language's syntax, for `info` and the logs ("StepLR(step_size = 1, gamma = 0.7)",
   "constant", "ExponentialLR(gamma = 0.9), warmup = 500"); malloc'd, NULL when out of memory. */
char *rt_sched_text(const RtSched *s);

#endif
