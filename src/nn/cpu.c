/* The one place that decides which vector kernels run: the x86 CPU's level,
 * detected once, capped by the environment variable DD_CPU (so that every
 * path can be tested and timed on a machine that has a higher one) and by
 * tests through nn_cpu_cap. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "util/util.h"

static const char *const names[NN_CPU_LEVELS] = {"plain", "avx2", "avx512", "avx512bf16"};

const char *nn_cpu_name(nn_cpu_level level) {
    return level >= NN_CPU_PLAIN && level < NN_CPU_LEVELS ? names[level] : "?";
}

int nn_cpu_parse(const char *name, nn_cpu_level *out) {
    for (int i = 0; i < NN_CPU_LEVELS; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (nn_cpu_level)i;
            return 1;
        }
    return 0;
}

/* What the CPU and the operating system support; our AVX2 kernels also
 * use FMA. */
static nn_cpu_level detect(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return NN_CPU_PLAIN;
    if (!__builtin_cpu_supports("avx512f")) return NN_CPU_AVX2;
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16")) return NN_CPU_AVX512BF16;
    return NN_CPU_AVX512;
#else
    return NN_CPU_PLAIN;
#endif
}

/* Computed once; racing first callers compute the same values. */
static atomic_int detected = -1, env_cap = -1, test_cap = NN_CPU_LEVELS;

nn_cpu_level nn_cpu_detected(void) {
    int d = atomic_load_explicit(&detected, memory_order_relaxed);
    if (d < 0) atomic_store_explicit(&detected, d = (int)detect(), memory_order_relaxed);
    return (nn_cpu_level)d;
}

/* DD_CPU's level, NN_CPU_LEVELS when unset or not a level's name. */
static int env_level(void) {
    int e = atomic_load_explicit(&env_cap, memory_order_relaxed);
    if (e < 0) {
        nn_cpu_level level;
        e = nn_cpu_parse(getenv("DD_CPU"), &level) ? (int)level : NN_CPU_LEVELS;
        atomic_store_explicit(&env_cap, e, memory_order_relaxed);
    }
    return e;
}

nn_cpu_level nn_cpu(void) {
    int level = (int)nn_cpu_detected();
    const int e = env_level(), t = atomic_load_explicit(&test_cap, memory_order_relaxed);
    if (e < level) level = e;
    if (t < level) level = t;
    return (nn_cpu_level)level;
}

void nn_cpu_cap(nn_cpu_level cap) { atomic_store_explicit(&test_cap, (int)cap, memory_order_relaxed); }

static int is_amd(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

static atomic_int forced_fast = -1;

void nn_cpu_force_fast(int kind) { atomic_store_explicit(&forced_fast, kind, memory_order_relaxed); }

/* Which products make the fast mode faster, measured per instruction
 * against a float32 FMA of the same width (docs/PERFORMANCE.md): on AMD's
 * Zen 4 VDPBF16PS does twice an FMA's multiply-adds at the same rate; on
 * Intel's Sapphire Rapids it runs at a quarter of the FMA's rate (half its
 * multiply-adds per second), and even VPDPWSSD does fewer than 512-bit FMAs,
 * so the float32 tile is the fastest there; with AVX2 only, VPMADDWD +
 * VPADDD beat 256-bit FMAs (1.3-1.4x on the net's GEMMs). */
nn_fast_kind nn_cpu_fast(nn_cpu_level level) {
    const int forced = atomic_load_explicit(&forced_fast, memory_order_relaxed);
    if (forced == NN_FAST_BF16) return level >= NN_CPU_AVX512BF16 ? NN_FAST_BF16 : NN_FAST_NONE;
    if (forced == NN_FAST_INT16) return level >= NN_CPU_AVX2 ? NN_FAST_INT16 : NN_FAST_NONE;
    if (forced == NN_FAST_NONE) return NN_FAST_NONE;
    if (level >= NN_CPU_AVX512BF16 && is_amd()) return NN_FAST_BF16;
    return level == NN_CPU_AVX2 ? NN_FAST_INT16 : NN_FAST_NONE;
}

dd_status dd_cpu_kernels(const char **name) {
    util_clear_error();
    const char *env = getenv("DD_CPU");
    nn_cpu_level level;
    if (name) *name = nn_cpu_name(nn_cpu());
    if (env && *env && !nn_cpu_parse(env, &level))
        return util_fail(DD_ERR_INVALID_ARG, "DD_CPU=%s: not one of plain, avx2, avx512, avx512bf16", env);
    return DD_OK;
}
