/* rt_tb_probe.c: a test tool that writes a TensorBoard event file (runtime/tb.c) of known content, so that
   tests/e2e/tensorboard_decode.sh can decode it apart from the runtime (TensorBoard's reader, or a decoder of
   the protobuf wire format written in Python).

   usage: rt_tb_probe DIR

   Writes into DIR, and prints the file's path: the file version; at step 1 what the driver writes after an
   epoch (rt_tb_epoch) for the log {"epoch": 1, "lr": 0.1, "train_loss": 0.75, "train_accuracy": 0.5,
   "val_loss": null} with a histogram of the parameter "fc.weight", f32[2, 3] = [-2, -1, 0, 0.5, 0.5, 3];
   then "train/loss" = 0.25 at step 2. Exit status 0, or 1 with the message on stderr. */
#include <stdlib.h>

#include "tb.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: rt_tb_probe DIR\n");
        return 1;
    }
    json_error_t je;
    json_t *log = json_loads("{\"epoch\": 1, \"lr\": 0.1, \"train_loss\": 0.75, \"train_accuracy\": 0.5,"
                             " \"val_loss\": null}", 0, &je);
    RtParam param = {.t = {.name = "fc.weight", .dtype = RT_F32, .rank = 2, .shape = {2, 3}}};
    RtManifest m = {.nparams = 1, .params = &param};
    float w[6] = {-2, -1, 0, 0.5f, 0.5f, 3};
    void *buffers[1] = {w};
    RtModel md = {.m = &m, .params = buffers};
    RtTb tb;
    RtErr e = {{0}};
    int rc = log ? rt_tb_open(&tb, argv[1], &e) : rt_errf(&e, "bad JSON: %s", je.text);
    if (rc == RT_OK) {
        if (rt_tb_epoch(&tb, 1, log, &md, &e) != RT_OK || rt_tb_scalar(&tb, "train/loss", 2, 0.25, &e) != RT_OK)
            rc = RT_ERR;
        if (rt_tb_close(&tb, rc == RT_OK ? &e : NULL) != RT_OK)
            rc = RT_ERR;
    }
    json_decref(log);
    if (rc != RT_OK) {
        fprintf(stderr, "rt_tb_probe: %s\n", e.msg);
        return 1;
    }
    printf("%s\n", tb.path);
    return 0;
}
