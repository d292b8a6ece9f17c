/*
 * unit.h - a tiny TAP (Test Anything Protocol) helper for the paystream unit
 * tests. Header only, no external framework; automake's tap-driver.sh reads
 * the output ('make check').
 *
 *	#include "unit.h"
 *
 *	int main(void) {
 *		plan(3);                      // or no_plan() and let done_testing() print the plan
 *		ok(1 + 1 == 2, "arithmetic");
 *		is_int(ps_answer(), 42, "the answer");
 *		is_str(ps_name(), "paystream", "the name");
 *		return done_testing();        // 0 when every test passed and the count matches
 *	}
 *
 * Every check returns its result (1 pass, 0 fail), so a test may stop early:
 *	if(!ok(p != NULL, "parsed")) return done_testing();
 * skip(n, why) records n passing "# SKIP" tests; diag(fmt, ...) prints a
 * "# " comment; bail_out(fmt, ...) aborts the whole test program.
 *
 * Each check is a macro so that failures report the test file and line.
 */
#ifndef PAYSTREAM_TESTS_UNIT_H
#define PAYSTREAM_TESTS_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define UNIT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define UNIT_UNUSED __attribute__((unused))
#else
#define UNIT_PRINTF(fmt, args)
#define UNIT_UNUSED
#endif

static int unit_planned_ = -1;	/* -1: no plan printed yet */
static int unit_run_ = 0;
static int unit_failed_ = 0;

static UNIT_UNUSED void plan(int n) {
	unit_planned_ = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static UNIT_UNUSED void no_plan(void) {
	unit_planned_ = -1;
}

static UNIT_UNUSED UNIT_PRINTF(1, 2) void diag(const char *fmt, ...) {
	va_list ap;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static UNIT_UNUSED UNIT_PRINTF(1, 2) void bail_out(const char *fmt, ...) {
	va_list ap;
	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(255);
}

static UNIT_UNUSED void unit_vresult_(int pass, const char *file, int line,
		const char *fmt, va_list ap) {
	unit_run_++;
	if(!pass)
		unit_failed_++;
	printf("%s %d - ", pass ? "ok" : "not ok", unit_run_);
	if(fmt != NULL)
		vprintf(fmt, ap);
	fputc('\n', stdout);
	if(!pass)
		printf("#   Failed test at %s line %d\n", file, line);
	fflush(stdout);
}

static UNIT_UNUSED UNIT_PRINTF(4, 5) int unit_ok_(int pass, const char *file, int line,
		const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	unit_vresult_(pass, file, line, fmt, ap);
	va_end(ap);
	return pass;
}

static UNIT_UNUSED UNIT_PRINTF(5, 6) int unit_is_int_(long long got, long long expected,
		const char *file, int line, const char *fmt, ...) {
	int pass = (got == expected);
	va_list ap;
	va_start(ap, fmt);
	unit_vresult_(pass, file, line, fmt, ap);
	va_end(ap);
	if(!pass) {
		printf("#          got: %lld\n#     expected: %lld\n", got, expected);
		fflush(stdout);
	}
	return pass;
}

static UNIT_UNUSED UNIT_PRINTF(5, 6) int unit_is_str_(const char *got, const char *expected,
		const char *file, int line, const char *fmt, ...) {
	int pass = (got == NULL || expected == NULL) ? (got == expected) : (strcmp(got, expected) == 0);
	va_list ap;
	va_start(ap, fmt);
	unit_vresult_(pass, file, line, fmt, ap);
	va_end(ap);
	if(!pass) {
		if(got != NULL)
			printf("#          got: \"%s\"\n", got);
		else
			printf("#          got: NULL\n");
		if(expected != NULL)
			printf("#     expected: \"%s\"\n", expected);
		else
			printf("#     expected: NULL\n");
		fflush(stdout);
	}
	return pass;
}

/* ok(cond, fmt, ...): passes when cond is true. */
#define ok(cond, ...) unit_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* is_int(got, expected, fmt, ...): integers (compared as long long). */
#define is_int(got, expected, ...) \
	unit_is_int_((long long)(got), (long long)(expected), __FILE__, __LINE__, __VA_ARGS__)
/* is_str(got, expected, fmt, ...): strings (strcmp; NULL equals only NULL). */
#define is_str(got, expected, ...) \
	unit_is_str_((got), (expected), __FILE__, __LINE__, __VA_ARGS__)
/* pass(fmt, ...) / fail(fmt, ...): unconditional results. */
#define pass(...) unit_ok_(1, __FILE__, __LINE__, __VA_ARGS__)
#define fail(...) unit_ok_(0, __FILE__, __LINE__, __VA_ARGS__)

/* skip(n, reason): counts n tests as skipped (they pass). */
static UNIT_UNUSED void skip(int n, const char *reason) {
	for(int i = 0; i < n; i++) {
		unit_run_++;
		printf("ok %d # SKIP %s\n", unit_run_, reason != NULL ? reason : "");
	}
	fflush(stdout);
}

/* done_testing(): prints the plan if none was given; returns the exit code:
 * 0 when all tests passed and as many ran as planned, 1 otherwise. */
static UNIT_UNUSED int done_testing(void) {
	if(unit_planned_ < 0) {
		printf("1..%d\n", unit_run_);
		unit_planned_ = unit_run_;
	} else if(unit_run_ != unit_planned_) {
		printf("# Looks like you planned %d tests but ran %d.\n", unit_planned_, unit_run_);
	}
	if(unit_failed_ > 0)
		printf("# Looks like you failed %d test%s of %d run.\n",
			unit_failed_, unit_failed_ == 1 ? "" : "s", unit_run_);
	fflush(stdout);
	return (unit_failed_ == 0 && unit_run_ == unit_planned_) ? 0 : 1;
}

#endif /* PAYSTREAM_TESTS_UNIT_H */
