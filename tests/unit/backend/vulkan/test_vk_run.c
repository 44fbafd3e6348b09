/* A run's barriers and its kept recording (vk_compute.c), on the device
 * (lavapipe in CI).
 *
 * 1. What the SPIR-V reader (vk_spirv.h) says each kernel writes equals what
 *    its GLSL declares: gather and attention write binding 4 only, the
 *    quantizer bindings 1 and 2, elementwise (y += ...) binding 4; a module
 *    that is not SPIR-V gets every binding, the safe answer.
 * 2. Barriers where data depends, and only there: with the gather kernel
 *    (y[r] = x[idx[r]]), A: x -> y1 and B: x -> y2 share only what they read
 *    (no barrier between them); C: y1 -> z reads what A wrote (barrier); D:
 *    x -> y1 writes what C read (barrier); E: x -> y3 at another offset of
 *    z's buffer than C wrote (no barrier). The results are checked against
 *    the gathers done on the host, so a missing barrier shows as a wrong
 *    value, not only as a count.
 * 3. The kept recording: the same list run again is resubmitted without
 *    recording, and reads what the host wrote into its buffers since (new
 *    indices give the new gathers); a buffer freed in between makes the
 *    next run record again. */
#include "vk_harness.h"

#include "backend/vulkan/vk_compute.h"
#include "backend/vulkan/vk_spirv.h"

#include <stdlib.h>
#include <string.h>

extern const uint32_t hl_vk_spv_gather[], hl_vk_spv_gather_words;
extern const uint32_t hl_vk_spv_attn_f16[], hl_vk_spv_attn_f16_words;
extern const uint32_t hl_vk_spv_attn_combine[], hl_vk_spv_attn_combine_words;
extern const uint32_t hl_vk_spv_quant_q8_0[], hl_vk_spv_quant_q8_0_words;
extern const uint32_t hl_vk_spv_elementwise[], hl_vk_spv_elementwise_words;

TEST(vk_spirv_reader_finds_the_written_bindings) {
    CHECK_EQ(hl_vk_spirv_written_bindings(hl_vk_spv_gather, hl_vk_spv_gather_words), 1u << 4);
    /* attn.comp: the output and aux (its split items' partials); the combine pass: the output */
    CHECK_EQ(hl_vk_spirv_written_bindings(hl_vk_spv_attn_f16, hl_vk_spv_attn_f16_words), (1u << 4) | (1u << 5));
    CHECK_EQ(hl_vk_spirv_written_bindings(hl_vk_spv_attn_combine, hl_vk_spv_attn_combine_words), 1u << 4);
    CHECK_EQ(hl_vk_spirv_written_bindings(hl_vk_spv_quant_q8_0, hl_vk_spv_quant_q8_0_words), (1u << 1) | (1u << 2));
    CHECK_EQ(hl_vk_spirv_written_bindings(hl_vk_spv_elementwise, hl_vk_spv_elementwise_words), 1u << 4);
    const uint32_t junk[8] = {0x12345678, 1, 2, 3, 4, 5, 6, 7};
    CHECK_EQ(hl_vk_spirv_written_bindings(junk, 8), 0xffffffffu);
    uint32_t cut[6];
    memcpy(cut, hl_vk_spv_gather, 5 * 4);
    cut[5] = (10u << 16) | 71u; /* an OpDecorate of 10 words with 1 left */
    CHECK_EQ(hl_vk_spirv_written_bindings(cut, 6), 0xffffffffu);
}

typedef struct gather_push {
    uint32_t n, rows, ldx, ldy;
} gather_push;

enum { N = 64, ROWS = 4 };

/* y (at byte offset yoff) = rows of x picked by idx */
static hl_vk_dispatch gather(const hl_vk_device *d, const hl_vk_buffer *x, const hl_vk_buffer *idx,
                             const hl_vk_buffer *y, VkDeviceSize yoff) {
    hl_vk_dispatch g;
    memset(&g, 0, sizeof g);
    g.kernel = HL_VK_K_gather;
    g.bufs[0] = x, g.bufs[1] = idx, g.bufs[4] = y;
    g.off[4] = yoff, g.range[4] = (VkDeviceSize)N * ROWS * 4;
    gather_push p = {N, ROWS, N, N};
    memcpy(g.push, &p, sizeof p);
    g.push_bytes = sizeof p;
    hl_vk_groups_2d(d, (N * ROWS + 63) / 64, g.groups);
    return g;
}

/* host: out = rows of src picked by idx */
static void host_gather(const float *src, const uint32_t *idx, float *out) {
    for (int r = 0; r < ROWS; r++) memcpy(out + r * N, src + idx[r] * N, N * sizeof *out);
}

static int same(const float *a, const float *b, int n) { return memcmp(a, b, (size_t)n * sizeof *a) == 0; }

TEST(vk_run_barriers_where_data_depends_and_kept_recording) {
    hl_vk_instance *vi;
    hl_vk_device *d;
    hl_vk_kernels *k = NULL;
    hl_err err = {0};
    if (vk_test_open_device(&vi, &d)) return;
    int rc = 0;
    if (!rc) rc = hl_vk_kernels_new(d, NULL, &k, &err);
    CHECK_EQ(rc, 0);
    if (rc) goto done;
    CHECK_EQ(k->writes[HL_VK_K_gather], 1u << 4);
    {
        const VkDeviceSize rows_bytes = (VkDeviceSize)N * ROWS * 4;
        hl_vk_buffer x, ix, y1, y2, z, spare;
        CHECK_EQ(hl_vk_buffer_new(d, 8 * N * 4, &x, &err), 0);
        CHECK_EQ(hl_vk_buffer_new(d, ROWS * 4, &ix, &err), 0);
        CHECK_EQ(hl_vk_buffer_new(d, rows_bytes, &y1, &err), 0);
        CHECK_EQ(hl_vk_buffer_new(d, rows_bytes, &y2, &err), 0);
        CHECK_EQ(hl_vk_buffer_new(d, 2 * rows_bytes, &z, &err), 0); /* C's output, then E's past it */
        CHECK_EQ(hl_vk_buffer_new(d, 16, &spare, &err), 0);
        float *xs = x.map;
        for (int i = 0; i < 8 * N; i++) xs[i] = (float)i * 0.5f - 7.0f;
        uint32_t *is = ix.map;
        const uint32_t idx1[ROWS] = {3, 0, 2, 3}, idx2[ROWS] = {1, 2, 2, 0}; /* < ROWS: C gathers from y1 */
        memcpy(is, idx1, sizeof idx1);
        hl_vk_dispatch list[5] = {
            gather(d, &x, &ix, &y1, 0),          /* A */
            gather(d, &x, &ix, &y2, 0),          /* B: only reads what A reads */
            gather(d, &y1, &ix, &z, 0),          /* C: reads A's output */
            gather(d, &x, &ix, &y1, 0),          /* D: writes what C read */
            gather(d, &x, &ix, &z, rows_bytes),  /* E: z past what C wrote */
        };
        for (int pass = 0; pass < 3 && !err.code; pass++) {
            const uint32_t *ids = pass == 1 ? idx2 : idx1;
            memcpy(is, ids, ROWS * 4);
            if (pass == 2) hl_vk_buffer_free(d, &spare); /* anything freed: record again */
            const hl_vk_run_stats before = k->stats;
            CHECK_EQ(hl_vk_run(k, list, 5, &err), 0);
            if (err.code) printf("    %s\n", err.msg);
            float a[N * ROWS], c[N * ROWS];
            host_gather(xs, ids, a);
            host_gather(a, ids, c);
            CHECK(same(y1.map, a, N * ROWS));
            CHECK(same(y2.map, a, N * ROWS));
            CHECK(same(z.map, c, N * ROWS));
            CHECK(same((const float *)z.map + N * ROWS, a, N * ROWS));
            CHECK_EQ(k->stats.runs - before.runs, 1u);
            CHECK_EQ(k->stats.reused - before.reused, pass == 1 ? 1u : 0u);
            /* recorded: barriers before C and D only; reused: nothing recorded */
            CHECK_EQ(k->stats.barriers - before.barriers, pass == 1 ? 0u : 2u);
            CHECK_EQ(k->stats.dispatches - before.dispatches, pass == 1 ? 0u : 5u);
        }
        hl_vk_buffer *all[] = {&x, &ix, &y1, &y2, &z};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) hl_vk_buffer_free(d, all[i]);
    }
done:
    hl_vk_kernels_free(k);
    hl_vk_device_close(d);
    hl_vk_instance_close(vi);
}

