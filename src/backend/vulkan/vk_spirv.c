/* Storage-buffer bindings a SPIR-V module may write (vk_spirv.h). */
#include "backend/vulkan/vk_spirv.h"

#include <stdlib.h>

enum {
    SPV_MAGIC = 0x07230203,
    OP_TYPE_STRUCT = 30,
    OP_TYPE_POINTER = 32,
    OP_VARIABLE = 59,
    OP_DECORATE = 71,
    OP_MEMBER_DECORATE = 72,
    DEC_NON_WRITABLE = 24,
    DEC_BINDING = 33,
    DEC_DESCRIPTOR_SET = 34,
};

/* what the walk learns about one result id */
typedef struct spv_id {
    int32_t binding;     /* Binding decoration (variables), -1 if none */
    uint32_t set;        /* DescriptorSet decoration */
    uint8_t nonwritable; /* NonWritable on the id itself */
    uint32_t members;    /* OpTypeStruct: member count */
    uint32_t ro_members; /* members decorated NonWritable (each counted once, < 64 tracked by mask) */
    uint64_t ro_mask;
    uint32_t pointee;    /* OpTypePointer: the type pointed to; OpVariable: its pointer type */
    uint8_t is_var;
} spv_id;

uint32_t hl_vk_spirv_written_bindings(const uint32_t *code, size_t words) {
    const uint32_t all = 0xffffffffu;
    if (!code || words < 5 || code[0] != SPV_MAGIC) return all;
    const uint32_t bound = code[3];
    if (bound == 0 || bound > (1u << 22)) return all;
    spv_id *ids = calloc(bound, sizeof *ids);
    if (!ids) return all;
    for (uint32_t i = 0; i < bound; i++) ids[i].binding = -1;
    uint32_t out = 0;
    int bad = 0;
    for (size_t at = 5; at < words;) {
        const uint32_t wc = code[at] >> 16, op = code[at] & 0xffffu;
        if (wc == 0 || at + wc > words) {
            bad = 1;
            break;
        }
        const uint32_t *w = &code[at];
        if (op == OP_DECORATE && wc >= 3 && w[1] < bound) {
            spv_id *t = &ids[w[1]];
            if (w[2] == DEC_BINDING && wc >= 4) t->binding = (int32_t)w[3];
            else if (w[2] == DEC_DESCRIPTOR_SET && wc >= 4) t->set = w[3];
            else if (w[2] == DEC_NON_WRITABLE) t->nonwritable = 1;
        } else if (op == OP_MEMBER_DECORATE && wc >= 4 && w[1] < bound && w[3] == DEC_NON_WRITABLE) {
            spv_id *t = &ids[w[1]];
            if (w[2] < 64 && !(t->ro_mask & (1ull << w[2]))) t->ro_mask |= 1ull << w[2], t->ro_members++;
        } else if (op == OP_TYPE_STRUCT && wc >= 2 && w[1] < bound) {
            ids[w[1]].members = wc - 2;
        } else if (op == OP_TYPE_POINTER && wc >= 4 && w[1] < bound) {
            ids[w[1]].pointee = w[3];
        } else if (op == OP_VARIABLE && wc >= 4 && w[2] < bound) {
            ids[w[2]].is_var = 1, ids[w[2]].pointee = w[1];
        }
        at += wc;
    }
    for (uint32_t i = 0; !bad && i < bound; i++) {
        const spv_id *v = &ids[i];
        if (!v->is_var || v->binding < 0 || v->set != 0) continue;
        if (v->binding >= 32) {
            bad = 1;
            break;
        }
        const spv_id *ptr = v->pointee < bound ? &ids[v->pointee] : NULL;
        const spv_id *blk = ptr && ptr->pointee < bound ? &ids[ptr->pointee] : NULL;
        const int readonly = v->nonwritable || (blk && (blk->nonwritable || (blk->members && blk->ro_members == blk->members)));
        if (!readonly) out |= 1u << v->binding;
    }
    free(ids);
    return bad ? all : out;
}
