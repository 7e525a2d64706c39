/* interp_window.h: the reference interpreter's window ops (convolution and pooling, forward and backward),
   in double precision, written for clarity (direct loops, no im2col): interp.c calls it for every op of the
   CONV2D and *POOL2D* families. Shapes are concrete (N already bound). */
#ifndef LATHE_INTERP_WINDOW_H
#define LATHE_INTERP_WINDOW_H

#include "ir.h"

/* out has out_shape's element count; in[i] has in_shape[i]'s, for the nd->ninputs inputs. */
void ir_interp_window(const Node *nd, const Shape *out_shape, double *out, const Shape *in_shape,
                      const double *const *in);

#endif
