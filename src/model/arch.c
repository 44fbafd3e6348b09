/* The architecture registry: maps general.architecture to its description.
 * Each description lives in its own arch_<name>.c; adding an architecture is
 * that file plus one line here. Also the global tensor table most decoders
 * share. */
#include "model/model_impl.h"

#include <string.h>

const hl_arch_tensor hl_decoder_global[HL_DECODER_N_GLOBAL] = {
    {"token_embd.weight", offsetof(hl_weights, token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", offsetof(hl_weights, output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", offsetof(hl_weights, output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
};

static const hl_arch *const hl_archs[] = {&hl_arch_llama, &hl_arch_qwen2, &hl_arch_qwen3, &hl_arch_gemma2, &hl_arch_gemma3, &hl_arch_phi3,
                                          &hl_arch_olmo2, &hl_arch_granite, &hl_arch_bert, &hl_arch_nomic_bert,
                                          &hl_arch_qwen2moe, &hl_arch_qwen3moe, &hl_arch_olmoe, &hl_arch_gptoss};

const hl_arch *hl_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof hl_archs / sizeof hl_archs[0]; i++)
        if (strcmp(hl_archs[i]->name, name) == 0) return hl_archs[i];
    return NULL;
}

const char *hl_model_supported_archs(void) { return "llama, qwen2, qwen3, gemma2, gemma3, phi3, olmo2, granite, bert, nomic-bert, qwen2moe, qwen3moe, olmoe, gpt-oss, llama with experts (mixtral)"; }
