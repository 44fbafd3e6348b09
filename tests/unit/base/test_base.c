/* Tests for src/base: buffers, JSON writer, UTF-8, half-precision conversion. */
#include "harness.h"

#include "base/buf.h"
#include "base/half.h"
#include "base/json_write.h"
#include "base/memfit.h"
#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

TEST(buf_grows_and_formats) {
    hl_buf b = {0};
    for (int i = 0; i < 1000; i++) hl_buf_printf(&b, "%d,", i);
    CHECK(b.len > 3000);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK_EQ(b.data[b.len], 0);
    char *s = hl_buf_take(&b);
    CHECK(b.data == NULL);
    free(s);
}

TEST(json_writer_escapes_and_nests) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "s"); hl_jw_str(&w, "a\"b\\c\n\x01 \xc3\xa9 \xff");
    hl_jw_key(&w, "a"); hl_jw_arr_begin(&w); hl_jw_int(&w, -3); hl_jw_double(&w, 0.5); hl_jw_bool(&w, 1); hl_jw_null(&w); hl_jw_arr_end(&w);
    hl_jw_key(&w, "o"); hl_jw_obj_begin(&w); hl_jw_obj_end(&w);
    hl_jw_obj_end(&w);
    CHECK_STREQ(b.data, "{\"s\":\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9 \xef\xbf\xbd\",\"a\":[-3,0.5,true,null],\"o\":{}}");
    hl_buf_free(&b);
}

TEST(utf8_decode_and_complete_prefix) {
    uint32_t cp;
    CHECK_EQ(hl_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    CHECK_EQ(cp, 0x20AC);
    CHECK_EQ(hl_utf8_decode("\xc0\x80", 2, &cp), 0);        /* overlong */
    CHECK_EQ(hl_utf8_decode("\xed\xa0\x80", 3, &cp), 0);    /* surrogate */
    CHECK_EQ(hl_utf8_complete_len("ab\xe2\x82", 4), 2);     /* keeps back a partial euro sign */
    CHECK_EQ(hl_utf8_complete_len("ab\xe2\x82\xac", 5), 5);
    CHECK_EQ(hl_utf8_complete_len("ab\xff", 3), 3);         /* invalid byte is not held back */
    char out[4];
    CHECK_EQ(hl_utf8_encode(0x1F600, out), 4);
    CHECK(memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
}

/* f16 conversion checked against the hardware-independent definition: every
 * f16 bit pattern round-trips, and f32 -> f16 rounds to nearest even. */
TEST(half_roundtrip_all_values) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hl_f16_to_f32((hl_f16)h);
        if (f != f) continue; /* nan */
        if (hl_f32_to_f16(f) != h) bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(hl_f32_to_f16(1.0f), 0x3C00);
    CHECK_EQ(hl_f32_to_f16(65504.0f), 0x7BFF);
    CHECK_EQ(hl_f32_to_f16(65520.0f), 0x7C00);
    CHECK_EQ(hl_f32_to_f16(1.0f + 1.0f / 2048), 0x3C00); /* tie to even */
    CHECK_EQ(hl_f32_to_f16(1.0f + 3.0f / 2048), 0x3C02);
    CHECK_EQ(hl_f32_to_f16(5.9604645e-08f), 0x0001);     /* smallest subnormal */
    CHECK_NEAR(hl_bf16_to_f32(hl_f32_to_bf16(3.14159f)), 3.140625, 1e-9);
}

/* The shared does-not-fit wording: parts that are zero are left out, the KV
 * part names its context, the note and what to try follow the numbers. */
TEST(memfit_wording) {
    char b[32], t[320];
    hl_mem_bytes(1000, b, sizeof b);
    CHECK(!strcmp(b, "1000 B"));
    hl_mem_bytes(3ll << 30, b, sizeof b);
    CHECK(!strcmp(b, "3.0 GiB"));
    hl_mem_need n = {.weights = 2ll << 30, .kv = 512ll << 20, .overhead = 64ll << 20, .ctx = 4096};
    n.need = n.weights + n.kv + n.overhead;
    hl_mem_need_text(&n, t, sizeof t);
    CHECK(!strcmp(t, "2.6 GiB (2.0 GiB of weights + 512.0 MiB of KV cache for a 4096-token context + 64.0 MiB of buffers)"));
    hl_mem_need w = {.weights = 1ll << 30, .need = 1ll << 30, .avail = 512ll << 20};
    hl_err err = {0};
    CHECK_EQ(hl_mem_refuse(&err, "GPU memory on X", &w, "note", "a smaller model"), HL_ENOMEM);
    CHECK(!strcmp(err.msg, "model requires more GPU memory on X (1.0 GiB (1.0 GiB of weights)) than is available "
                           "(512.0 MiB, note). Try a smaller model"));
}
