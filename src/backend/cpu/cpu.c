/* CPU feature detection and the run-time choice of kernel level. Each level's
 * kernel table is built exactly once (pthread_once) and is read-only after
 * that, so the process-wide tables are constants in all but name; the level in
 * use is the best one the CPU supports, capped by HL_SIMD=scalar|avx2. */
#include "backend/cpu/cpu_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HL_X86 1
static uint64_t hl_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void hl_cpu_model_name(char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) != 0) continue;
            const char *p = strchr(line, ':');
            if (!p) continue;
            p++;
            while (*p == ' ' || *p == '\t') p++;
            size_t n = strcspn(p, "\n");
            if (n >= cap) n = cap - 1;
            memcpy(out, p, n);
            out[n] = 0;
            break;
        }
        fclose(f);
    }
#ifdef HL_X86
    if (!out[0] && cap > 48) {
        uint32_t r[12], a, b, c, d;
        if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
            for (uint32_t i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
            memcpy(out, r, 48);
            out[48] = 0;
        }
    }
#endif
    if (!out[0]) snprintf(out, cap, "unknown CPU");
}

void hl_cpu_detect(hl_cpu_info *info) {
    memset(info, 0, sizeof *info);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->n_cores = n > 0 ? (int)n : 1;
    hl_cpu_model_name(info->model, sizeof info->model);
#ifdef HL_X86
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    uint64_t xcr0 = osxsave ? hl_xgetbv0() : 0;
    int ymm_ok = avx && (xcr0 & 6) == 6;            /* the OS saves SSE and AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xE0) == 0xE0;   /* ... and the AVX-512 state */
    info->fma = ymm_ok && ((c >> 12) & 1);
    info->f16c = ymm_ok && ((c >> 29) & 1);
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        info->avx2 = ymm_ok && ((b >> 5) & 1);
        info->bmi2 = (b >> 8) & 1;
        info->avx512f = zmm_ok && ((b >> 16) & 1);
        info->avx512bw = zmm_ok && ((b >> 30) & 1);
        info->avx512vl = zmm_ok && ((b >> 31) & 1);
        info->avx512vnni = zmm_ok && ((c >> 11) & 1);
        __cpuid_count(7, 1, a, b, c, d);
        info->avxvnni = ymm_ok && ((a >> 4) & 1);
    }
#endif
}

const char *hl_simd_name(hl_simd level) {
    switch (level) {
    case HL_SIMD_SCALAR: return "scalar";
    case HL_SIMD_AVX2: return "AVX2";
    case HL_SIMD_AVX512: return "AVX512-VNNI";
    }
    return "unknown";
}

/* ---- one-time tables ---- */
static hl_cpu_kernels hl_tab_scalar, hl_tab_avx2, hl_tab_avx512;
static pthread_once_t hl_once_scalar = PTHREAD_ONCE_INIT, hl_once_avx2 = PTHREAD_ONCE_INIT,
                      hl_once_avx512 = PTHREAD_ONCE_INIT, hl_once_level = PTHREAD_ONCE_INIT;
static hl_simd hl_level_in_use;
static int hl_has_avx2, hl_has_avx512;

static void hl_init_scalar(void) { hl_cpu_kernels_init_scalar(&hl_tab_scalar); }
static void hl_init_avx2(void) {
    hl_cpu_kernels_init_scalar(&hl_tab_avx2);
    hl_cpu_kernels_init_avx2(&hl_tab_avx2);
}

/* AVX-512: the AVX2 table with the kernels AVX-512 has of its own on top
 * (the attention kernels and the Q4_K / Q6_K matmul; same bits as their AVX2
 * versions). */
static void hl_init_avx512(void) {
    hl_cpu_kernels_init_scalar(&hl_tab_avx512);
    hl_cpu_kernels_init_avx2(&hl_tab_avx512);
    hl_avx512_init_attn(&hl_tab_avx512);
    hl_avx512_init_kquants(&hl_tab_avx512);
    hl_tab_avx512.level = HL_SIMD_AVX512;
}

static void hl_init_level(void) {
    hl_cpu_info ci;
    hl_cpu_detect(&ci);
    hl_has_avx2 = ci.avx2 && ci.fma && ci.f16c && ci.bmi2;
    hl_has_avx512 = hl_has_avx2 && ci.avx512f && ci.avx512bw && ci.avx512vl && ci.avx512vnni;
    hl_simd best = hl_has_avx512 ? HL_SIMD_AVX512 : hl_has_avx2 ? HL_SIMD_AVX2 : HL_SIMD_SCALAR;
    const char *env = getenv("HL_SIMD");
    if (env && strcasecmp(env, "scalar") == 0) best = HL_SIMD_SCALAR;
    if (env && strcasecmp(env, "avx2") == 0 && best > HL_SIMD_AVX2) best = HL_SIMD_AVX2;
    hl_level_in_use = best;
}

hl_simd hl_cpu_simd(void) {
    pthread_once(&hl_once_level, hl_init_level);
    return hl_level_in_use;
}

int hl_cpu_simd_supported(hl_simd level) {
    pthread_once(&hl_once_level, hl_init_level);
    if (level == HL_SIMD_SCALAR) return 1;
    if (level == HL_SIMD_AVX2) return hl_has_avx2;
    if (level == HL_SIMD_AVX512) return hl_has_avx512;
    return 0;
}

const char *hl_cpu_simd_level(void) { return hl_simd_name(hl_cpu_simd()); }

const hl_cpu_kernels *hl_cpu_kernels_at(hl_simd level) {
    if (level >= HL_SIMD_AVX512 && hl_cpu_simd_supported(HL_SIMD_AVX512)) {
        pthread_once(&hl_once_avx512, hl_init_avx512);
        return &hl_tab_avx512;
    }
    if (level >= HL_SIMD_AVX2 && hl_cpu_simd_supported(HL_SIMD_AVX2)) {
        pthread_once(&hl_once_avx2, hl_init_avx2);
        return &hl_tab_avx2;
    }
    pthread_once(&hl_once_scalar, hl_init_scalar);
    return &hl_tab_scalar;
}

const hl_vec_ops *hl_vec_ops_at(hl_simd level) { return &hl_cpu_kernels_at(level)->vec; }

/* ---- public vector kernels: the level in use ---- */
static const hl_vec_ops *hl_vops(void) { return hl_vec_ops_at(hl_cpu_simd()); }
float hl_vec_dot_f32(const float *a, const float *b, int64_t n) { return hl_vops()->dot_f32(a, b, n); }
float hl_vec_dot_f16(const hl_f16 *a, const float *b, int64_t n) { return hl_vops()->dot_f16(a, b, n); }
void hl_vec_axpy_f16(float *y, const hl_f16 *x, float a, int64_t n) { hl_vops()->axpy_f16(y, x, a, n); }
void hl_vec_to_f16(hl_f16 *dst, const float *src, int64_t n) { hl_vops()->to_f16(dst, src, n); }
void hl_vec_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) { hl_vops()->rmsnorm(out, x, w, n, eps); }
void hl_vec_softmax(float *x, int64_t n) { hl_vops()->softmax(x, n); }
void hl_vec_silu_mul(float *out, const float *g, const float *u, int64_t n) { hl_vops()->silu_mul(out, g, u, n); }
void hl_vec_gelu_mul(float *out, const float *g, const float *u, int64_t n) { hl_vops()->gelu_mul(out, g, u, n); }
void hl_vec_add(float *y, const float *x, int64_t n) { hl_vops()->add(y, x, n); }
void hl_vec_scale(float *y, float s, int64_t n) { hl_vops()->scale(y, s, n); }
