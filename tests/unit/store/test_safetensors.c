/* The SafeTensors header parser (store/safetensors.h) on in-memory images
 * built here byte by byte from the format's description: F32/F16/BF16
 * tensors found with their shapes, sizes and data pointers; and every
 * malformed image refused with its reason (short file, header length past
 * the end, non-JSON, unsupported dtype, shape x dtype != span, offsets past
 * the data, negative dims, trailing bytes), never read past the image. */
#include "harness.h"

#include "store/safetensors.h"

#include <stdlib.h>
#include <string.h>

/* 8-byte length + header + data_len zero bytes (data byte i = i) */
static uint8_t *image(const char *header, size_t data_len, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    uint8_t *p = malloc(*size);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(p + 8, header, h);
    for (size_t i = 0; i < data_len; i++) p[8 + h + i] = (uint8_t)i;
    return p;
}

static int parse(const char *header, size_t data_len, hl_err *err) {
    size_t n;
    uint8_t *p = image(header, data_len, &n);
    st_set s = {0};
    int rc = st_parse_image(&s, p, n, 0, "t", err);
    st_close(&s);
    free(p);
    return rc;
}

TEST(safetensors_types_and_offsets) {
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                    "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[32,34]}}  ";
    size_t n;
    uint8_t *p = image(h, 34, &n);
    st_set s = {0};
    hl_err err = {0};
    CHECK_EQ(st_parse_image(&s, p, n, 0, "t", &err), 0);
    CHECK_EQ((int)s.n, 3);
    const st_tensor *a = st_find(&s, "a"), *b = st_find(&s, "b"), *c = st_find(&s, "c");
    CHECK(a && b && c);
    CHECK_EQ(a->type, HL_TYPE_F32);
    CHECK_EQ(a->n_dims, 2);
    CHECK_EQ((int)a->shape[1], 3);
    CHECK_EQ((int)a->size, 24);
    CHECK_EQ(b->type, HL_TYPE_BF16);
    CHECK_EQ(b->data[0], 24);
    CHECK_EQ(c->type, HL_TYPE_F16);
    CHECK_EQ((int)c->n_elems, 1);
    CHECK(st_find(&s, "__metadata__") == NULL);
    st_close(&s);
    free(p);
}

/* U8 (MXFP4 blocks and scales): one byte an element, sizes checked as for the others */
TEST(safetensors_u8) {
    const char *h = "{\"u\":{\"dtype\":\"U8\",\"shape\":[3,2],\"data_offsets\":[0,6]}}";
    size_t n;
    uint8_t *p = image(h, 6, &n);
    st_set s = {0};
    hl_err err = {0};
    CHECK_EQ(st_parse_image(&s, p, n, 0, "t", &err), 0);
    const st_tensor *u = st_find(&s, "u");
    CHECK(u && u->type == ST_TYPE_U8 && u->size == 6 && u->n_elems == 6 && u->data[5] == 5);
    CHECK_EQ((int)st_type_size(ST_TYPE_U8), 1);
    st_close(&s);
    free(p);
    CHECK(parse("{\"u\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, &err) != 0);
    CHECK(strstr(err.msg, "shape x dtype is 4 bytes but data_offsets span 8"));
}

/* integer buffers (BERT's position_ids) are listed with their size, not as floats */
TEST(safetensors_integer_buffers) {
    const char *h = "{\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1,3],\"data_offsets\":[0,24]},"
                    "\"n\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]}}";
    size_t n;
    uint8_t *p = image(h, 32, &n);
    st_set s = {0};
    hl_err err = {0};
    CHECK_EQ(st_parse_image(&s, p, n, 0, "t", &err), 0);
    const st_tensor *a = st_find(&s, "position_ids"), *b = st_find(&s, "n");
    CHECK(a && b);
    CHECK(a && a->type == HL_TYPE_I64 && a->size == 24 && !st_is_float(a->type));
    CHECK(b && b->type == HL_TYPE_I32 && b->size == 8 && !st_is_float(b->type));
    CHECK(st_is_float(HL_TYPE_F32) && st_is_float(HL_TYPE_F16) && st_is_float(HL_TYPE_BF16));
    st_close(&s);
    free(p);
    /* the span must match 8 bytes per element */
    CHECK(parse("{\"a\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12, &err) != 0);
    CHECK(strstr(err.msg, "shape x dtype is 24 bytes but data_offsets span 12"));
}

TEST(safetensors_refusals) {
    hl_err err = {0};
    uint8_t short_file[5] = {0};
    st_set s = {0};
    CHECK(st_parse_image(&s, short_file, sizeof short_file, 0, "t", &err) != 0);
    CHECK(strstr(err.msg, "too short"));
    uint8_t big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(st_parse_image(&s, big, sizeof big, 0, "t", &err) != 0);
    CHECK(strstr(err.msg, "does not fit"));
    CHECK(parse("{\"a\":", 0, &err) != 0);
    CHECK(strstr(err.msg, "not valid JSON"));
    CHECK(parse("[1,2]", 0, &err) != 0);
    CHECK(strstr(err.msg, "not a JSON object"));
    CHECK(parse("{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, &err) != 0);
    CHECK(strstr(err.msg, "dtype I8 (supported: F32, F16, BF16, U8)"));
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, &err) != 0);
    CHECK(strstr(err.msg, "12 bytes but data_offsets span 8"));
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8, &err) != 0);
    CHECK(strstr(err.msg, "outside"));
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, &err) != 0);
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, &err) != 0);
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, &err) != 0);
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, &err) != 0);
    CHECK(strstr(err.msg, "data_offsets"));
    CHECK(parse("{} x", 0, &err) != 0);
    CHECK(strstr(err.msg, "trailing"));
}

TEST(safetensors_duplicate_names) {
    hl_err err = {0};
    CHECK(parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\" :{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, &err) != 0);
    CHECK(strstr(err.msg, "duplicate"));
    /* keys inside entries and escaped quotes do not count */
    CHECK_EQ(parse("{\"__metadata__\":{\"k\":\"v\\\":\"},\"a\\\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err), 0);
}
