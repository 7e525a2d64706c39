/* tb.h: TensorBoard event files (tb.c), what `--tensorboard DIR` writes: DIR/events.out.tfevents.* holding
   TensorFlow's Event protobufs (proto/tensorboard.proto, packed by protobuf-c) as TFRecords:
       uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes, the Event, uint32 masked CRC-32C
       of the Event,  where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8
   The first event carries file_version "brain.Event:2"; each scalar and each histogram is an event of its own
   (step and wall time) with a Summary of one value. Histograms use TensorFlow's default buckets: limits
   ±1e-12 * 1.1^k up to 1e20, 0 and ±DBL_MAX, a value v counting in the bucket whose limits satisfy
   limit[i - 1] <= v < limit[i]; each run of empty buckets is written as one bucket, as TensorFlow writes it. */
#ifndef LATHE_RT_TB_H
#define LATHE_RT_TB_H

#include "rt.h"

#include <limits.h>

typedef struct RtTb {
    FILE *f;             /* NULL: not open */
    char path[PATH_MAX]; /* the event file, for messages */
    uint8_t *buf;        /* one record */
    size_t cap;
} RtTb;

/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as TFRecords use; "123456789" gives 0xe3069283. */
uint32_t rt_crc32c(const void *data, size_t n);
uint32_t rt_crc32c_mask(uint32_t crc);

/* Creates dir (and its parents) and a new event file in it, named as TensorFlow names them:
   events.out.tfevents.<unix seconds, 10 digits>.<hostname>.<pid>.<counter of this process>, and writes the
   file_version event. Errors name the folder or the file. */
int rt_tb_open(RtTb *tb, const char *dir, RtErr *e);
/* One scalar (simple_value, a float as TensorBoard stores it; NaN and infinities are written as they are). */
int rt_tb_scalar(RtTb *tb, const char *tag, int64_t step, double value, RtErr *e);
/* A histogram of n values of dtype t. NaN and infinities are left out (of the counts, min, max and sums). */
int rt_tb_histogram(RtTb *tb, const char *tag, int64_t step, RtDType t, const void *data, int64_t n, RtErr *e);
/* Writes what is buffered to the file, so that a running TensorBoard sees it. */
int rt_tb_flush(RtTb *tb, RtErr *e);
/* Flushes and closes (an error when the last writes fail); releases everything, also after an error, and does
   nothing for a zeroed RtTb. */
int rt_tb_close(RtTb *tb, RtErr *e);

/* An epoch's events from the object of the JSON log (driver.c): "lr" as "lr", "train_X", "val_X" and
   "test_X" as "train/X", "val/X" and "test/X" for every number among them (null, which is how the JSON writes
   NaN, as NaN); per-class arrays, the confusion matrix and the other keys are left out. md not NULL: a
   histogram of every parameter, tagged with its name. Then flushes. */
int rt_tb_epoch(RtTb *tb, int64_t step, const json_t *log, const RtModel *md, RtErr *e);

#endif
