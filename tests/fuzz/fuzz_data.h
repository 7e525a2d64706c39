/* fuzz_data.h: loading a data source through rt_dataset_load as a run does, then reading every value the
   trainer would (rt_dataset_gather of a few samples, their labels). Shared by the data sources' targets. */
#ifndef LATHE_FUZZ_DATA_H
#define LATHE_FUZZ_DATA_H

#include "runtime/rt.h"
#include "fuzz_file.h"

/* The first and the last sample, as f32 inputs and f64 labels (a run converts class labels to integers only
   after rt_dataset_check has checked them against the model). */
static void fuzz_gather(const RtDataset *d) {
    if (d->count <= 0 || d->per_sample <= 0 || d->per_sample > (1 << 22) || d->per_label > (1 << 22))
        return;
    int64_t idx[2] = {0, d->count - 1};
    float *x = malloc(2 * (size_t)d->per_sample * sizeof *x);
    double *y = malloc(2 * (size_t)(d->per_label > 0 ? d->per_label : 1) * sizeof *y);
    if (x && y) {
        rt_dataset_gather(d, idx, 2, RT_F32, x, RT_F64, d->per_label > 0 ? y : NULL);
        if (d->per_label > 0)
            (void)rt_dataset_label(d, d->count - 1, d->per_label - 1);
    }
    free(x);
    free(y);
}

/* Loads spec (file names relative to the fuzz folder); a failure must say why. */
static void fuzz_load(const RtDataSpec *spec) {
    RtDataset d;
    RtErr e = {{0}};
    if (rt_dataset_load(&d, fuzz_folder(), spec, &e) == RT_OK) {
        fuzz_gather(&d);
        rt_dataset_free(&d);
    } else if (!e.msg[0]) {
        fprintf(stderr, "rt_dataset_load failed without a message\n");
        abort();
    }
}

#endif
