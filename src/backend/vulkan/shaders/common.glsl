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

// the activation functions of the plan (backend.h): 0 SiLU, 1 GELU (tanh)
float act_fn(uint act, float x) {
    if (act == 1u) {
        const float c = 0.79788456080286535588;
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
    }
    return x / (1.0 + exp(-x));
}
