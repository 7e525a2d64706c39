/* fuzz_safetensors.c: the checkpoint loader as a run calls it: rt_st_load into a small fixed model's tensors
   (--weights, resuming), rt_st_init_from with a prefix rule (--init-from) and rt_st_read_meta (eval's
   metadata). A hostile file must fail with a message and leave the tensors untouched. */
#include "runtime/rt.h"
#include "fuzz_file.h"

/* The fixed model: fc.weight f32 [4, 3], fc.bias f32 [4], an optional buffer bn.mean f32 [4] and an i64 step. */
static float weight[12], bias[4], mean[4];
static int64_t step;

static void model(RtTensor *req, RtTensor *opt) {
    req[0] = (RtTensor){"fc.weight", RT_F32, 2, {4, 3}, weight};
    req[1] = (RtTensor){"fc.bias", RT_F32, 1, {4}, bias};
    opt[0] = (RtTensor){"bn.mean", RT_F32, 1, {4}, mean};
    opt[1] = (RtTensor){"step", RT_I64, 0, {0}, &step};
}

/* Every value still the sentinel: a failed load wrote nothing. */
static void check_untouched(void) {
    for (int i = 0; i < 12; i++)
        if (weight[i] != -7.0f)
            abort();
    for (int i = 0; i < 4; i++)
        if (bias[i] != -7.0f || mean[i] != -7.0f)
            abort();
    if (step != -7)
        abort();
}

static void reset(void) {
    for (int i = 0; i < 12; i++)
        weight[i] = -7.0f;
    for (int i = 0; i < 4; i++)
        bias[i] = mean[i] = -7.0f;
    step = -7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.safetensors", data, size);
    RtTensor req[2], opt[2];
    RtErr e = {{0}};
    json_t *meta = NULL;

    reset();
    model(req, opt);
    if (rt_st_load(path, req, 2, opt, 2, &meta, &e) != RT_OK) {
        if (!e.msg[0])
            abort();
        check_untouched();
    }
    json_decref(meta);
    meta = NULL;

    reset();
    model(req, opt);
    RtTensor all[4] = {req[0], req[1], opt[0], opt[1]};
    const char *from[] = {"model."}, *to[] = {""};
    RtStInit init = {.nmap = 1, .from = from, .to = to, .skip = "optimizer.", .meta = &meta};
    if (rt_st_init_from(path, all, 4, &init, &e) == RT_OK)
        rt_st_init_free(&init);
    else
        check_untouched();
    json_decref(meta);
    meta = NULL;

    if (rt_st_read_meta(path, &meta, &e) == RT_OK && !json_is_object(meta))
        abort();
    json_decref(meta);
    return 0;
}
