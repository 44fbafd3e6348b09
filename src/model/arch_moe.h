/* The routed-experts tensors every MoE architecture binds per layer (the
 * router and the three 3-D expert tensors, one slice per expert), and the
 * optional shared expert with its sigmoid gate (qwen2moe): rows to splice
 * into an arch_<name>.c layer table. Only model/arch_*.c include this. */
#ifndef HL_MODEL_ARCH_MOE_H
#define HL_MODEL_ARCH_MOE_H

#include "model/model_impl.h"

#define HL_MOE_L(f) offsetof(hl_layer_weights, f)
#define HL_MOE_EXPERT_TENSORS                                                                                     \
    {"blk.%d.ffn_gate_inp.weight", HL_MOE_L(ffn_gate_inp), HL_DIM_EMBD, HL_DIM_EXPERT, HL_TK_MATMUL, 0, {{0}}, 0},  \
    {"blk.%d.ffn_gate_exps.weight", HL_MOE_L(ffn_gate_exps), HL_DIM_EMBD, HL_DIM_FF_EXP, HL_TK_MATMUL, 0, {{0}},   \
     HL_DIM_EXPERT},                                                                                               \
    {"blk.%d.ffn_up_exps.weight", HL_MOE_L(ffn_up_exps), HL_DIM_EMBD, HL_DIM_FF_EXP, HL_TK_MATMUL, 0, {{0}},       \
     HL_DIM_EXPERT},                                                                                               \
    {"blk.%d.ffn_down_exps.weight", HL_MOE_L(ffn_down_exps), HL_DIM_FF_EXP, HL_DIM_EMBD, HL_TK_MATMUL, 0, {{0}},   \
     HL_DIM_EXPERT}
#define HL_MOE_SHARED_TENSORS                                                                                     \
    {"blk.%d.ffn_gate_inp_shexp.weight", HL_MOE_L(ffn_gate_inp_shexp), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC,         \
     HL_TF_OPTIONAL, {{0}}, 0},                                                                                    \
    {"blk.%d.ffn_gate_shexp.weight", HL_MOE_L(ffn_gate_shexp), HL_DIM_EMBD, HL_DIM_FF_SHEXP, HL_TK_MATMUL, 0,       \
     {{0}}, 0},                                                                                                    \
    {"blk.%d.ffn_up_shexp.weight", HL_MOE_L(ffn_up_shexp), HL_DIM_EMBD, HL_DIM_FF_SHEXP, HL_TK_MATMUL, 0, {{0}}, 0}, \
    {"blk.%d.ffn_down_shexp.weight", HL_MOE_L(ffn_down_shexp), HL_DIM_FF_SHEXP, HL_DIM_EMBD, HL_TK_MATMUL, 0,       \
     {{0}}, 0}

#endif
