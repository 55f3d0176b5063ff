/* Assertions for tests: each failed check prints what and by how much, the
 * test goes on to report every mismatch, and exits non-zero at the end. */
#ifndef DD_TEST_CHECK_H
#define DD_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures;
static double check_worst;             /* largest |diff| / tol of check_close */
static char check_worst_what[256];

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            check_failures++;                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* |got - want| <= tol; returns whether it held. */
static inline int check_close(const char *what, double got, double want, double tol) {
    const double diff = fabs(got - want);
    if (tol > 0 && diff / tol > check_worst) {
        check_worst = diff / tol;
        snprintf(check_worst_what, sizeof check_worst_what, "%s", what);
    }
    if (!(diff <= tol)) {
        check_failures++;
        fprintf(stderr, "FAIL %s: got %.10g, want %.10g, |diff| %.3g > tol %.3g\n", what, got, want,
                diff, tol);
        return 0;
    }
    return 1;
}

static inline int check_rel(const char *what, double got, double want, double rel) {
    return check_close(what, got, want, rel * fabs(want));
}

static inline int check_done(const char *test) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", test, check_failures);
        return 1;
    }
    if (check_worst > 0)
        fprintf(stderr, "%s: all checks passed; the closest came to %.3g of its tolerance (%s)\n", test,
                check_worst, check_worst_what);
    else
        fprintf(stderr, "%s: all checks passed\n", test);
    return 0;
}

#endif
