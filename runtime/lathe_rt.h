/* lathe_rt.h: the interface between the code that `lathe compile` generates and the runtime that every
   produced executable links (liblathe_rt.a). The runtime depends on nothing of the compiler.

   The generated object file defines these symbols:

     const char lathe_manifest[];      NUL-terminated JSON describing the model (below)
     void lathe_train(void **args, int64_t n, uint8_t *arena);
     void lathe_grads(void **args, int64_t n, uint8_t *arena);
     void lathe_eval(void **args, int64_t n, uint8_t *arena);
     void lathe_predict(void **args, int64_t n, uint8_t *arena);

   A graph entry runs one step of its graph for a batch of n samples (the symbolic dimension N bound to n).
   args[i] points at the buffer of the i-th entry of the graph's "args" list in the manifest: inputs
   (row-major, the dtype and shape given, N replaced by n), parameters and state (updated in place by the
   train step), then outputs (written by the step). arena points at scratch memory of at least
   arena[0] + arena[1] * n bytes, 64-byte aligned; its contents need not survive between calls.

   The manifest:
     {
       "lathe": "0.1.0",                       compiler version
       "model": "NeuralNetwork",
       "source": "models/fashion_mlp.lathe",
       "hash": "9f2c...",                      64-bit FNV-1a of the printed train graph, hex
       "inputs": [ {"name": "x", "dtype": "f32", "shape": [-1, 1, 28, 28]},
                   {"name": "label", "dtype": "i64", "shape": [-1]} ],      -1 is N
       "params": [ {"name": "linear_relu_stack.0.weight", "dtype": "f32", "shape": [512, 784],
                    "init": {"kind": "uniform", "a": -0.0357, "b": 0.0357}, "trainable": true},
                   {"name": "bn.num_batches_tracked", "dtype": "i64", "shape": [],
                    "init": {"kind": "zeros", "a": 0, "b": 0}, "trainable": false, "buffer": true} ],
                   init kinds: zeros, ones, const (a), uniform [a, b), normal (mean a, std b); any dtype;
                   a buffer (BatchNorm's running stats) is initialised, saved and loaded as a parameter, and
                   only the train graph's update outputs change it
       "graphs": {                             "train" only where the optimizer is fused into the step (SGD)
         "train":   {"arena": [c, per_n], "kernels": 12,
                     "args": [ {"name": "x", "role": "input", "dtype": "f32", "shape": [-1, 1, 28, 28]},
                               {"name": "label", "role": "input", ...},
                               {"name": "lr", "role": "input", "dtype": "f32", "shape": []},
                               {"name": "linear_relu_stack.0.weight", "role": "param", ...},
                               {"name": "loss", "role": "output", "dtype": "f32", "shape": []},
                               {"name": "logits", "role": "output", "dtype": "f32", "shape": [-1, 10]} ]},
         "grads":   {... args: batch inputs, params; outputs "loss", "logits", the gradients "grad.NAME" of
                     the trained parameters (applied by the runtime's optimizer, runtime/optim.h) and the
                     buffers' new values},
         "eval":    {... args: batch inputs, params; outputs "loss" (mean over the batch) and "logits"},
         every graph also lists "checks": [{"node": "%42", "op": "matmul", "name": "grad.fc1.weight",
                     "loc": "fashion_mlp.lathe:9:9"}, ...], the float kernel outputs that --detect-anomaly
                     checks, in the order of the ids lathe_check_finite gets ("name" only for an output or an
                     update),
         and "kernel_list": [{"node": 28, "name": "k0 conv2d+add+relu", "lines": ["fashion_cnn.lathe:10",
                     "fashion_cnn.lathe:11"], "share": [0.9, 0.1], "flops": [c0, c1, c2], "bytes": [...]}, ...]:
                     the kernels in call order (node: the root node's id that lathe_profile_kernel gets; share:
                     each line's part of the kernel's FLOPs; flops and bytes per call: c0 + c1 n + c2 n^2),
                     which --profile reads (runtime/profile.h),
         "predict": {... args: "x", params; output "logits"}
       },
       "recipe": { the train block, each value as JSON: numbers, strings, booleans, lists; an identifier as
                   {"ident": "accuracy"}; a call as {"call": "SGD", "args": [...], "kwargs": {"lr": 0.001}} }
     }
   Roles: "input", "param", "state", "output". Inputs bound by name: the batch inputs ("x", and "label" of
   any shape with N first), "lr" (f32[]), "step" (i64[], the train steps done before this call), "seed"
   (i64[], the run's --seed), and any other scalar from the recipe's numbers or the optimizer's arguments.
   State (SGD's "optimizer.NAME.momentum_buffer") starts at zero and is saved in checkpoints. */
#ifndef LATHE_RT_H
#define LATHE_RT_H

#include <stdint.h>

typedef void (*LatheGraphFn)(void **args, int64_t n, uint8_t *arena);

extern const char lathe_manifest[];
void lathe_train(void **args, int64_t n, uint8_t *arena);
void lathe_grads(void **args, int64_t n, uint8_t *arena);
void lathe_eval(void **args, int64_t n, uint8_t *arena);
void lathe_predict(void **args, int64_t n, uint8_t *arena);

/* The driver: `train`, `eval`, `predict`, `info`. The runtime's main() calls it. */
int rt_main(int argc, char **argv);

#endif
