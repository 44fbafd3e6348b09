/* Internals of the GGUF module shared by its reader, writer and printer: the
 * in-memory shape of a parsed file (kv records, array index records, tensor
 * table, hash indexes), little-endian loads, and the tensor type lookup. Not
 * part of the module's interface: only src/gguf/ includes this. */
#ifndef HL_GGUF_INTERNAL_H
#define HL_GGUF_INTERNAL_H

#include "base/file.h"
#include "gguf/gguf.h"

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader loads values with memcpy and assumes a little-endian host"
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_NEST 8
#define GGUF_MAX_KEY_LEN 65535u
#define GGUF_MAX_NAME_LEN 1024u
#define GGUF_MAX_COUNT (1u << 24) /* kvs, tensors */
#define GGUF_MAX_ALIGNMENT (1u << 30)

/* One array (top-level value or nested element). Element i of a STRING or
 * ARRAY array starts at data + offs[i]; ARRAY elements have records kids[i]. */
typedef struct gguf_arr_rec {
    gguf_vtype type;
    uint64_t n;
    const uint8_t *data;
    const uint64_t *offs;
    const struct gguf_arr_rec *kids;
    size_t offs_at, kids_at; /* positions in the file's pools while parsing */
} gguf_arr_rec;

struct gguf_kv {
    const char *key; /* NUL-terminated copy in the name pool */
    gguf_vtype type;
    const uint8_t *val;      /* value bytes in the mapping */
    uint64_t val_size;       /* serialized size of the value */
    const gguf_arr_rec *arr; /* type == GGUF_ARRAY */
    size_t key_at, arr_at;   /* pool positions while parsing */
};

struct gguf_file {
    hl_mmap map; /* empty for gguf_open_memory */
    const uint8_t *base;
    size_t size;
    uint32_t version, alignment;
    uint64_t data_offset;
    int64_t n_kv, n_tensors;
    gguf_kv *kvs;
    gguf_tensor *tensors;
    char *names; /* pool of keys and tensor names, each NUL-terminated */
    size_t names_len, names_cap;
    gguf_arr_rec *recs;
    size_t n_recs, recs_cap;
    uint64_t *offs;
    size_t n_offs, offs_cap;
    int32_t *kv_hash, *t_hash; /* open addressing: index + 1, 0 = empty */
    uint32_t kv_mask, t_mask;
};

static inline uint16_t gguf_ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t gguf_ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t gguf_ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Size in bytes of a fixed-size value type; 0 for STRING, ARRAY and unknown. */
static inline size_t gguf_vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static inline int gguf_vtype_known(uint32_t t) { return t <= GGUF_F64; }

/* Reads a scalar integer (or bool) of type t at p as int64; u64 wraps. */
int64_t gguf_load_int(gguf_vtype t, const uint8_t *p);
double gguf_load_float(gguf_vtype t, const uint8_t *p);
int gguf_vtype_is_int(gguf_vtype t);

#endif
