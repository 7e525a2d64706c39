/* rt_sched_probe.c: a test tool that prints a learning-rate schedule's values (runtime/lrsched.c) for a recipe
   given as JSON, so that tests/e2e/torch_sched.sh can compare them with torch.optim.lr_scheduler's.

   usage: rt_sched_probe RECIPE_JSON [--base-lr LR] [--epochs E] [--steps-per-epoch S]

   RECIPE_JSON is the recipe's JSON form (lathe_rt.h), such as
   '{"schedule": {"call": "StepLR", "args": [3], "kwargs": {"gamma": 0.5}}, "warmup": 4}'. Prints one line a
   step, "EPOCH STEP LR" with LR to 17 significant digits, for E epochs of S steps (defaults: base lr 0.1, 20
   epochs of 1 step). Exit status 0, or 1 with the message on stderr. */
#include <stdlib.h>
#include <string.h>

#include "lrsched.h"

static int usage(void) {
    fprintf(stderr, "usage: rt_sched_probe RECIPE_JSON [--base-lr LR] [--epochs E] [--steps-per-epoch S]\n");
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc % 2 != 0)
        return usage();
    double base_lr = 0.1;
    long long epochs = 20, steps_per_epoch = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        char *end;
        if (strcmp(argv[i], "--base-lr") == 0)
            base_lr = strtod(argv[i + 1], &end);
        else if (strcmp(argv[i], "--epochs") == 0)
            epochs = strtoll(argv[i + 1], &end, 10);
        else if (strcmp(argv[i], "--steps-per-epoch") == 0)
            steps_per_epoch = strtoll(argv[i + 1], &end, 10);
        else
            return usage();
        if (*end || end == argv[i + 1])
            return usage();
    }
    if (epochs < 1 || steps_per_epoch < 1)
        return usage();
    json_error_t je;
    json_t *recipe = json_loads(argv[1], 0, &je);
    if (!recipe) {
        fprintf(stderr, "rt_sched_probe: bad JSON: %s\n", je.text);
        return 1;
    }
    RtSched s;
    RtErr e;
    int status = 0;
    if (rt_sched_parse(recipe, &s, &e) != RT_OK) {
        fprintf(stderr, "rt_sched_probe: %s\n", e.msg);
        status = 1;
    }
    for (long long ep = 0; status == 0 && ep < epochs; ep++)
        for (long long k = 0; status == 0 && k < steps_per_epoch; k++) {
            long long step = ep * steps_per_epoch + k;
            double lr;
            if (rt_sched_lr(&s, base_lr, ep, step, steps_per_epoch, epochs, &lr, &e) != RT_OK) {
                fprintf(stderr, "rt_sched_probe: %s\n", e.msg);
                status = 1;
            } else {
                printf("%lld %lld %.17g\n", ep, step, lr);
            }
        }
    json_decref(recipe);
    return status;
}
