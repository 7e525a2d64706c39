/* support_fake_model.c: a model written in C in place of the compiler's output, so that the runtime is
   tested alone: softmax regression (logits = x w^T + b) of x f32[N,4] into 3 classes, cross-entropy loss;
   a train graph with SGD fused in, and a grads graph that gives the gradients to the runtime's optimizer. Each graph checks its arena: it is 64-byte aligned and as large as the manifest promises. */
#include "support.h"

#include <assert.h>
#include <math.h>
#include <string.h>

const char lathe_manifest[] =
    "{\"lathe\": \"0.1.0\", \"model\": \"FakeSoftmax\", \"source\": \"fake.lathe\", \"hash\": \"00fa4e0000fa4e00\","
    " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 4]},"
    "              {\"name\": \"label\", \"dtype\": \"i64\", \"shape\": [-1]}],"
    " \"params\": [{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [3, 4],"
    "               \"init\": {\"kind\": \"uniform\", \"a\": -0.5, \"b\": 0.5}, \"trainable\": true},"
    "              {\"name\": \"b\", \"dtype\": \"f32\", \"shape\": [3],"
    "               \"init\": {\"kind\": \"zeros\", \"a\": 0, \"b\": 0}, \"trainable\": true}],"
    " \"graphs\": {"
    "  \"train\": {\"arena\": [128, 16], \"kernels\": 3, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 4]},"
    "    {\"name\": \"label\", \"role\": \"input\", \"dtype\": \"i64\", \"shape\": [-1]},"
    "    {\"name\": \"lr\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"w\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3, 4]},"
    "    {\"name\": \"b\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"logits\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [-1, 3]}]},"
    "  \"grads\": {\"arena\": [128, 16], \"kernels\": 3, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 4]},"
    "    {\"name\": \"label\", \"role\": \"input\", \"dtype\": \"i64\", \"shape\": [-1]},"
    "    {\"name\": \"w\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3, 4]},"
    "    {\"name\": \"b\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"logits\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [-1, 3]},"
    "    {\"name\": \"grad.w\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [3, 4]},"
    "    {\"name\": \"grad.b\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [3]}]},"
    "  \"eval\": {\"arena\": [128, 16], \"kernels\": 2, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 4]},"
    "    {\"name\": \"label\", \"role\": \"input\", \"dtype\": \"i64\", \"shape\": [-1]},"
    "    {\"name\": \"w\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3, 4]},"
    "    {\"name\": \"b\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"logits\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [-1, 3]}]},"
    "  \"predict\": {\"arena\": [128, 16], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 4]},"
    "    {\"name\": \"w\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3, 4]},"
    "    {\"name\": \"b\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [3]},"
    "    {\"name\": \"logits\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [-1, 3]}]}},"
    " \"recipe\": {"
    "  \"data\": {\"call\": \"idx\", \"args\": [\"train-images\", \"train-labels\"],"
    "            \"kwargs\": {\"scale\": 0.00392156862745098}},"
    "  \"test\": {\"call\": \"idx\", \"args\": [\"test-images\", \"test-labels\"],"
    "            \"kwargs\": {\"scale\": 0.00392156862745098}},"
    "  \"classes\": [\"zero\", \"one\", \"two\"],"
    "  \"batch\": 8, \"shuffle\": true, \"epochs\": 3,"
    "  \"loss\": {\"call\": \"cross_entropy\", \"args\": [{\"ident\": \"logits\"}, {\"ident\": \"label\"}],"
    "           \"kwargs\": {}},"
    "  \"optimizer\": {\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.5}},"
    "  \"metrics\": [{\"ident\": \"accuracy\"}]}}";

int64_t fake_calls;

static void touch_arena(uint8_t *arena, int64_t n) {
    assert(((uintptr_t)arena & 63) == 0 && "arena is 64-byte aligned");
    memset(arena, 0xab, (size_t)(128 + 16 * n)); /* AddressSanitizer catches a short arena */
    fake_calls++;
}

static void logits_of(const float *x, const float *w, const float *b, int64_t i, float out[3]) {
    for (int c = 0; c < 3; c++) {
        out[c] = b[c];
        for (int k = 0; k < 4; k++)
            out[c] += x[i * 4 + k] * w[c * 4 + k];
    }
}

/* loss = mean_i (logsumexp(z_i) - z_i[y_i]); dz = (softmax(z) - onehot(y)) / n. The train graph applies
   SGD (w -= lr dw), grads writes dw and db; eval only the loss and the logits. */
typedef enum { G_TRAIN, G_GRADS, G_EVAL } Which;

static void step(void **args, int64_t n, Which which) {
    const float *x = args[0];
    const int64_t *y = args[1];
    int p = which == G_TRAIN ? 3 : 2; /* the train graph takes lr before the parameters */
    float lr = which == G_TRAIN ? *(float *)args[2] : 0;
    float *w = args[p], *b = args[p + 1], *loss = args[p + 2], *logits = args[p + 3];
    float gw[12] = {0}, gb[3] = {0};
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        float *z = logits + i * 3;
        logits_of(x, w, b, i, z);
        float mx = fmaxf(z[0], fmaxf(z[1], z[2]));
        double s = 0;
        for (int c = 0; c < 3; c++)
            s += exp(z[c] - mx);
        total += mx + log(s) - z[y[i]];
        for (int c = 0; c < 3; c++) {
            float d = (float)(exp(z[c] - mx) / s) - (c == y[i]);
            gb[c] += d / (float)n;
            for (int k = 0; k < 4; k++)
                gw[c * 4 + k] += d * x[i * 4 + k] / (float)n;
        }
    }
    *loss = (float)(total / (double)n);
    if (which == G_TRAIN) {
        for (int k = 0; k < 12; k++)
            w[k] -= lr * gw[k];
        for (int c = 0; c < 3; c++)
            b[c] -= lr * gb[c];
    } else if (which == G_GRADS) {
        memcpy(args[p + 4], gw, sizeof gw);
        memcpy(args[p + 5], gb, sizeof gb);
    }
}

void lathe_train(void **args, int64_t n, uint8_t *arena) {
    touch_arena(arena, n);
    step(args, n, G_TRAIN);
}

void lathe_grads(void **args, int64_t n, uint8_t *arena) {
    touch_arena(arena, n);
    step(args, n, G_GRADS);
}

void lathe_eval(void **args, int64_t n, uint8_t *arena) {
    touch_arena(arena, n);
    step(args, n, G_EVAL);
}

void lathe_predict(void **args, int64_t n, uint8_t *arena) {
    touch_arena(arena, n);
    for (int64_t i = 0; i < n; i++)
        logits_of(args[0], args[1], args[2], i, (float *)args[3] + i * 3);
}
