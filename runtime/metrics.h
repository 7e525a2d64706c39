/* metrics.h: the metrics of torchmetrics, computed by the runtime from each batch's logits and labels and
   accumulated over an epoch as torchmetrics' compute() gives (metrics.c). The recipe names them:
       metrics = [accuracy, top_k(5), precision, recall, f1, confusion_matrix, mae, mse]
   accuracy                 correct / samples (multiclass, micro); the prediction is the first largest logit
   top_k(k)                 the label among the k largest logits (ties: the lower class index first; a NaN
                            logit ranks above every number, as torch.topk puts it); named "top5_accuracy"
   precision, recall, f1    macro averages over the classes (torchmetrics' average="macro"): per class
                            tp / (tp + fp), tp / (tp + fn) and 2 tp / (2 tp + fp + fn), 0 where the division is
                            0 / 0 (zero_division=0): a class never predicted has precision 0 and counts in the
                            average; a class with no true and no predicted sample (tp + fp + fn = 0) is left out
                            of the average, as torchmetrics leaves it, and shows 0 in the per-class arrays
                            ("precision_per_class": [...]) of the JSON
   confusion_matrix         rows true class, columns predicted, counts (JSON only); at most
                            RT_METRICS_MAX_CONFUSION classes
   mae, mse                 regression: mean absolute and squared error over every output value
   NAME                     a function of the model file (the graph's output "metric.NAME"): the mean of its
                            per-batch values weighted by the batch's samples
   The loss is always there: the mean of the per-batch mean losses weighted by the batch's samples.
   Logits [N, C] with labels [N] (classes), or [N, T, C] with labels [N, T] (tokens: every position is a
   sample); regression: outputs and labels of the same shape. A label outside [0, C) (such as an ignored
   -100), or a real label that is not a whole number, is skipped, as ignore_index would. Logits may be f32 or
   f64; labels i64, i32, u8, f32 or f64. */
#ifndef LATHE_RT_METRICS_H
#define LATHE_RT_METRICS_H

#include "rt.h"

typedef enum {
    RT_METRIC_ACCURACY, RT_METRIC_TOPK, RT_METRIC_PRECISION, RT_METRIC_RECALL, RT_METRIC_F1,
    RT_METRIC_CONFUSION, RT_METRIC_MAE, RT_METRIC_MSE, RT_METRIC_CUSTOM,
} RtMetricKind;

#define RT_MAX_METRICS 16
#define RT_METRICS_MAX_CONFUSION 1024
typedef struct RtMetricSpec {
    int n;
    RtMetricKind kind[RT_MAX_METRICS];
    int64_t k[RT_MAX_METRICS];        /* top_k */
    const char *name[RT_MAX_METRICS]; /* custom: the name in the recipe (borrowed); the graph's output is
                                         "metric." + name */
} RtMetricSpec;

/* Reads the recipe's "metrics" list (absent: [accuracy] for class labels, [mae] for regression) into s,
   once each in the order written. classes: the logits' last dimension; regression: the labels are values.
   g (may be NULL): the graph whose outputs "metric.NAME" are the model file's own metrics, which the list may
   name. Errors name the key: an unknown metric (the closest name suggested), top_k without 1 <= k <= classes,
   a classification metric on a regression model or the reverse, a confusion matrix of too many classes. */
int rt_metrics_parse(const json_t *recipe, int64_t classes, bool regression, const RtGraph *g, RtMetricSpec *s,
                     RtErr *e);

typedef struct RtMetrics {
    RtMetricSpec spec;
    int64_t classes;
    bool regression;
    double loss_sum;      /* sum of batch mean loss * batch samples */
    int64_t samples;      /* samples the loss was averaged over (batch rows) */
    int64_t counted;      /* labels counted by the class metrics (positions with a valid label) */
    int64_t correct;
    int64_t topk_correct[RT_MAX_METRICS]; /* by spec index */
    int64_t *tp, *true_count, *pred_count; /* per class, or NULL (no precision, recall, f1 or confusion) */
    int64_t *confusion;   /* classes * classes, or NULL */
    double abs_sum, sq_sum;
    int64_t values;       /* regression values counted */
    double custom_sum[RT_MAX_METRICS]; /* by spec index: sum of batch value * batch samples */
    int64_t custom_samples[RT_MAX_METRICS];
} RtMetrics;

int rt_metrics_open(RtMetrics *m, const RtMetricSpec *s, int64_t classes, bool regression, RtErr *e);
void rt_metrics_reset(RtMetrics *m);
void rt_metrics_close(RtMetrics *m);

/* One batch of n samples: logits as the graph's output spec ls gives (N bound to n), labels as ys (dtype yt);
   loss: the batch's mean loss. ls and ys NULL (a graph without logits or labels): the loss alone. Where
   logits and labels disagree in count (a driver's mistake), only the positions both have are counted. */
void rt_metrics_batch(RtMetrics *m, const RtTensorSpec *ls, const void *logits, const RtTensorSpec *ys,
                      const void *labels, int64_t n, double loss);

/* One batch's value of the model file's metric at spec index i (the graph's output "metric.NAME"), the mean
   over the batch's n samples. */
void rt_metrics_custom(RtMetrics *m, int i, double value, int64_t n);

/* The value of a scalar metric over what was fed ("loss", "accuracy", "top5_accuracy", "precision", "recall",
   "f1", "mae", "mse", a custom metric's name); NAN for a name not computed (or nothing fed). */
double rt_metrics_value(const RtMetrics *m, const char *name);
/* Whether rt_metrics_value computes name at all (what early_stop's monitor may name), and the names it
   computes, comma separated ("loss, accuracy, top5_accuracy"), truncated to n bytes. */
bool rt_metrics_computes(const RtMetrics *m, const char *name);
void rt_metrics_names(const RtMetrics *m, char *buf, size_t n);

/* Adds every metric to o as prefix + name: numbers (null where NaN: JSON has none), per-class arrays
   ("precision_per_class"), the confusion matrix as an array of rows. prefix: "train_", "test_", "val_" or "". */
void rt_metrics_json(const RtMetrics *m, json_t *o, const char *prefix);

/* One console line: "loss 0.4123, accuracy 85.2%, top5_accuracy 99.1%, f1 0.847" (no confusion matrix);
   truncated to n bytes. */
void rt_metrics_line(const RtMetrics *m, char *buf, size_t n);

#endif
