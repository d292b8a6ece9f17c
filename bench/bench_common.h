/* bench_common.h - helpers shared by the paystream benchmarks: clocks,
 * medians, temporary spool folders, and the usage batch body exactly as
 * plugin/billing.c builds it (paystream_send_batch). */
#ifndef PAYSTREAM_BENCH_COMMON_H
#define PAYSTREAM_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

static inline gint64 bench_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread. */
static inline gint64 bench_cpu_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of n values (sorts a copy). */
static inline double bench_median(const double *v, int n) {
	double *c = g_memdup2(v, sizeof(double) * (gsize)n);
	qsort(c, (size_t)n, sizeof(double), bench_cmp_double);
	double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	g_free(c);
	return m;
}

/* A fresh folder under base (created if needed), for a spool. */
static inline char *bench_tempdir(const char *base, const char *what) {
	if(g_mkdir_with_parents(base, 0700) != 0) {
		fprintf(stderr, "cannot create %s\n", base);
		exit(2);
	}
	char *tmpl = g_strdup_printf("%s/%s.XXXXXX", base, what);
	if(g_mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "cannot create a folder in %s\n", base);
		exit(2);
	}
	return tmpl;
}

/* Remove a spool folder made by bench_tempdir (flat: files only). */
static inline void bench_rmdir(const char *dir) {
	GDir *d = g_dir_open(dir, 0, NULL);
	if(d != NULL) {
		const char *name;
		while((name = g_dir_read_name(d)) != NULL) {
			char *p = g_build_filename(dir, name, NULL);
			g_unlink(p);
			g_free(p);
		}
		g_dir_close(d);
	}
	g_rmdir(dir);
}

/* The usage batch body, built and serialized as billing.c does it. free() it. */
#endif
