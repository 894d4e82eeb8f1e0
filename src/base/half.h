// IEEE fp16 and bfloat16 storage types with float conversion (round to nearest even).
#pragma once

#include <cstdint>
#include <cstring>

namespace kiln {

inline float BitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t FloatToBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) : bits(FromFloat(f)) {}
  explicit operator float() const { return BitsToFloat(uint32_t{bits} << 16); }
  static uint16_t FromFloat(float f) {
    uint32_t u = FloatToBits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
  static BFloat16 FromBits(uint16_t b) { BFloat16 v; v.bits = b; return v; }
};

struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float f) : bits(FromFloat(f)) {}
  explicit operator float() const { return ToFloat(bits); }
  static Float16 FromBits(uint16_t b) { Float16 v; v.bits = b; return v; }

  static float ToFloat(uint16_t h) {
    uint32_t sign = uint32_t{h & 0x8000u} << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
      if (man == 0) {
        u = sign;
      } else {  // subnormal: normalize
        int e = -1;
        do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
        u = sign | (uint32_t(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
      }
    } else if (exp == 31) {
      u = sign | 0x7f800000u | (man << 13);
    } else {
      u = sign | ((exp + 112) << 23) | (man << 13);
    }
    return BitsToFloat(u);
  }

  static uint16_t FromFloat(float f) {
    uint32_t u = FloatToBits(f);
    uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;          // NaN
    if (abs >= 0x477ff000u) return sign | 0x7c00u;         // overflow -> inf (incl. inf)
    if (abs < 0x38800000u) {                               // subnormal or zero in fp16
      if (abs < 0x33000000u) return sign;                  // rounds to zero
      uint32_t e = abs >> 23;
      uint32_t m = (abs & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - e;                            // 14..24
      uint32_t half_m = m >> (shift - 0);
      // round to nearest even on the bits shifted out
      uint32_t rem = m & ((1u << shift) - 1);
      uint32_t halfway = 1u << (shift - 1);
      uint32_t r = half_m >> 0;
      r = m >> shift;
      if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
      (void)half_m;
      return static_cast<uint16_t>(sign | r);
    }
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);        // round mantissa to 10 bits
    r -= 0x38000000u;                                      // rebias 127 -> 15
    return static_cast<uint16_t>(sign | (r >> 13));
  }
};

}  // namespace kiln
