/* GGUF reader and writer.
 *
 * File layout (little-endian), versions 2 and 3:
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 dims[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offset a multiple of alignment
 * string = u64 length + bytes (no NUL). Value types: 0 u8, 1 i8, 2 u16, 3 i16,
 * 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array (u32 elem type, u64 count,
 * elems; arrays may nest), 10 u64, 11 i64, 12 f64.
 *
 * The reader maps the file read-only and validates everything before use:
 * magic, version, counts against file size, string lengths, value types,
 * nesting depth, duplicate keys and tensor names, dims (positive, product
 * without overflow, rows a multiple of the block length), tensor type ids,
 * offsets (aligned, in bounds, non-overlapping). A file that passes can be
 * read without further checks. The gguf_file owns the mapping; every pointer
 * it hands out borrows from it and lives until gguf_close.
 *
 * Opening parses only the header region (metadata and tensor table), never the
 * tensor data, so a multi-GB model opens in milliseconds. Keys and tensor
 * names are hashed; arrays of strings or arrays get an element-offset index at
 * load so element access is O(1). Limits (refused beyond): 16M kvs, 16M
 * tensors, key length 64 KiB, tensor name length 1 KiB, arrays nested 8 deep,
 * general.alignment a nonzero power of two up to 1 GiB. */
#ifndef HL_GGUF_H
#define HL_GGUF_H

#include "base/buf.h"
#include "base/err.h"
#include "quant/quant.h"

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

typedef enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12,
} gguf_vtype;

typedef struct gguf_str {
    const char *ptr; /* not NUL-terminated; borrowed from the mapping */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv gguf_kv;
typedef struct gguf_file gguf_file;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    const char *name;          /* NUL-terminated copy, owned by the gguf_file */
    hl_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (fastest), unused dims = 1 */
    uint64_t offset;           /* relative to the data section */
    uint64_t size;             /* bytes */
    const void *data;          /* points into the mapping */
} gguf_tensor;

/* ---- reading ---- */
int gguf_open(gguf_file **out, const char *path, hl_err *err);
/* Parses an in-memory image (borrowed; must outlive the gguf_file). Used by
 * the fuzzer and tests. */
int gguf_open_memory(gguf_file **out, const void *data, size_t size, hl_err *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);
/* File offset of the tensor data section (tensor offsets are relative to it). */
uint64_t gguf_data_offset(const gguf_file *f);
/* The mapped (or borrowed) file image. */
const void *gguf_file_data(const gguf_file *f);

/* metadata */
int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find(const gguf_file *f, const char *key); /* NULL if absent */
const char *gguf_kv_key(const gguf_kv *kv);                      /* NUL-terminated */
gguf_vtype gguf_kv_type(const gguf_kv *kv);

/* Typed getters: return 0 and set *out when the key exists and its value
 * converts losslessly (any integer type to int64 if in range, so a u32
 * 0xFFFFFFFF "none" id reads as 4294967295; f32/f64, or an integer up to
 * 2^53, to double; bool only to bool); otherwise return HL_ENOENT (absent) or
 * HL_EINVAL (wrong type) and leave *out unchanged, so callers can preset
 * defaults. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *f, const char *key, double *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Arrays: element type and count; elements by index. Nested arrays are
 * reachable through gguf_arr_get_arr. An index out of range or an element
 * accessor that does not fit the element type is a programmer error (assert):
 * check a->type and a->n first. */
typedef struct gguf_arr {
    gguf_vtype type;
    uint64_t n;
    const uint8_t *data; /* start of the first element in the mapping */
    const void *index;   /* internal: offsets of elements for strings/arrays */
} gguf_arr;
int gguf_get_arr(const gguf_file *f, const char *key, gguf_arr *out);
int gguf_kv_arr(const gguf_kv *kv, gguf_arr *out);
gguf_str gguf_arr_str(const gguf_arr *a, uint64_t i);
int64_t gguf_arr_int(const gguf_arr *a, uint64_t i);   /* integer and bool element types */
double gguf_arr_float(const gguf_arr *a, uint64_t i);  /* f32/f64 (and integers) */
int gguf_arr_get_arr(const gguf_arr *a, uint64_t i, gguf_arr *out); /* HL_EINVAL unless type is ARRAY */
/* Scalar value of a kv as int/float/string (for printing): integers and bool
 * via gguf_kv_int (u64 above INT64_MAX wraps; use gguf_kv_u64), floats via
 * gguf_kv_float; 0 / empty for other types. */
int64_t gguf_kv_int(const gguf_kv *kv);
uint64_t gguf_kv_u64(const gguf_kv *kv);
double gguf_kv_float(const gguf_kv *kv);
gguf_str gguf_kv_str(const gguf_kv *kv);
/* Raw serialized bytes of a kv's value (as in the file), for copying. */
const void *gguf_kv_raw(const gguf_kv *kv, uint64_t *size);
const char *gguf_vtype_name(gguf_vtype t); /* "u32", "string", "array" ...; "?" if unknown */

/* tensors */
int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- inspecting ---- */
/* Human-readable listing for `hyperlama inspect`: version, alignment, every
 * kv (arrays summarized by element type, count and first elements; long
 * strings truncated), then the tensor table when show_tensors. Returns 0, or
 * HL_EIO when writing to out failed. */
int gguf_print(FILE *out, const gguf_file *f, int show_tensors);
/* Machine-readable dump (JSON object: version, alignment, data_offset, kv
 * list with types and values, tensors with type, shape, offset, size). Arrays
 * list at most max_elems elements (all when max_elems < 0), plus their
 * count. Returns 0 or HL_ENOMEM. */
int gguf_dump_json(hl_buf *out, const gguf_file *f, int64_t max_elems);

/* ---- writing ---- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void); /* NULL when out of memory */
void gguf_writer_free(gguf_writer *w);
/* Keys are copied; setting an existing key replaces it. Setters never fail:
 * an allocation failure is remembered and reported by gguf_write. */
void gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_set_f32(gguf_writer *w, const char *key, float v);
void gguf_set_bool(gguf_writer *w, const char *key, int v);
void gguf_set_str(gguf_writer *w, const char *key, const char *v);
void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
void gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
void gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
/* Any scalar type (not STRING/ARRAY): v points to the value in host layout
 * (uint8_t for BOOL, 0 or 1). */
void gguf_set_scalar(gguf_writer *w, const char *key, gguf_vtype type, const void *v);
/* Array of fixed-size elements (not STRING/ARRAY), packed little-endian. */
void gguf_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *v, uint64_t n);
/* A value already serialized in GGUF form (nested arrays, copies between
 * files). The bytes must be a well-formed value of that type: the writer
 * does not parse them. */
void gguf_set_raw(gguf_writer *w, const char *key, gguf_vtype type, const void *bytes, size_t n);
/* Copies every kv of f (for requantizing / rewriting files). */
void gguf_set_kv_from(gguf_writer *w, const gguf_file *f);
/* data is copied (or borrowed until write when borrow != 0). ne as in gguf_tensor. */
int gguf_add_tensor(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                    const void *data, size_t size, int borrow, hl_err *err);
/* A tensor whose data is n_parts borrowed pieces of part_size bytes each,
 * written one after another (the experts of a MoE layer stacked along the
 * last dimension without gathering them in memory). */
int gguf_add_tensor_parts(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                          const void *const *parts, size_t part_size, uint32_t n_parts, hl_err *err);
/* A tensor whose data is produced while the file is written, n_chunks
 * chunks of chunk_size bytes, chunk k by fill(ctx, k, dst) into dst (a
 * rearrangement of borrowed data, e.g. a transposed or repacked view of a
 * mapped checkpoint, without the whole tensor in memory). The ctx_size
 * bytes at ctx are copied and owned by the writer; whatever they point to
 * is borrowed until gguf_write. fill cannot fail: check the inputs first. */
typedef void (*gguf_fill_fn)(const void *ctx, uint64_t chunk, void *dst);
int gguf_add_tensor_fill(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                         gguf_fill_fn fill, const void *ctx, size_t ctx_size, size_t chunk_size, uint64_t n_chunks,
                         hl_err *err);
/* Writes version 3 atomically, streaming (temporary file next to path,
 * fsync, rename): tensor data is never gathered in memory. Alignment is
 * general.alignment when set (a u32 power of two), else 32. */
int gguf_write(gguf_writer *w, const char *path, hl_err *err);

#endif
