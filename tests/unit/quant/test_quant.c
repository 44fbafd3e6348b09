/* Tests of the quant module against gguf-py: fixture files made by
 * scripts/gen_quant_fixtures.py (directory $HL_QUANT_FIXTURES, default
 * tests/data/quant) hold random blocks with gguf-py's dequantization, and
 * random floats with gguf-py's quantization; both must match bit for bit.
 * Quantizers gguf-py lacks (Q8_1, Q8_K, the K-quants) are held to round-trip
 * error bounds and to beating a naive min/max quantizer written here. */
#include "quant/quant.h"

#include "harness.h"

#include <stdlib.h>

static const char *fixture_dir(void) {
    const char *d = getenv("HL_QUANT_FIXTURES");
    return d && *d ? d : "tests/data/quant";
}

/* Reads a whole fixture file (caller frees); NULL and a failure if missing. */
static unsigned char *read_fixture(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        hl_test_fail(__FILE__, __LINE__, "missing fixture %s (run scripts/gen_quant_fixtures.py)", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    size_t got = p ? fread(p, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!p || got != (size_t)n) {
        free(p);
        hl_test_fail(__FILE__, __LINE__, "cannot read %s", path);
        return NULL;
    }
    *len = (size_t)n;
    return p;
}

/* ---- traits ---------------------------------------------------------------- */

TEST(traits_sizes) {
    /* block sizes as the GGML format defines them */
    static const struct { int type; const char *name; uint32_t blck, size; } k[] = {
        {HL_TYPE_F32, "F32", 1, 4},      {HL_TYPE_F16, "F16", 1, 2},       {HL_TYPE_Q4_0, "Q4_0", 32, 18},
        {HL_TYPE_Q4_1, "Q4_1", 32, 20},  {HL_TYPE_Q5_0, "Q5_0", 32, 22},   {HL_TYPE_Q5_1, "Q5_1", 32, 24},
        {HL_TYPE_Q8_0, "Q8_0", 32, 34},  {HL_TYPE_Q8_1, "Q8_1", 32, 36},   {HL_TYPE_Q2_K, "Q2_K", 256, 84},
        {HL_TYPE_Q3_K, "Q3_K", 256, 110}, {HL_TYPE_Q4_K, "Q4_K", 256, 144}, {HL_TYPE_Q5_K, "Q5_K", 256, 176},
        {HL_TYPE_Q6_K, "Q6_K", 256, 210}, {HL_TYPE_Q8_K, "Q8_K", 256, 292}, {HL_TYPE_I8, "I8", 1, 1},
        {HL_TYPE_I16, "I16", 1, 2},      {HL_TYPE_I32, "I32", 1, 4},       {HL_TYPE_I64, "I64", 1, 8},
        {HL_TYPE_F64, "F64", 1, 8},      {HL_TYPE_BF16, "BF16", 1, 2},     {23, "IQ4_XS", 256, 136},
        {20, "IQ4_NL", 32, 18},          {39, "MXFP4", 32, 17},            {16, "IQ2_XXS", 256, 66},
        {17, "IQ2_XS", 256, 74},         {22, "IQ2_S", 256, 82},           {18, "IQ3_XXS", 256, 98},
        {21, "IQ3_S", 256, 110},         {19, "IQ1_S", 256, 50},           {29, "IQ1_M", 256, 56},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const hl_type_traits *t = hl_type_get(k[i].type);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK_STREQ(t->name, k[i].name);
        CHECK_EQ(t->blck, k[i].blck);
        CHECK_EQ(t->size, k[i].size);
        CHECK_STREQ(hl_type_name(k[i].type), k[i].name);
        CHECK_EQ(hl_type_from_name(k[i].name), k[i].type);
    }
    CHECK(hl_type_get(4) == NULL); /* removed Q4_2 */
    CHECK(hl_type_get(-1) == NULL);
    CHECK(hl_type_get(HL_TYPE_COUNT) == NULL);
    CHECK(hl_type_get(1000) == NULL);
    CHECK_STREQ(hl_type_name(5), "unknown");
    CHECK(hl_type_get(23)->supported);  /* IQ4_XS */
    CHECK(hl_type_get(23)->quantizable);
    CHECK(!hl_type_get(HL_TYPE_IQ2_XXS)->quantizable);
    CHECK(!hl_type_get(34)->supported); /* TQ1_0 */
}

TEST(type_from_name_case) {
    CHECK_EQ(hl_type_from_name("q4_K"), HL_TYPE_Q4_K);
    CHECK_EQ(hl_type_from_name("q4_k"), HL_TYPE_Q4_K);
    CHECK_EQ(hl_type_from_name("Q8_0"), HL_TYPE_Q8_0);
    CHECK_EQ(hl_type_from_name("f16"), HL_TYPE_F16);
    CHECK_EQ(hl_type_from_name("bf16"), HL_TYPE_BF16);
    CHECK_EQ(hl_type_from_name("q4_k_m"), -1);
    CHECK_EQ(hl_type_from_name("Q4"), -1);
    CHECK_EQ(hl_type_from_name(""), -1);
    CHECK_EQ(hl_type_from_name(NULL), -1);
}

TEST(row_size) {
    CHECK_EQ(hl_row_size(HL_TYPE_F32, 10), 40);
    CHECK_EQ(hl_row_size(HL_TYPE_Q4_0, 64), 36);
    CHECK_EQ(hl_row_size(HL_TYPE_Q4_0, 172), 0); /* not a multiple of 32 */
    CHECK_EQ(hl_row_size(HL_TYPE_Q4_K, 4096), 16 * 144);
    CHECK_EQ(hl_row_size(HL_TYPE_Q6_K, 128), 0);
    CHECK_EQ(hl_row_size(HL_TYPE_F16, -2), 0);
    CHECK_EQ(hl_row_size((hl_type)4, 32), 0);
    CHECK_EQ(hl_row_size(HL_TYPE_F64, INT64_MAX), 0); /* would overflow */
    CHECK_EQ(hl_row_size(HL_TYPE_F32, 0), 0);
}

/* ---- dequantization vs gguf-py ------------------------------------------------ */

static void check_dequant(hl_type type) {
    char name[64];
    size_t nraw = 0, nexp = 0;
    snprintf(name, sizeof name, "%s.bin", hl_type_name(type));
    unsigned char *raw = read_fixture(name, &nraw);
    snprintf(name, sizeof name, "%s.f32", hl_type_name(type));
    unsigned char *exp = read_fixture(name, &nexp);
    if (raw && exp) {
        const hl_type_traits *t = hl_type_get(type);
        const int64_t n = (int64_t)(nraw / t->size) * t->blck;
        CHECK_EQ(nraw % t->size, 0);
        CHECK_EQ(nexp, (size_t)n * sizeof(float));
        /* an aligned copy: the block structs need 2- or 4-byte alignment */
        void *src = aligned_alloc(64, (nraw + 63) / 64 * 64);
        float *out = malloc(nexp ? nexp : 1);
        memcpy(src, raw, nraw);
        CHECK_EQ(hl_dequantize(type, src, out, n), 0);
        if (nexp == (size_t)n * sizeof(float) && memcmp(out, exp, nexp) != 0) {
            const float *e = (const float *)(const void *)exp;
            int64_t bad = 0, first = -1;
            for (int64_t i = 0; i < n; i++) {
                if (memcmp(&out[i], &e[i], 4) != 0) {
                    if (first < 0) first = i;
                    bad++;
                }
            }
            hl_test_fail(__FILE__, __LINE__, "%s: %lld of %lld values differ from gguf-py; first at %lld: %.9g vs %.9g",
                         hl_type_name(type), (long long)bad, (long long)n, (long long)first, out[first], e[first]);
        }
        free(src);
        free(out);
    }
    free(raw);
    free(exp);
}

TEST(dequant_f16) { check_dequant(HL_TYPE_F16); }
TEST(dequant_bf16) { check_dequant(HL_TYPE_BF16); }
TEST(dequant_q4_0) { check_dequant(HL_TYPE_Q4_0); }
TEST(dequant_q4_1) { check_dequant(HL_TYPE_Q4_1); }
TEST(dequant_q5_0) { check_dequant(HL_TYPE_Q5_0); }
TEST(dequant_q5_1) { check_dequant(HL_TYPE_Q5_1); }
TEST(dequant_q8_0) { check_dequant(HL_TYPE_Q8_0); }
TEST(dequant_q8_1) { check_dequant(HL_TYPE_Q8_1); }
TEST(dequant_q2_K) { check_dequant(HL_TYPE_Q2_K); }
TEST(dequant_q3_K) { check_dequant(HL_TYPE_Q3_K); }
TEST(dequant_q4_K) { check_dequant(HL_TYPE_Q4_K); }
TEST(dequant_q5_K) { check_dequant(HL_TYPE_Q5_K); }
TEST(dequant_q6_K) { check_dequant(HL_TYPE_Q6_K); }
TEST(dequant_q8_K) { check_dequant(HL_TYPE_Q8_K); }
TEST(dequant_iq4_nl) { check_dequant(HL_TYPE_IQ4_NL); }
TEST(dequant_iq4_xs) { check_dequant(HL_TYPE_IQ4_XS); }
TEST(dequant_mxfp4) { check_dequant(HL_TYPE_MXFP4); }
TEST(dequant_iq2_xxs) { check_dequant(HL_TYPE_IQ2_XXS); }
TEST(dequant_iq2_xs) { check_dequant(HL_TYPE_IQ2_XS); }
TEST(dequant_iq2_s) { check_dequant(HL_TYPE_IQ2_S); }
TEST(dequant_iq3_xxs) { check_dequant(HL_TYPE_IQ3_XXS); }
TEST(dequant_iq3_s) { check_dequant(HL_TYPE_IQ3_S); }
TEST(dequant_iq1_s) { check_dequant(HL_TYPE_IQ1_S); }
TEST(dequant_iq1_m) { check_dequant(HL_TYPE_IQ1_M); }

TEST(dequant_plain_and_errors) {
    float out[4];
    const double f64[2] = {1.5, -2.25};
    CHECK_EQ(hl_dequantize(HL_TYPE_F64, f64, out, 2), 0);
    CHECK(out[0] == 1.5f && out[1] == -2.25f);
    const int8_t i8[2] = {-128, 127};
    CHECK_EQ(hl_dequantize(HL_TYPE_I8, i8, out, 2), 0);
    CHECK(out[0] == -128.0f && out[1] == 127.0f);
    const int32_t i32[1] = {-7};
    CHECK_EQ(hl_dequantize(HL_TYPE_I32, i32, out, 1), 0);
    CHECK(out[0] == -7.0f);
    hl_block_q4_0 b = {0};
    CHECK(hl_dequantize(HL_TYPE_Q4_0, &b, out, 16) < 0); /* not a whole block */
    CHECK(hl_dequantize((hl_type)34, &b, out, 256) < 0);  /* TQ1_0: no converter */
    CHECK(hl_dequantize((hl_type)4, &b, out, 32) < 0);
}

/* ---- quantization vs gguf-py ------------------------------------------------------ */

static void check_quant(hl_type type) {
    char name[64];
    size_t nin = 0, nexp = 0;
    snprintf(name, sizeof name, "%s.qin.f32", hl_type_name(type));
    unsigned char *in = read_fixture(name, &nin);
    snprintf(name, sizeof name, "%s.qout.bin", hl_type_name(type));
    unsigned char *exp = read_fixture(name, &nexp);
    if (in && exp) {
        const hl_type_traits *t = hl_type_get(type);
        const int64_t n = (int64_t)(nin / sizeof(float));
        float *x = malloc(nin);
        memcpy(x, in, nin);
        const size_t want = hl_row_size(type, n);
        CHECK_EQ(nexp, want);
        unsigned char *out = aligned_alloc(64, (want + 63) / 64 * 64);
        CHECK_EQ(hl_quantize(type, x, out, n), want);
        if (nexp == want && memcmp(out, exp, want) != 0) {
            size_t first = 0, bad = 0;
            for (size_t i = 0; i < want; i += t->size) {
                if (memcmp(out + i, exp + i, t->size) != 0) {
                    if (!bad) first = i / t->size;
                    bad++;
                }
            }
            hl_test_fail(__FILE__, __LINE__, "%s: %zu of %zu blocks differ from gguf-py, first block %zu",
                         hl_type_name(type), bad, want / t->size, first);
        }
        free(x);
        free(out);
    }
    free(in);
    free(exp);
}

TEST(quant_f16) { check_quant(HL_TYPE_F16); }
TEST(quant_bf16) { check_quant(HL_TYPE_BF16); }
TEST(quant_q4_0) { check_quant(HL_TYPE_Q4_0); }
TEST(quant_q4_1) { check_quant(HL_TYPE_Q4_1); }
TEST(quant_q5_0) { check_quant(HL_TYPE_Q5_0); }
TEST(quant_q5_1) { check_quant(HL_TYPE_Q5_1); }
TEST(quant_q8_0) { check_quant(HL_TYPE_Q8_0); }
