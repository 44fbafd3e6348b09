// Shared by the kernels: the float16 rounding the CPU's quantizers use
// (round to nearest, ties to even; done with integer operations so it
// does not depend on the driver's conversion mode) and a correctly
// rounded division.

float f16_round(float v) { // v >= 0, finite
    if (v >= 65520.0) return uintBitsToFloat(0x7f800000u);
    if (v < 6.103515625e-05) return roundEven(v * 16777216.0) / 16777216.0; // f16 subnormals: multiples of 2^-24
    uint u = floatBitsToUint(v);
    u += 0xfffu + ((u >> 13) & 1u);
    return uintBitsToFloat(u & ~0x1fffu);
}

// a / b rounded to nearest, ties to even, as IEEE division is (the
// CPU's), whatever the driver's division precision (Vulkan allows 2.5 ulp,
// and a CPU driver may split fma into a multiply and an add, so a residual
// correction cannot be trusted either): the significands are divided
// exactly, bit by bit, in 32-bit integers. For a >= 0 and b > 0 normal with
// a normal quotient, as the quantizers use it; outside that (a zero, or a
// quotient that would leave the normal range) the driver's division.
float div_rn(float a, float b) {
    uint ua = floatBitsToUint(a), ub = floatBitsToUint(b);
    int ea = int(ua >> 23), eb = int(ub >> 23);
    if (a == 0.0 || ea == 0 || eb == 0 || ea == 255 || eb == 255) return a / b;
    uint r = (ua & 0x7fffffu) | 0x800000u, mb = (ub & 0x7fffffu) | 0x800000u;
    int e = ea - eb + 127;
    if (r < mb) {
        r <<= 1;
        e -= 1;
    }
    uint q = 0u;
    for (int i = 0; i < 24; i++) { // 1 <= r / mb < 2: 24 quotient bits, leading one first
        q <<= 1;
        if (r >= mb) {
            r -= mb;
            q |= 1u;
        }
        r <<= 1;
    }
    if (r > mb || (r == mb && (q & 1u) != 0u)) q += 1u; // r is twice the remainder
    if (q == 0x1000000u) {
        q >>= 1;
        e += 1;
    }
    if (e <= 0 || e >= 255) return a / b;
    return uintBitsToFloat((uint(e) << 23) | (q & 0x7fffffu));
}

// v rounded to the nearest integer, ties to even (the CPU's nearbyintf),
// for |v| < 2^23: floor and the exact fraction, whatever the driver's
// roundEven does with ties.
float round_even(float v) {
    precise float t = floor(v);
    precise float f = v - t;
    if (f > 0.5 || (f == 0.5 && mod(t, 2.0) != 0.0)) t += 1.0;
    return t;
}

// float to IEEE half bits, round to nearest even, exactly as the CPU's
// hl_f32_to_f16 (base/half.h) does it, NaN payloads and subnormals included.
uint f32_to_f16_bits(float f) {
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u);
    if (ax >= 0x477ff000u) return sign | 0x7c00u;
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) return sign;
        uint e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
        uint q = m >> shift, rem = m & ((1u << shift) - 1u), hb = 1u << (shift - 1u);
        if (rem > hb || (rem == hb && (q & 1u) != 0u)) q++;
        return sign | q;
    }
    uint q = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u) != 0u)) q++;
    return sign | q;
}

// tanh to a few float ulps whatever the driver's tanh (GLSL leaves its
// precision to the implementation; lavapipe's is off by ~5e-6 near 0) and
// without the overflow of exp(2x): below 0.625 sinh / cosh from their series
// (terms to x^11, truncation < 1e-12), above 1 - 2 / (exp(2|x|) + 1)
float tanh_safe(float x) {
    float a = abs(x);
    if (a < 0.625) {
        float z = x * x;
        float sh = x * (1.0 + z * (1.0 / 6.0 + z * (1.0 / 120.0 + z * (1.0 / 5040.0 + z * (1.0 / 362880.0 + z * (1.0 / 39916800.0))))));
        float ch = 1.0 + z * (0.5 + z * (1.0 / 24.0 + z * (1.0 / 720.0 + z * (1.0 / 40320.0 + z * (1.0 / 3628800.0)))));
        return sh / ch;
    }
    float t = 1.0 - 2.0 / (exp(2.0 * min(a, 15.0)) + 1.0);
    return x < 0.0 ? -t : t;
}

// erf(x) (GLSL has none): Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
float erf_approx(float x) {
    float a = abs(x), t = 1.0 / (1.0 + 0.3275911 * a);
    float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
    return x < 0.0 ? -y : y;
}

// the activation functions of the plan (backend.h hl_act): 0 SiLU, 1 GELU
// (tanh), 2 softcap cap * tanh(x / cap), 3 scale x * cap, 4 exact (erf) GELU
float act_fn(uint act, float cap, float x) {
    if (act == 1u) {
        const float c = 0.79788456080286535588;
        return 0.5 * x * (1.0 + tanh_safe(c * (x + 0.044715 * x * x * x)));
    }
    if (act == 2u) return cap * tanh_safe(x / cap);
    if (act == 3u) return x * cap;
    if (act == 4u) return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752440));
    return x / (1.0 + exp(-x));
}
