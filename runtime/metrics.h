/* metrics.h: the metrics of torchmetrics, computed by the runtime from each batch's logits and labels and
   accumulated over an epoch as torchmetrics' compute() gives (metrics.c). The recipe names them:
       metrics = [accuracy, top_k(5), precision, recall, f1, confusion_matrix, mae, mse]
   accuracy                 correct / samples (multiclass, micro)
   top_k(k)                 the label among the k largest logits (ties: the lower class index first)
   precision, recall, f1    macro averages over the classes (torchmetrics' average="macro"; a class with no
                            true and no predicted samples counts 0, as torchmetrics' zero_division=0), and
                            per class in the JSON ("precision_per_class": [...])
   confusion_matrix         rows true class, columns predicted, counts (JSON only; the console shows a table
                            only at the end of eval)
   mae, mse                 regression: mean absolute and squared error over every output value
   The loss is always there: the mean of the per-batch mean losses weighted by the batch's samples.
   Logits [N, C] with labels [N] (classes), or [N, T, C] with labels [N, T] (tokens: every position is a
   sample); regression: outputs and labels of the same shape. A label outside [0, C) (such as an ignored
   -100) is skipped, as ignore_index would. */
#ifndef LATHE_RT_METRICS_H
#define LATHE_RT_METRICS_H

#include "rt.h"

typedef enum {
    RT_METRIC_ACCURACY, RT_METRIC_TOPK, RT_METRIC_PRECISION, RT_METRIC_RECALL, RT_METRIC_F1,
    RT_METRIC_CONFUSION, RT_METRIC_MAE, RT_METRIC_MSE,
} RtMetricKind;

#define RT_MAX_METRICS 16
typedef struct RtMetricSpec {
    int n;
    RtMetricKind kind[RT_MAX_METRICS];
    int64_t k[RT_MAX_METRICS]; /* top_k */
} RtMetricSpec;

/* Reads the recipe's "metrics" list (absent: [accuracy] for class labels, [mae] for regression); a
   classification metric on a regression model (or the reverse) is an error naming it. classes: the logits'
   last dimension; regression: the labels are values. */
int rt_metrics_parse(const json_t *recipe, int64_t classes, bool regression, RtMetricSpec *s, RtErr *e);

typedef struct RtMetrics {
    RtMetricSpec spec;
    int64_t classes;
    bool regression;
    double loss_sum;      /* sum of batch mean loss * batch samples */
    int64_t samples;      /* samples the loss was averaged over (batch rows) */
    int64_t counted;      /* labels counted by the class metrics (positions with a valid label) */
    int64_t correct;
    int64_t topk_correct[RT_MAX_METRICS];
    int64_t *confusion;   /* classes * classes, or NULL */
    double abs_sum, sq_sum;
    int64_t values;       /* regression values counted */
} RtMetrics;

int rt_metrics_open(RtMetrics *m, const RtMetricSpec *s, int64_t classes, bool regression, RtErr *e);
void rt_metrics_reset(RtMetrics *m);
void rt_metrics_close(RtMetrics *m);

/* One batch of n samples: logits as the graph's output spec ls gives (N bound to n), labels as ys (dtype yt);
   loss: the batch's mean loss. */
void rt_metrics_batch(RtMetrics *m, const RtTensorSpec *ls, const void *logits, const RtTensorSpec *ys,
                      const void *labels, int64_t n, double loss);

/* The value of a scalar metric over what was fed ("loss", "accuracy", "top5_accuracy", "precision", "recall",
   "f1", "mae", "mse"); NAN for a name not computed (or nothing fed). */
double rt_metrics_value(const RtMetrics *m, const char *name);

/* Adds every metric to o as prefix + name: numbers, per-class arrays ("precision_per_class"), the confusion
   matrix as an array of rows. prefix: "train_", "test_", "val_" or "". */
void rt_metrics_json(const RtMetrics *m, json_t *o, const char *prefix);

/* One console line: "loss 0.4123, accuracy 85.2%, top5_accuracy 99.1%, f1 0.847". */
void rt_metrics_line(const RtMetrics *m, char *buf, size_t n);

#endif
