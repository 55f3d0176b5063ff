/* The fast mode's kernels: nn_gemm_bf16 against a double-precision
 * reference on operands rounded to bfloat16 here, over every edge of its
 * blocking, and the bfloat16 convolutions forward and backward (on
 * AVX512-BF16); nn_gemm_i16 against its quantization bound (from AVX2 up);
 * the float32 Winograd both modes run (everywhere); and the real network on
 * the sample photos with each fast kernel the CPU has, against its own
 * exact gradient.
 *
 * usage: test_fast SAMPLES_DIR */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"
#include "image/image.h"
#include "nn/nn.h"

#define TEST_RNG_SEED 0x13198a2e03707344u
#include "support.h"

/* Error bound of a float32 sum of n terms: recursive summation errs by at
 * most about n * 2^-24 * sum|term|; we allow n * 2^-23 (VDPBF16PS adds the
 * two products of a pair one after the other, and a beta = 1 or bias add
 * rounds once more, counted in n). The products of two bfloat16 values are
 * exact in float32, so this is the whole error once the operands are rounded.
 * TINY absorbs the denormals that VDPBF16PS flushes to zero (inputs and
 * outputs, whatever MXCSR says): each is below 2^-126 ~ 1.2e-38. */
#define EPS_SUM 0x1.0p-23
#define TINY 1e-30

/* Fast gradient of the real network against its exact one, on photos:
 * measured 0.994 .. 0.9975 when the fast mode landed. */
#define MIN_GRAD_CORR 0.99
#define OBJECTIVE_REL 1e-3

/* Worst |got - ref| / bound over all GEMM and convolution elements. */
static double worst_gemm, worst_conv;

/* Mostly uniform in [-1, 1) with exponents spread over 2^-6 .. 2^2, and one
 * value in 8 an exact zero. */
static float rng_value(void) {
    const uint64_t r = rng_u64();
    if ((r & 7) == 0) return 0.0f;
    return (float)ldexp(rng_uniform(-1.0, 1.0), (int)((r >> 3) % 9) - 6);
}

static float *rand_floats(size_t n, double lo, double hi) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rng_uniform(lo, hi);
    return p;
}

static float *copy_floats(const float *src, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* bfloat16 rounding: 8 significant bits, to nearest even, overflow to inf,
 * NaN and inf kept. Done in double with nearbyint (the default rounding mode
 * is to nearest even) rather than by bit arithmetic, so it shares nothing
 * with the library's conversion. Below 2^-126 the spacing stays 2^-133. */
static float bf16_round(float f) {
    if (!isfinite(f) || f == 0.0f) return f;
    int e = ilogb(f);
    if (e < -126) e = -126;
    const double q = ldexp(1.0, e - 7);
    const double r = nearbyint((double)f / q) * q;
    if (fabs(r) > FLT_MAX) return copysignf(INFINITY, f);
    return (float)r;
}

/* got against ref within bound; NaN wants NaN, inf wants the same inf.
 * Returns whether it held and keeps the worst |got - ref| / bound. */
static int within(double got, double ref, double bound, double *worst) {
    if (isnan(ref)) return isnan(got);
    if (isinf(ref)) return got == ref;
    const double diff = fabs(got - ref);
    if (isnan(diff)) *worst = INFINITY;
    else if (bound > 0 && diff / bound > *worst) *worst = diff / bound;
    return diff <= bound;
}

/* ---- 1-3. nn_gemm_bf16 ------------------------------------------------------ */

enum { GUARD = 67, MAX_THREADS = 3 };

static float guard_value(size_t i) { return -1234.5f - (float)(i % 97); }

/* C = op(A) B (+ C) by nn_gemm_bf16 with 1, 2 and 3 threads, against the
 * double reference, guards around C and in its padding columns untouched,
 * and the three results bit-identical. a is op(A), m x k row-major; it is
 * stored transposed (k x m) for trans_a. b is k x n with row stride ldb
 * (padding columns are set to NaN here: reading them into any product would
 * show). With exact (A the identity: one nonzero product per element),
 * every result must equal the reference bit for bit, except that denormal
 * results may flush to zero. */
static void gemm_run(const char *what, int m, int n, int k, int trans_a, int beta, int ldb,
                     int ldc, const float *a, float *b, int exact) {
    /* A as the caller would store it, packed into exactly the words asked for. */
    float *a_store = xmalloc((size_t)m * k * sizeof *a_store);
    for (int i = 0; i < m; i++)
        for (int r = 0; r < k; r++)
            a_store[trans_a ? (size_t)r * m + i : (size_t)i * k + r] = a[(size_t)i * k + r];
    const size_t words = nn_bf16_packed_a_words(m, k);
    uint32_t *packed = xmalloc(words * sizeof *packed);
    nn_bf16_pack_a(packed, a_store, m, k, trans_a);
    for (int r = 0; r < k - 1; r++) /* the last row ends at column n */
        for (int j = n; j < ldb; j++) b[(size_t)r * ldb + j] = NAN;

    /* C with GUARD floats on both sides and ldc - n padding columns. */
    const size_t c_len = 2 * (size_t)GUARD + (size_t)m * ldc;
    float *init = xmalloc(c_len * sizeof *init);
    for (size_t i = 0; i < c_len; i++) init[i] = guard_value(i);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            init[GUARD + (size_t)i * ldc + j] = beta ? rng_value() : NAN; /* beta 0 must not read C */

    /* The reference, in double from the bfloat16-rounded operands. */
    double *ref = xmalloc((size_t)m * n * sizeof *ref), *bound = xmalloc((size_t)m * n * sizeof *bound);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const double c0 = beta ? init[GUARD + (size_t)i * ldc + j] : 0.0;
            double sum = c0, mag = fabs(c0);
            for (int r = 0; r < k; r++) {
                const double p = (double)bf16_round(a[(size_t)i * k + r]) * bf16_round(b[(size_t)r * ldb + j]);
                sum += p, mag += fabs(p);
            }
            ref[(size_t)i * n + j] = sum;
            bound[(size_t)i * n + j] = exact ? 0.0 : (k + beta) * EPS_SUM * mag + TINY;
        }

    const size_t scratch_words = nn_bf16_scratch_words(k);
    uint32_t *scratch = xmalloc(MAX_THREADS * scratch_words * sizeof *scratch);
    float *c[MAX_THREADS];
    for (int t = 0; t < MAX_THREADS; t++) {
        c[t] = copy_floats(init, c_len);
        nn_gemm_bf16(m, n, k, packed, b, ldb, beta ? 1.0f : 0.0f, c[t] + GUARD, ldc, scratch, t + 1);
    }

    size_t bad = 0, first = 0, guards = 0, first_guard = 0;
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const size_t at = (size_t)i * n + j;
            const double got = c[0][GUARD + (size_t)i * ldc + j];
            int ok = within(got, ref[at], bound[at], &worst);
            if (!ok && exact && fabs(ref[at]) < 0x1.0p-126 && got == 0.0) ok = 1;
            if (!ok && !bad++) first = at;
        }
    int guard_t = 0;
    for (int t = 0; t < MAX_THREADS; t++)
        for (size_t i = 0; i < c_len; i++) {
            const int in_c = i >= GUARD && i < c_len - GUARD && (i - GUARD) % (size_t)ldc < (size_t)n;
            if (!in_c && memcmp(&c[t][i], &init[i], sizeof(float)) && !guards++) first_guard = i, guard_t = t;
        }
    if (!exact && worst > worst_gemm) worst_gemm = worst;
    CHECK(bad == 0,
          "%s: %zu of %d elements out of bound, first C[%zu][%zu] = %.9g, ref %.9g, bound %.3g; "
          "worst |diff|/bound %.3g",
          what, bad, m * n, first / (size_t)n, first % (size_t)n,
          (double)c[0][GUARD + first / (size_t)n * ldc + first % (size_t)n], ref[first], bound[first],
          worst);
    CHECK(guards == 0, "%s: %zu guard floats changed, first with %d thread(s) at offset %td from C: %.9g, was %.9g",
          what, guards, guard_t + 1, (ptrdiff_t)first_guard - GUARD, (double)c[guard_t][first_guard],
          (double)init[first_guard]);
    for (int t = 1; t < MAX_THREADS; t++)
        CHECK(!memcmp(c[0], c[t], c_len * sizeof(float)), "%s: %d threads differ from 1 thread", what,
              t + 1);

    for (int t = 0; t < MAX_THREADS; t++) free(c[t]);
    free(a_store), free(packed), free(init), free(ref), free(bound), free(scratch);
}

/* B, k x n with row stride ldb, exactly (k - 1) * ldb + n floats so that
 * ASan sees a read past the last row's n columns. */
static float *b_alloc(int k, int n, int ldb) { return xmalloc(((size_t)(k - 1) * ldb + n) * sizeof(float)); }

/* Every n x k below, twice (trans_a 0 then 1), with m and beta cycling so
 * that all 32 (m, beta, trans_a) and 84 of the 96 (m, n) combinations run,
 * and ldb and ldc padded by 0, 1 or 19 columns (72 of 108 (n, pads)). */
static void test_gemm_shapes(void) {
    static const int ms[] = {1, 5, 11, 12, 13, 24, 37, 100};
    static const int ns[] = {1, 7, 15, 16, 17, 31, 32, 33, 127, 128, 129, 300};
    static const int ks[] = {1, 2, 3, 8, 27, 64, 577};
    static const int pads[] = {0, 1, 19};
    enum { NM = sizeof ms / sizeof *ms, NN = sizeof ns / sizeof *ns, NK = sizeof ks / sizeof *ks };
    int runs = 0;
    for (int idx = 0; idx < 2 * NN * NK; idx++) {
        const int in = idx % NN, ik = idx / NN % NK, trans_a = idx / (NN * NK);
        const int n = ns[in], k = ks[ik], m = ms[(in + 3 * ik) % NM], beta = (ik + in / 2 + trans_a) % 2;
        const int ldb = n + pads[(in + ik) % 3], ldc = n + pads[(in + 2 * ik + trans_a) % 3];
        char what[128];
        snprintf(what, sizeof what, "gemm m %d n %d k %d trans_a %d beta %d ldb %d ldc %d", m, n, k, trans_a,
                 beta, ldb, ldc);
        float *a = xmalloc((size_t)m * k * sizeof *a), *b = b_alloc(k, n, ldb);
        for (size_t i = 0; i < (size_t)m * k; i++) a[i] = rng_value();
        for (int r = 0; r < k; r++)
            for (int j = 0; j < n; j++) b[(size_t)r * ldb + j] = rng_value();
        gemm_run(what, m, n, k, trans_a, beta, ldb, ldc, a, b, 0);
        free(a), free(b);
        runs++;
    }
    fprintf(stderr, "test_fast: %d GEMM shapes x 1, 2, 3 threads; worst |diff| / bound %.3g\n", runs,
            worst_gemm);
}

/* ---- the 16-bit integer GEMM (the fast mode from AVX2 up) ------------------ */

/* C = op(A) B (+ C), B's elements masked by bit (r + j) % 3 != 0 of a mask
 * row per row of B, by nn_gemm_i16 with 1, 2 and 3 threads: bit-identical,
 * guards untouched, and within the quantization bound of the double
 * product of the unrounded operands. With Q = floor(sqrt((2^31 - 1) / k)),
 * row i of A is scaled by sa = max|A_i.| / Q and column j of B by
 * sb = max|B_.j| / Q; each element is off by at most half a step, so
 * |C - ref| <= sum_r (|A_ir| sb / 2 + |B_rj| sa / 2 + sa sb / 4), times
 * 1.001 for the float scales' own rounding, plus the float32 roundings of
 * the scaling and the add: 2^-21 (|ref| + sum|A B|). */
static void test_i16_gemm(int m, int n, int k, int trans_a, int beta, int masked) {
    char what[128];
    snprintf(what, sizeof what, "int16 gemm m %d n %d k %d trans_a %d beta %d mask %d", m, n, k, trans_a, beta, masked);
    const int ldb = n + 3, ldc = n + 5;
    float *a = xmalloc((size_t)m * k * sizeof *a), *a_store = xmalloc((size_t)m * k * sizeof *a_store);
    float *b = xmalloc((size_t)k * ldb * sizeof *b);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = rng_value();
    for (size_t i = 0; i < (size_t)k * ldb; i++) b[i] = rng_value();
    for (int i = 0; i < m; i++)
        for (int r = 0; r < k; r++) a_store[trans_a ? (size_t)r * m + i : (size_t)i * k + r] = a[(size_t)i * k + r];
    const size_t mask_row = nn_mask_bytes((size_t)n + 11);
    uint8_t *mask = xmalloc((size_t)k * mask_row);
    memset(mask, 0, (size_t)k * mask_row);
    for (int r = 0; r < k; r++) /* bits from 11 on, as a band that starts there */
        for (int j = 0; j < n; j++)
            if ((r + j) % 3) mask[(size_t)r * mask_row + (size_t)(j + 11) / 8] |= (uint8_t)(1u << ((j + 11) % 8));
    uint32_t *packed = xmalloc(nn_i16_packed_a_words(m, k) * sizeof *packed);
    nn_i16_pack_a(packed, a_store, m, k, trans_a);

    const size_t c_len = 2 * (size_t)GUARD + (size_t)m * ldc;
    float *init = xmalloc(c_len * sizeof *init);
    for (size_t i = 0; i < c_len; i++) init[i] = guard_value(i);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) init[GUARD + (size_t)i * ldc + j] = beta ? rng_value() : NAN;
    const double q = floor(sqrt(2147483647.0 / k));
    const nn_gemm_fuse fuse = {.b_mask = mask, .b_mask_row = mask_row, .b_mask_from = 11};
    uint32_t *scratch = xmalloc(MAX_THREADS * nn_i16_scratch_words(k) * sizeof *scratch);
    float *c[MAX_THREADS];
    for (int t = 0; t < MAX_THREADS; t++) {
        c[t] = copy_floats(init, c_len);
        nn_gemm_i16(m, n, k, packed, b, ldb, beta ? 1.0f : 0.0f, c[t] + GUARD, ldc, scratch, t + 1, masked ? &fuse : NULL);
    }
    size_t bad = 0, first = 0;
    double worst = 0, first_got = 0, first_ref = 0;
    for (int j = 0; j < n; j++) {
        double bmax = 0;
        for (int r = 0; r < k; r++) {
            const double v = masked && !((r + j) % 3) ? 0.0 : b[(size_t)r * ldb + j];
            if (fabs(v) > bmax) bmax = fabs(v);
        }
        for (int i = 0; i < m; i++) {
            double amax = 0;
            for (int r = 0; r < k; r++)
                if (fabs(a[(size_t)i * k + r]) > amax) amax = fabs(a[(size_t)i * k + r]);
            const double sa = amax / q, sb = bmax / q, c0 = beta ? init[GUARD + (size_t)i * ldc + j] : 0.0;
            double ref = c0, mag = fabs(c0), quant = 0;
            for (int r = 0; r < k; r++) {
                const double av = a[(size_t)i * k + r], bv = masked && !((r + j) % 3) ? 0.0 : b[(size_t)r * ldb + j];
                ref += av * bv, mag += fabs(av * bv);
                quant += fabs(av) * sb / 2 + fabs(bv) * sa / 2 + sa * sb / 4;
            }
            const double bound = 1.001 * quant + 0x1.0p-21 * (fabs(ref) + mag) + 1e-30;
            const double got = c[0][GUARD + (size_t)i * ldc + j];
            if (!within(got, ref, bound, &worst) && !bad++) first = (size_t)i * n + j, first_got = got, first_ref = ref;
        }
    }
    size_t guards = 0, differ = 0;
    for (int t = 0; t < MAX_THREADS; t++)
        for (size_t i = 0; i < c_len; i++) {
            const int in_c = i >= GUARD && i < c_len - GUARD && (i - GUARD) % (size_t)ldc < (size_t)n;
            if (!in_c && memcmp(&c[t][i], &init[i], sizeof(float))) guards++;
            if (in_c && memcmp(&c[t][i], &c[0][i], sizeof(float))) differ++;
        }
    if (worst > worst_gemm) worst_gemm = worst;
    CHECK(bad == 0, "%s: %zu elements out of bound, first C[%zu][%zu] = %.9g, ref %.9g", what, bad, first / (size_t)n,
          first % (size_t)n, first_got, first_ref);
    CHECK(guards == 0, "%s: %zu floats outside C written", what, guards);
    CHECK(differ == 0, "%s: %zu elements differ between 1, 2 and 3 threads", what, differ);
    for (int t = 0; t < MAX_THREADS; t++) free(c[t]);
    free(a), free(a_store), free(b), free(mask), free(packed), free(init), free(scratch);
}

static void test_i16_gemms(void) {
    static const int ms[] = {1, 5, 12, 13, 31};
    static const int ns[] = {1, 15, 16, 17, 33, 130, 300};
    static const int ks[] = {1, 2, 3, 37, 300, 1344};
    int runs = 0;
    worst_gemm = 0;
    for (int in = 0; in < 7; in++)
        for (int ik = 0; ik < 6; ik++, runs++)
            test_i16_gemm(ms[(in + ik) % 5], ns[in], ks[ik], (in + ik) % 2, (in / 2 + ik) % 2, (in + 2 * ik) % 3 == 0);
    fprintf(stderr, "test_fast: %d int16 GEMM shapes x 1, 2, 3 threads; worst |diff| / bound %.3g\n", runs, worst_gemm);
}

/* Rounding, exactly: A = the identity (k x k), so C = bf16(B) with no sum.
 * Ties must go to even, values just above a tie up, FLT_MAX to inf (whose
 * column then turns NaN through the zeros of A: 0 * inf). */
static void test_gemm_rounding(void) {
    enum { K = 17, N = 40, LDB = 41 };
    float *a = xmalloc((size_t)K * K * sizeof *a), *b = b_alloc(K, N, LDB);
    for (int i = 0; i < K; i++)
        for (int r = 0; r < K; r++) a[i * K + r] = i == r ? 1.0f : 0.0f;
    for (int r = 0; r < K; r++)
        for (int j = 0; j < N; j++) b[r * LDB + j] = (float)rng_uniform(-4.0, 4.0);
    static const float specials[] = {
        1.0f + 0x1.0p-8f,                /* tie: down to 1 (even)            */
        1.0f + 0x3.0p-8f,                /* tie: up to 1 + 2^-6 (even)       */
        -(1.0f + 0x1.0p-8f),             /* negative ties                    */
        -(1.0f + 0x3.0p-8f),
        1.0f + 0x1.0p-8f + 0x1.0p-20f,   /* just above a tie: up             */
        1.0f + 0x1.0p-8f - 0x1.0p-20f,   /* just below: down                 */
        255.5f, 256.5f, 0x1.fffffep-1f,  /* 0.99999994 rounds up to 1        */
        1e30f, -1e30f, 3e38f,            /* 3e38 stays finite in bfloat16    */
        1e-30f, 2e-38f, -2e-38f,         /* small normals                    */
        0.0f, -0.0f,
    };
    const int n_specials = (int)(sizeof specials / sizeof *specials);
    for (int s = 0; s < n_specials; s++) b[(s % K) * LDB + s] = specials[s];
    b[3 * LDB + 30] = FLT_MAX; /* rounds to +inf: column 30 is inf in row 3, NaN elsewhere */
    gemm_run("gemm rounding (A = I, C = bf16(B) exactly)", K, N, K, 0, 0, LDB, N, a, b, 1);
    gemm_run("gemm rounding, trans_a", K, N, K, 1, 0, LDB, N + 3, a, b, 1);
    free(a), free(b);
}

/* Special values in B: NaN spreads to its whole column of C (every product
 * with it is NaN, even 0 * NaN), inf gives +-inf where A is nonzero and NaN
 * where A is zero, huge and tiny values and signed zeros go through within
 * the bound, denormals may flush. Checked against the reference (which makes
 * the same IEEE choices in double) and explicitly for the NaN column. */
static void test_gemm_specials(void) {
    enum { M = 13, N = 45, K = 27, LDB = 47 };
    float *a = xmalloc((size_t)M * K * sizeof *a), *b = b_alloc(K, N, LDB);
    for (int i = 0; i < M * K; i++) a[i] = (float)rng_uniform(-1.0, 1.0);
    a[4 * K + 2] = 0.0f; /* row 4 meets the inf of column 8 with a zero */
    for (int r = 0; r < K; r++)
        for (int j = 0; j < N; j++) b[r * LDB + j] = (float)rng_uniform(-1.0, 1.0);
    b[5 * LDB + 3] = NAN;
    b[2 * LDB + 8] = INFINITY;
    b[7 * LDB + 9] = -INFINITY;
    for (int r = 0; r < K; r++) {
        b[r * LDB + 10] = (r & 1 ? 1e30f : -3e29f) * (float)(r + 1);      /* huge        */
        b[r * LDB + 11] = (r & 1 ? 1e-30f : -2e-38f) * (float)(r % 5 + 1); /* tiny        */
        b[r * LDB + 12] = r & 1 ? -0.0f : 0.0f;                          /* zeros: C = 0 */
        b[r * LDB + 13] = (r & 1 ? 1e-40f : -3e-42f);                    /* denormals   */
    }
    b[9 * LDB + 14] = 1e30f; /* one huge value among ordinary ones */
    for (int pass = 0; pass < 2; pass++) {
        const int trans_a = pass, beta = pass;
        char what[96];
        snprintf(what, sizeof what, "gemm special values, trans_a %d beta %d", trans_a, beta);
        gemm_run(what, M, N, K, trans_a, beta, LDB, N + 1, a, b, 0);
    }

    /* The NaN and inf columns, spelled out (beta 0, one thread). */
    uint32_t *packed = xmalloc(nn_bf16_packed_a_words(M, K) * sizeof *packed);
    uint32_t *scratch = xmalloc(nn_bf16_scratch_words(K) * sizeof *scratch);
    float *c = xmalloc((size_t)M * N * sizeof *c);
    nn_bf16_pack_a(packed, a, M, K, 0);
    nn_gemm_bf16(M, N, K, packed, b, LDB, 0.0f, c, N, scratch, 1);
    int nan_col = 0, inf_col = 0, stray = 0;
    for (int i = 0; i < M; i++) {
        nan_col += isnan(c[i * N + 3]) != 0;
        const float a2 = bf16_round(a[i * K + 2]);
        inf_col += a2 == 0.0f ? isnan(c[i * N + 8]) != 0 : c[i * N + 8] == (a2 > 0 ? INFINITY : -INFINITY);
        for (int j = 0; j < N; j++)
            if (j != 3 && j != 8 && j != 9) stray += !isfinite(c[i * N + j]);
    }
    CHECK(nan_col == M, "gemm: a NaN in B[5][3] made %d of %d rows of column 3 NaN", nan_col, M);
    CHECK(inf_col == M, "gemm: +inf in B[2][8] gave the right +-inf / NaN in %d of %d rows", inf_col, M);
    CHECK(stray == 0, "gemm: %d non-finite values outside the NaN and inf columns", stray);
    for (int i = 0; i < M; i++)
        CHECK(c[i * N + 12] == 0.0f, "gemm: column of zeros gave C[%d][12] = %g", i, (double)c[i * N + 12]);
    free(packed), free(scratch), free(c), free(a), free(b);
}

/* ---- 4. convolutions in fast mode ------------------------------------------ */

static int bit(const uint8_t *mask, size_t plane, size_t ch, size_t i) {
    return mask[ch * nn_mask_bytes(plane) + (i >> 3)] >> (i & 7) & 1;
}

static void plan_band_rows(nn_conv *cv, int rows) {
    const size_t row = (size_t)cv->c * cv->win.kh * cv->win.kw * cv->win.ow;
    nn_conv_plan_bands(cv, rows ? (size_t)rows * row + row - 1 : SIZE_MAX / 2);
}

/* nn_conv_forward and nn_conv_backward_input with cv.packed set, against
 * direct loops in double over bfloat16-rounded weights and inputs (forward)
 * or weights and masked dout (backward). Bound: the float32 sum bound of
 * the element's products, counting C*KH*KW products plus the bias forward,
 * and K products per tap, KH*KW taps and the prior din backward. Then
 * several bands and 1 thread give the same bits as one band and 2 threads. */
/* same: 0 'valid', 1 'same', 2 PyTorch's explicit pads {top, bottom, left,
 * right} from conv_pads. */
static int conv_pads[4];

static void test_conv(int c, int k, int h, int w, int kh, int kw, int s, int same, int relu) {
    char what[128], pads[48];
    snprintf(pads, sizeof pads, "pads %d,%d,%d,%d", conv_pads[0], conv_pads[1], conv_pads[2], conv_pads[3]);
    snprintf(what, sizeof what, "fast conv %dx%d/%d %s in %dx%dx%d K %d relu %d", kh, kw, s,
             same == 2 ? pads : same ? "same" : "valid", c, h, w, k, relu);
    nn_conv cv = {.c = c, .k = k, .cpu = nn_cpu()};
    if (same == 2 ? !nn_window_plan_padded(&cv.win, h, w, kh, kw, s, s, conv_pads, 0)
                  : !nn_window_plan(&cv.win, h, w, kh, kw, s, s, same)) {
        CHECK(0, "%s: no output", what);
        return;
    }
    const int oh = cv.win.oh, ow = cv.win.ow, ckk = c * kh * kw;
    const size_t plane = (size_t)oh * ow, in_n = (size_t)c * h * w, out_n = (size_t)k * plane;
    float *wt = rand_floats((size_t)k * ckk, -0.5, 0.5), *b = rand_floats((size_t)k, -0.5, 0.5);
    float *x = rand_floats(in_n, -1.0, 1.0);
    uint32_t *pw = xmalloc(nn_bf16_packed_a_words(k, ckk) * sizeof *pw);
    uint32_t *pwt = xmalloc(nn_bf16_packed_a_words(ckk, k) * sizeof *pwt);
    uint32_t *scratch = xmalloc(2 * nn_bf16_scratch_words(ckk > k ? ckk : k) * sizeof *scratch);
    nn_bf16_pack_a(pw, wt, k, ckk, 0);
    nn_bf16_pack_a(pwt, wt, ckk, k, 1);
    const nn_conv_packed fast = {.w = pw, .wt = pwt, .scratch = scratch};
    cv.packed = &fast;
    nn_conv_set_paths(&cv, NN_CONV_BF16, NN_CONV_BF16);

    /* Three runs: one band 2 threads (checked), several bands 2 threads, one
     * band 1 thread (both bit-compared with the first). */
    const int bands[3] = {0, 2, 0}, threads[3] = {2, 2, 1};
    const size_t mask_len = (size_t)k * nn_mask_bytes(plane);
    float *out[3], *din[3];
    uint8_t *mask[3];
    float *dout = rand_floats(out_n, -1.0, 1.0), *din0 = rand_floats(in_n, -1.0, 1.0);
    for (int r = 0; r < 3; r++) {
        plan_band_rows(&cv, bands[r]);
        const size_t col_n = nn_conv_col_floats(&cv);
        float *col = col_n ? xmalloc(col_n * sizeof *col) : NULL;
        out[r] = xmalloc(out_n * sizeof *out[r]);
        mask[r] = relu ? xmalloc(mask_len) : NULL;
        if (relu) memset(mask[r], 0xA5, mask_len);
        nn_conv_forward(out[r], mask[r], x, wt, b, &cv, col, threads[r]);
        float *d = copy_floats(dout, out_n);
        din[r] = copy_floats(din0, in_n);
        nn_conv_backward_input(din[r], d, mask[0], wt, &cv, col, threads[r]);
        free(d), free(col);
    }

    /* Forward reference. */
    size_t bad = 0, bad_mask = 0, first = 0;
    double worst = 0;
    for (int o = 0; o < k; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double sum = b[o], mag = fabs(b[o]);
                for (int ci = 0; ci < c; ci++)
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            const int iy = oy * s - cv.win.pad_t + ky, ix = ox * s - cv.win.pad_l + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            const double p = (double)bf16_round(wt[((size_t)(o * c + ci) * kh + ky) * kw + kx]) *
                                             bf16_round(x[((size_t)ci * h + iy) * w + ix]);
                            sum += p, mag += fabs(p);
                        }
                const double bound = (ckk + 1) * EPS_SUM * mag + TINY;
                const size_t i = (size_t)oy * ow + ox, at = (size_t)o * plane + i;
                const double want = relu && sum < 0 ? 0.0 : sum;
                if (!within(out[0][at], want, bound, &worst) && !bad++) first = at;
                if (relu && fabs(sum) > bound) bad_mask += bit(mask[0], plane, (size_t)o, i) != (sum > 0);
            }
    CHECK(bad == 0, "%s forward: %zu of %zu out of bound, first [%zu] = %.9g; worst |diff|/bound %.3g", what,
          bad, out_n, first, (double)out[0][first], worst);
    CHECK(bad_mask == 0, "%s forward: %zu ReLU mask bits wrong (away from 0)", what, bad_mask);
    if (worst > worst_conv) worst_conv = worst;

    /* Backward reference: din0 + W^T (dout masked by the forward's bits). */
    double *dsum = xmalloc(in_n * sizeof *dsum), *dmag = xmalloc(in_n * sizeof *dmag);
    for (size_t i = 0; i < in_n; i++) dsum[i] = din0[i], dmag[i] = fabs(din0[i]);
    for (int o = 0; o < k; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const size_t i = (size_t)oy * ow + ox;
                if (relu && !bit(mask[0], plane, (size_t)o, i)) continue;
                const double g = bf16_round(dout[(size_t)o * plane + i]);
                for (int ci = 0; ci < c; ci++)
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            const int iy = oy * s - cv.win.pad_t + ky, ix = ox * s - cv.win.pad_l + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            const size_t at = ((size_t)ci * h + iy) * w + ix;
                            const double p = g * bf16_round(wt[((size_t)(o * c + ci) * kh + ky) * kw + kx]);
                            dsum[at] += p, dmag[at] += fabs(p);
                        }
            }
    for (int r = 0; r < 2; r++) {
        bad = 0, worst = 0;
        for (size_t i = 0; i < in_n; i++) {
            const double bound = (k + kh * kw + 1) * EPS_SUM * dmag[i] + TINY;
            if (!within(din[r][i], dsum[i], bound, &worst) && !bad++) first = i;
        }
        CHECK(bad == 0,
              "%s backward (%s): %zu of %zu out of bound, first [%zu] = %.9g, want %.9g; worst |diff|/bound %.3g",
              what, r ? "bands of 2 rows" : "one band", bad, in_n, first, (double)din[r][first], dsum[first],
              worst);
        if (worst > worst_conv) worst_conv = worst;
    }

    /* Bands must not change the forward's bits: each output column is one
     * GEMM column, summed over all of C*KH*KW in the same order. Backward,
     * col2im adds a band's taps into din before the next band's, so a pixel
     * whose taps span two bands sums them in another order (as in float32):
     * bands are held to the bound above, threads to the bits. */
    for (int r = 1; r < 3; r++)
        CHECK(!memcmp(out[0], out[r], out_n * sizeof(float)) && (!relu || !memcmp(mask[0], mask[r], mask_len)),
              "%s forward: %s differs from one band, 2 threads", what, r == 1 ? "bands of 2 rows" : "1 thread");
    CHECK(!memcmp(din[0], din[2], in_n * sizeof(float)), "%s backward: 1 thread differs from 2 threads", what);
    for (int r = 0; r < 3; r++) free(out[r]), free(mask[r]), free(din[r]);
    free(wt), free(b), free(x), free(pw), free(pwt), free(scratch), free(dout), free(din0), free(dsum),
        free(dmag);
}

/* ---- 5. the real network on photos ----------------------------------------- */

/* Winograd F(4x4,3x3) (float32): the output against the double reference
 * on the same float operands, within the float32 rounding of its
 * transforms and GEMM sums: |diff| <= 4 (C*9 + 16) 2^-24 sum |w x| + 1e-30
 * (about C*9 + 16 roundings, each of terms up to a few |w x|; the worst
 * seen is below a hundredth of it, a wrong transform is far above); mask bits
 * where the output is clear of that bound, for one band and for bands of
 * one block row; one thread bit-identical to two; a scratch below one block
 * row refused. */
static void test_winograd(int c, int k, int h, int w, int same) {
    char what[96];
    snprintf(what, sizeof what, "winograd c%d k%d %dx%d %s", c, k, h, w, same ? "same" : "valid");
    nn_conv cv = {.c = c, .k = k, .cpu = nn_cpu()};
    CHECK(nn_window_plan(&cv.win, h, w, 3, 3, 1, 1, same), "%s: plan", what);
    CHECK(nn_winograd_applies(&cv), "%s: applies", what);
    const size_t plane = (size_t)cv.win.oh * cv.win.ow, n_out = (size_t)k * plane, n_in = (size_t)c * h * w;
    float *x = rand_floats(n_in, -1, 1), *wt = rand_floats((size_t)k * c * 9, -0.5, 0.5);
    float *bias = rand_floats((size_t)k, -0.2, 0.2);
    float *u = xmalloc(nn_winograd_weight_floats(&cv) * sizeof(float));
    nn_winograd_pack(u, wt, &cv);
    /* One block row for two threads, or all of them (4 output rows each). */
    const size_t row_floats = nn_winograd_row_floats(&cv, 0, 2), big = row_floats * (size_t)((cv.win.oh + 3) / 4);
    float *scratch = xmalloc(big * sizeof(float));
    float *out[3], *ref = xmalloc(n_out * sizeof(float)), *ref_abs = xmalloc(n_out * sizeof(float));
    uint8_t *mask[3];
    const size_t mask_bytes = (size_t)k * nn_mask_bytes(plane);
    /* 0: one band, 2 threads; 1: one block row per band; 2: one thread. */
    const size_t scratch_of[3] = {big, row_floats, big};
    const int threads_of[3] = {2, 2, 1};
    for (int r = 0; r < 3; r++) {
        out[r] = xmalloc(n_out * sizeof(float)), mask[r] = xmalloc(mask_bytes);
        memset(mask[r], 0x5a, mask_bytes);
        CHECK(nn_conv_forward_winograd(out[r], mask[r], x, u, bias, &cv, scratch, scratch_of[r], threads_of[r]),
              "%s: run %d refused", what, r);
    }
    CHECK(!nn_conv_forward_winograd(out[0], mask[0], x, u, bias, &cv, scratch, row_floats - 1, 2),
          "%s: a scratch below one block row was not refused", what);
    nn_conv_forward_ref(ref, x, wt, bias, 1, &cv);
    float *abs_w = xmalloc((size_t)k * c * 9 * sizeof(float)), *abs_x = xmalloc(n_in * sizeof(float));
    for (size_t i = 0; i < (size_t)k * c * 9; i++) abs_w[i] = fabsf(wt[i]);
    for (size_t i = 0; i < n_in; i++) abs_x[i] = fabsf(x[i]);
    nn_conv_forward_ref(ref_abs, abs_x, abs_w, NULL, 0, &cv);
    /* Both runs within the bound, and neither bands nor threads change a
     * bit (the tile sums over channels in order; OpenBLAS gets one call per
     * block row, as wide as the plane). */
    for (int r = 0; r < 2; r++) {
        size_t bad = 0, bad_bits = 0;
        for (size_t i = 0; i < n_out; i++) {
            const double bound =
                4.0 * (c * 9 + 16) * ldexp(1.0, -24) * (ref_abs[i] + fabs(bias[i / plane])) + 1e-30;
            if (!within(out[r][i], ref[i], bound, &worst_conv)) bad++;
            const size_t ch = i / plane, at = i % plane;
            if (fabs(ref[i]) > bound && bit(mask[r], plane, ch, at) != (ref[i] > 0)) bad_bits++;
        }
        CHECK(bad == 0, "%s, run %d: %zu of %zu outputs outside the float32 bound", what, r, bad, n_out);
        CHECK(bad_bits == 0, "%s, run %d: %zu mask bits wrong", what, r, bad_bits);
    }
    CHECK(!memcmp(out[0], out[2], n_out * sizeof(float)), "%s: one thread differs from two", what);
    CHECK(!memcmp(out[0], out[1], n_out * sizeof(float)), "%s: bands of one block row differ from one band", what);
    CHECK(!memcmp(mask[0], mask[2], mask_bytes), "%s: one thread's mask differs from two's", what);
    for (int r = 0; r < 3; r++) free(out[r]), free(mask[r]);
    free(x), free(wt), free(bias), free(u), free(scratch), free(ref), free(ref_abs), free(abs_w), free(abs_x);
}

static dd_image *load_photo(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    dd_image *im = load_image_file(path);
    CHECK(im, "%s: not loaded", path);
    return im;
}

static double pearson(const float *a, const float *b, size_t n) {
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        const double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    return sab / sqrt(saa * sbb);
}

static int gradient(dd_net *net, const float *x, float *g, double *objective, const char *what) {
    if (dd_net_gradient(net, x, g, objective) == DD_OK) return 1;
    CHECK(0, "%s: dd_net_gradient: %s", what, dd_last_error());
    return 0;
}

/* The fast gradient against the exact one of the same net; with extras, also
 * that switching fast mode off gives the exact gradient back bit for bit and
 * that a 1-thread net's fast gradient is the 2-thread one's. */
static void test_photo(const dd_model *model, const float *x, int h, int w, const char *photo,
                       const char *spec, int extras) {
    char what[160];
    snprintf(what, sizeof what, "%s %dx%d, objective %s", photo, w, h, spec);
    dd_term terms[16];
    int n_terms = 0;
    dd_net *net = NULL, *net1 = NULL;
    const size_t n = 3 * (size_t)h * w;
    float *g_exact = xmalloc(n * sizeof(float)), *g_fast = xmalloc(n * sizeof(float));
    float *g_again = xmalloc(n * sizeof(float));
    double obj_exact = 0, obj_fast = 0, obj_again = 0;
    if (dd_terms_parse(model, spec, terms, 16, &n_terms) || dd_net_new(model, terms, n_terms, h, w, 2, &net)) {
        CHECK(0, "%s: %s", what, dd_last_error());
        goto done;
    }
    CHECK(dd_net_fast(net) == 0, "%s: a new net reports fast mode", what);
    if (!gradient(net, x, g_exact, &obj_exact, what)) goto done;
    CHECK(dd_net_set_fast(net, 1) == DD_OK && dd_net_fast(net) == 1, "%s: set_fast(1) -> dd_net_fast %d", what,
          dd_net_fast(net));
    CHECK(dd_net_set_fast(net, 1) == DD_OK && dd_net_fast(net) == 1, "%s: set_fast(1) twice -> dd_net_fast %d",
          what, dd_net_fast(net));
    if (!gradient(net, x, g_fast, &obj_fast, what)) goto done;
    const double corr = pearson(g_exact, g_fast, n);
    const double rel = fabs(obj_fast - obj_exact) / fabs(obj_exact);
    fprintf(stderr, "test_fast: %s: objective exact %.7g fast %.7g (rel %.2e), gradient correlation %.5f\n", what,
            obj_exact, obj_fast, rel, corr);
    CHECK(corr > MIN_GRAD_CORR, "%s: fast gradient's correlation with the exact one %.5f <= %g", what, corr,
          MIN_GRAD_CORR);
    char what_obj[200];
    snprintf(what_obj, sizeof what_obj, "%s: fast objective", what);
    check_rel(what_obj, obj_fast, obj_exact, OBJECTIVE_REL);
    CHECK(dd_net_set_fast(net, 0) == DD_OK && dd_net_fast(net) == 0, "%s: set_fast(0) -> dd_net_fast %d", what,
          dd_net_fast(net));
    if (!extras) goto done;

    if (!gradient(net, x, g_again, &obj_again, what)) goto done;
    CHECK(!memcmp(g_again, g_exact, n * sizeof(float)) && obj_again == obj_exact,
          "%s: after set_fast(0) the gradient is not the exact one it was (objective %.9g, was %.9g)", what,
          obj_again, obj_exact);
    if (dd_net_new(model, terms, n_terms, h, w, 1, &net1) || dd_net_set_fast(net1, 1)) {
        CHECK(0, "%s, 1 thread: %s", what, dd_last_error());
        goto done;
    }
    if (!gradient(net1, x, g_again, &obj_again, what)) goto done;
    CHECK(!memcmp(g_again, g_fast, n * sizeof(float)) && obj_again == obj_fast,
          "%s: fast gradient with 1 thread differs from 2 threads", what);
done:
    dd_net_free(net), dd_net_free(net1);
    free(g_exact), free(g_fast), free(g_again);
}

static void test_photos(const char *dir) {
    dd_model *model = NULL;
    if (dd_model_load_default(&model)) {
        CHECK(0, "dd_model_load_default: %s", dd_last_error());
        return;
    }
    float divisor[3], offset[3];
    dd_model_input_mapping(model, divisor, offset);
    static const char *const photos[] = {"chelsea.png", "astronaut.png", "coffee.png"};
    for (int p = 0; p < 3; p++) {
        dd_image *im = load_photo(dir, photos[p]);
        if (!im) continue;
        const int w = dd_image_width(im), h = dd_image_height(im);
        CHECK(dd_image_channels(im) == 3 && dd_image_depth(im) == 8, "%s: %d channels, %d bits; want 8-bit RGB",
              photos[p], dd_image_channels(im), dd_image_depth(im));
        if (dd_image_channels(im) == 3) {
            const size_t plane = (size_t)w * h;
            float *x = xmalloc(3 * plane * sizeof *x);
            for (size_t i = 0; i < plane; i++)
                for (int c = 0; c < 3; c++) x[c * plane + i] = (float)(img_get(im, i * 3 + (size_t)c) / divisor[c] + offset[c]);
            /* The extra checks (exact gradient restored, 1 thread = 2 threads)
             * on the smallest photo only: each costs a full gradient. */
            test_photo(model, x, h, w, photos[p], dd_default_layers(), p == 0);
            test_photo(model, x, h, w, photos[p], "mixed5", p == 0);
            free(x);
        }
        dd_image_free(im);
    }
    dd_model_free(model);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_fast SAMPLES_DIR\n");
        return 2;
    }
    /* The bfloat16 parts need AVX512-BF16; the float32 Winograd the fast
     * mode runs for 3x3 convolutions runs everywhere. */
    const int bf16 = nn_cpu() >= NN_CPU_AVX512BF16;
    const nn_fast_kind kind = nn_cpu_fast(nn_cpu());
    const char *kernel = dd_fast_kernel();
    CHECK(kind == NN_FAST_BF16   ? kernel && !strcmp(kernel, "avx512bf16")
          : kind == NN_FAST_INT16 ? kernel && !strcmp(kernel, "int16")
                                  : !kernel,
          "dd_fast_kernel() = %s at level %s", kernel ? kernel : "NULL", nn_cpu_name(nn_cpu()));
    if (nn_cpu() >= NN_CPU_AVX2) test_i16_gemms();
    if (bf16) {
        test_gemm_rounding();
        test_gemm_specials();
        test_gemm_shapes();
        /* Every kernel shape of InceptionV3 on odd planes, with K and C*KH*KW
         * off the GEMM's 12-row and 32-column blocks. */
        test_conv(37, 29, 13, 11, 1, 1, 1, 1, 1);  /* pointwise: the input is B   */
        test_conv(8, 13, 13, 11, 1, 1, 2, 0, 0);   /* 1x1 stride 2: im2col        */
        test_conv(5, 19, 13, 11, 3, 3, 1, 1, 1);   /* 3x3/1 same                  */
        test_conv(6, 25, 15, 9, 3, 3, 1, 0, 0);    /* 3x3/1 valid                 */
        test_conv(7, 32, 13, 17, 3, 3, 2, 1, 1);   /* 3x3/2 same                  */
        test_conv(3, 32, 17, 15, 3, 3, 2, 0, 1);   /* 3x3/2 valid, the stem's     */
        test_conv(12, 14, 9, 13, 1, 7, 1, 1, 1);   /* 1x7 same                    */
        test_conv(12, 14, 13, 9, 7, 1, 1, 1, 0);   /* 7x1 same                    */
        test_conv(9, 24, 11, 13, 5, 5, 1, 1, 1);   /* 5x5 same                    */
        test_conv(4, 11, 9, 11, 5, 5, 1, 0, 0);    /* 5x5 valid                   */
        /* Planes at least 16 wide: stride-1 forwards pack B straight from the
         * input, vectors crossing output rows at every offset. */
        test_conv(5, 19, 7, 37, 3, 3, 1, 1, 1);    /* 3x3/1 same, ow 37           */
        test_conv(6, 13, 9, 21, 3, 3, 1, 0, 1);    /* 3x3/1 valid, ow 19          */
        test_conv(12, 14, 5, 40, 1, 7, 1, 1, 1);   /* 1x7 same, ow 40             */
        test_conv(12, 14, 11, 16, 7, 1, 1, 1, 1);  /* 7x1 same, ow 16             */
        test_conv(9, 24, 7, 33, 5, 5, 1, 1, 0);    /* 5x5 same, ow 33, no ReLU    */
        /* PyTorch's explicit pads: ResNet's and GoogLeNet's 7x7/2 stem, an
         * 11x11/4, InceptionV3's 1x7 (the packer reading the input), an
         * asymmetric 3x3 (only a hand-made graph has one). */
        memcpy(conv_pads, (const int[4]){3, 3, 3, 3}, sizeof conv_pads);
        test_conv(3, 16, 23, 21, 7, 7, 2, 2, 1);
        memcpy(conv_pads, (const int[4]){2, 2, 2, 2}, sizeof conv_pads);
        test_conv(3, 13, 27, 30, 11, 11, 4, 2, 0);
        memcpy(conv_pads, (const int[4]){0, 0, 3, 3}, sizeof conv_pads);
        test_conv(12, 14, 5, 40, 1, 7, 1, 2, 1);
        memcpy(conv_pads, (const int[4]){0, 2, 2, 1}, sizeof conv_pads);
        test_conv(5, 19, 7, 37, 3, 3, 1, 2, 1);
        memcpy(conv_pads, (const int[4]){1, 1, 1, 1}, sizeof conv_pads); /* a padded 1x1: no pointwise path */
        test_conv(9, 13, 6, 20, 1, 1, 1, 2, 1);
        fprintf(stderr, "test_fast: convolutions: worst |diff| / bound %.3g\n", worst_conv);
    } else {
        fprintf(stderr, "test_fast: level %s: no AVX512-BF16, so the bfloat16 GEMMs and convolutions are not run\n",
                nn_cpu_name(nn_cpu()));
        worst_conv = 0;
    }
    worst_conv = 0;
    test_winograd(3, 5, 7, 9, 1);     /* the smallest: one block row each way     */
    test_winograd(32, 32, 19, 17, 0); /* conv2's channels, valid, odd output      */
    test_winograd(32, 64, 16, 21, 1); /* conv3's, same                            */
    test_winograd(13, 29, 11, 14, 1); /* K and C off every block                  */
    test_winograd(5, 7, 9, 70, 1);    /* 35 blocks a row: 16-block vector paths   */
    test_winograd(4, 6, 8, 67, 0);    /* valid, 65 wide, odd: vector and tail     */
    fprintf(stderr, "test_fast: winograd: worst |diff| / bound %.3g\n", worst_conv);

    /* The real network's fast mode with every fast kernel the CPU has,
     * whichever one it would choose. */
    static const nn_fast_kind kinds[] = {NN_FAST_BF16, NN_FAST_INT16};
    for (int i = 0; i < 2; i++) {
        nn_cpu_force_fast(kinds[i]);
        if (nn_cpu_fast(nn_cpu()) == kinds[i]) {
            fprintf(stderr, "test_fast: the network with %s products\n", kinds[i] == NN_FAST_BF16 ? "bfloat16" : "int16");
            test_photos(argv[1]);
        }
    }
    nn_cpu_force_fast(-1);
    return check_done("test_fast");
}
