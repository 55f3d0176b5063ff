/* The AVX-512 paths' common ground: compiled on x86-64 by GCC or Clang and
 * taken at run time only at the levels nn_cpu() allows; elsewhere
 * VECTOR_PATHS is 0 and the plain loops beside them run. */
#ifndef DD_NN_VECTOR_H
#define DD_NN_VECTOR_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VECTOR_PATHS 1
#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes [0, count) of a vector, count clamped to 0..16. */
static inline __mmask16 lanes(int count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

/* The same for AVX2's eight lanes, as the all-ones lanes its masked loads
 * and stores take (masked-out lanes are never touched). */
AVX2 static inline __m256i lanes8(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
AVX2 static inline __m128i lanes4(int count) {
    return _mm_cmpgt_epi32(_mm_set1_epi32(count), _mm_setr_epi32(0, 1, 2, 3));
}
#else
#define VECTOR_PATHS 0
#endif

#endif
