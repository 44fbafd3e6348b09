/* The reference backend: the plan run one op at a time by plain scalar code
 * on one thread -- matrix products through the scalar oracle kernels of
 * backend/cpu (the integer sums the formats define), everything else in
 * straightforward loops. Slow and simple on purpose: it is what the CPU
 * backend's fused SIMD path and every future GPU backend are compared with,
 * op by op (tests/unit/backend/ref/test_ops.c) and over whole models
 * (tests/unit/model/test_backends.c). */
#ifndef HL_BACKEND_REF_H
#define HL_BACKEND_REF_H

#include "backend/backend.h"

int hl_backend_ref_new(hl_backend **out, hl_err *err);

#endif
