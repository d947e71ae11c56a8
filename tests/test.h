/*
 * tests/test.h - the tiny test harness shared by every C test program.
 *
 * Each tests/NNNN-name.c is its own program. Inside, TEST_ASSERT() checks a
 * condition and prints "not ok - <sub-test>: <message>" on failure;
 * SUB_TEST_PASS() prints "ok - <sub-test>". tests/run.sh counts these lines
 * over every program and prints the closing "N passed, N failed" line.
 * Exit status: 0 if all sub-tests passed, 1 otherwise, 77 to skip the file.
 *
 *   SUB_TEST("parses defaults");
 *   TEST_ASSERT(x == 3, "x is %d", x);
 *   SUB_TEST_PASS();
 *   ...
 *   return TEST_DONE();
 */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *test_cur_ = "";
static int test_cur_failed_ = 0;
static int test_n_failed_ = 0;
static int test_n_passed_ = 0;

#define SUB_TEST(name)                                                                   \
    do {                                                                                 \
        test_cur_ = (name);                                                              \
        test_cur_failed_ = 0;                                                            \
    } while (0)

/* Records a failure of the current sub-test and continues. */
#define TEST_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            printf("not ok - %s: %s:%d: (%s) ", test_cur_, __FILE__, __LINE__, #cond);  \
            printf(__VA_ARGS__);                                                         \
            printf("\n");                                                                \
            fflush(stdout);                                                              \
            if (!test_cur_failed_)                                                       \
                test_n_failed_++;                                                        \
            test_cur_failed_ = 1;                                                        \
        }                                                                                \
    } while (0)

/* Like TEST_CHECK but leaves the enclosing function on failure (returns `ret`). */
#define TEST_ASSERT_RET(ret, cond, ...)                                                  \
    do {                                                                                 \
        TEST_CHECK(cond, __VA_ARGS__);                                                   \
        if (!(cond))                                                                     \
            return ret;                                                                  \
    } while (0)

/* Fatal check inside main(): prints and exits the program with failure.
 * \p cond is evaluated once. */
#define TEST_ASSERT(cond, ...)                                                           \
    do {                                                                                 \
        int test_ok_ = !!(cond);                                                         \
        if (!test_ok_) {                                                                 \
            printf("not ok - %s: %s:%d: (%s) ", test_cur_, __FILE__, __LINE__, #cond);  \
            printf(__VA_ARGS__);                                                         \
            printf("\n");                                                                \
            test_n_failed_++;                                                            \
            printf("%d passed, %d failed\n", test_n_passed_, test_n_failed_);            \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define SUB_TEST_PASS()                                                                  \
    do {                                                                                 \
        if (!test_cur_failed_) {                                                         \
            printf("ok - %s\n", test_cur_);                                              \
            fflush(stdout);                                                              \
            test_n_passed_++;                                                            \
        }                                                                                \
    } while (0)

#define TEST_SKIP(...)                                                                   \
    do {                                                                                 \
        printf("skip - ");                                                               \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
        exit(77);                                                                        \
    } while (0)

#define TEST_DONE() (test_n_failed_ ? 1 : 0)

#endif
