/* Reader for Hugging Face SafeTensors files and checkpoint directories.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON (an object
 * mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of strings), then the data section;
 * offsets are relative to the data section. A directory holds either one
 * model.safetensors or shards named by model.safetensors.index.json
 * ("weight_map": tensor name -> file name).
 *
 * Everything is checked before a tensor is handed out: the header length
 * fits the file, the JSON is an object of well-formed entries, the dtype is
 * F32/F16/BF16, U8, or I64/I32 (integer buffers such as BERT's position_ids,
 * which a converter drops or refuses; others are refused by name), dims are non-negative with a
 * product that does not overflow, end - begin == elements x element size,
 * the range lies inside the data section, names are unique across shards,
 * and a sharded directory's tensors are exactly where its index says.
 * U8 tensors (raw bytes: the MXFP4 blocks and scales of gpt-oss's experts)
 * are read as ST_TYPE_U8; only the converter's MXFP4 path takes them.
 * Files are mapped read-only; tensors borrow from the mappings. */
#ifndef HL_STORE_SAFETENSORS_H
#define HL_STORE_SAFETENSORS_H

#include "base/err.h"
#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
/* "U8": raw bytes, carried in hl_type's 1-byte integer slot */
#define ST_TYPE_U8 HL_TYPE_I8

typedef struct st_tensor {
    char *name;
    hl_type type; /* HL_TYPE_F32, HL_TYPE_F16, HL_TYPE_BF16 or ST_TYPE_U8; HL_TYPE_I64 / I32 for integer buffers */
    int n_dims;
    int64_t shape[ST_MAX_DIMS]; /* row-major: shape[n_dims-1] is the fastest */
    int64_t n_elems;
    const uint8_t *data;
    size_t size;
    int file; /* index into st_set's files */
} st_tensor;

typedef struct st_set {
    st_tensor *t;
    size_t n, cap;
    struct st_map *files;
    int n_files;
} st_set;

/* Parses one file image (borrowed; must outlive the set's use of it) and
 * appends its tensors, tagged with file index `file`. `label` names the file
 * in errors. Used by st_open_dir and by the fuzz target. */
int st_parse_image(st_set *s, const void *data, size_t size, int file, const char *label, hl_err *err);
/* Opens dir/model.safetensors.index.json (shards) or dir/model.safetensors. */
int st_open_dir(st_set *s, const char *dir, hl_err *err);
const st_tensor *st_find(const st_set *s, const char *name);
void st_close(st_set *s);
size_t st_type_size(hl_type t);
int st_is_float(hl_type t); /* F32, F16, BF16: what a converter may read as weights */

#endif
