/* bench_metering.c - the CPU cost of metering per viewer-second.
 *
 * Simulates N paying viewers in one process with the real pure core
 * (libpaystream_core: meter.c, records.c, spool.c, signature.c), driven the
 * way plugin/metering.c (the ticker) and plugin/billing.c (the usage thread)
 * drive it, one simulated second after the other, as fast as it can:
 *
 *   tick     the ticker's visit of every viewer, as metering.c makes it:
 *            its second accounted from its media marks with
 *            paystream_meter_tick_seconds(), and
 *            when its billing_interval is up, paystream_meter_take_record()
 *            + paystream_record_tick() into the backlog buffer under its
 *            mutex (under a room's lock there), one viewer after the other
 *   records  the backlog handed to paystream_spool_append_text() in one
 *            call (journal lines with their checksums, the spool's copies)
 *   commit   one paystream_spool_commit() (write + fdatasync)
 *   batches  while records are pending: a batch id, the body's head
 *            (paystream_billing_batch_body_begin), paystream_spool_begin_batch
 *            (writes + fdatasyncs the batch line, appends the records' text
 *            to the body), the body's end,
 *            paystream_signature_header() over it,
 *            paystream_spool_ack_batch() (no HTTP: see bench_delivery)
 *   compact  paystream_spool_compact() when the journal passed half of
 *            spool_max_bytes once drained, as the usage thread does
 *
 * Viewers' record times are staggered (their sessions started at different
 * times), so with billing_interval 10 a tenth of them spool a record each
 * second, as in the plugin. Session starts are spooled and drained before
 * the warm-up; the warm-up (billing_interval seconds) is not measured.
 *
 * Prints, per run and as the median of the runs, nanoseconds per
 * viewer-second (wall clock) for each phase, and CPU nanoseconds for the
 * phases that wait on the disk. Under valgrind --tool=callgrind the
 * measured seconds are dumped on their own ("measured" dump), the phases
 * being the functions bench_phase_*.
 *
 *   bench_metering [--sessions N] [--seconds S] [--interval I] [--runs R]
 *                  [--dir BASE] [--spool-max BYTES] [--per-room V] [--batch-max N]
 */
#include <getopt.h>
#include <unistd.h>

#include <valgrind/callgrind.h>

#include "billing_http.h"
#include "meter.h"
#include "records.h"
#include "settings.h"
#include "signature.h"
#include "spool.h"
#include "ids.h"

#include "bench_common.h"

#define BENCH_PRICE 10
#define BENCH_SECRET "bench-billing-secret"
#define BENCH_INSTANCE "bench-instance"

typedef struct bench_viewer {
	paystream_meter meter;
	paystream_record_source source;
	char *session;
	const char *room;
	char *viewer;
	gint64 last_record_ms;
	paystream_media_marks media;	/* marked by the relay, read by the ticker */
} bench_viewer;

typedef struct bench_phase {
	gint64 wall, cpu;
} bench_phase;

enum { PH_TICK, PH_RECORDS, PH_COMMIT, PH_BEGIN, PH_BODY, PH_SIGN, PH_ACK, PH_COMPACT, PH_N };
static const char *const phase_names[PH_N] = {
	"tick", "records", "commit", "begin_batch", "body", "sign", "ack", "compact"
};

typedef struct bench_run {
	bench_phase ph[PH_N];
	guint64 records, batches, compactions;
} bench_run;

static guint bench_interval = 1;
static guint bench_batch_max = PAYSTREAM_DEFAULT_BATCH_MAX;	/* billing_batch_max */
static guint64 bench_spool_max = 64 * 1024 * 1024;	/* the plugin's default */
static gint64 bench_usage_seconds;	/* room counters, as the ticker keeps them */
static gint64 bench_usage_amount;
static char *bench_instance_json;
/* metering.c's backlog: records as JSON lines, under a mutex. */
static GString *bench_backlog;
static GMutex bench_backlog_mutex;
/* billing.c's usage thread: one body buffer for every batch. */
static GString *bench_body;

static void fail(const char *what, int rc) {
	fprintf(stderr, "bench_metering: %s: %s\n", what, paystream_spool_status_name(rc));
	exit(1);
}

/* The relay marks every viewer as served during the second (not measured
 * as metering: it happens per packet in the media path). */
static __attribute__((noinline)) void bench_relay(bench_viewer **v, guint n, guint64 second) {
	for(guint i = 0; i < n; i++)
		paystream_meter_mark(&v[i]->media, second);
}

/* The ticker's visit of every viewer, as metering.c makes it (under the
 * room's lock there): the second just ended accounted from its media marks,
 * and when its billing_interval is up, its tick record written into the
 * backlog under the backlog's mutex. Returns the records written. */
static __attribute__((noinline)) guint64 bench_phase_tick(bench_viewer **v, guint n, guint64 second,
		gint64 now_ms) {
	guint64 written = 0;
	paystream_record_clock pass_clock = { 0 }, *clock = &pass_clock;	/* one per pass, as metering.c */
	for(guint i = 0; i < n; i++) {
		bench_viewer *viewer = v[i];
		guint counted = paystream_meter_tick_seconds(&viewer->meter, &viewer->media, second, second + 1, now_ms);
		if(counted > 0) {
			bench_usage_seconds += counted;
			bench_usage_amount += viewer->meter.price_per_second * (gint64)counted;
		}
		if(now_ms - viewer->last_record_ms < (gint64)bench_interval * 1000)
			continue;
		viewer->last_record_ms = now_ms;
		paystream_meter_record r;
		if(!paystream_meter_take_record(&viewer->meter, &r))
			continue;
		g_mutex_lock(&bench_backlog_mutex);
		paystream_record_tick(bench_backlog, &viewer->source, &r, clock);
		g_string_append_c(bench_backlog, '\n');
		g_mutex_unlock(&bench_backlog_mutex);
		written++;
	}
	return written;
}

/* The ticker's flush: the backlog to the spool in one call. */
static __attribute__((noinline)) void bench_phase_records(paystream_spool *s) {
	gsize taken = 0;
	int rc = paystream_spool_append_text(s, bench_backlog->str, bench_backlog->len, &taken);
	if(rc != PAYSTREAM_SPOOL_OK)
		fail("append", rc);
	g_string_truncate(bench_backlog, 0);
}

static __attribute__((noinline)) void bench_phase_commit(paystream_spool *s) {
	int rc = paystream_spool_commit(s);
	if(rc != PAYSTREAM_SPOOL_OK)
		fail("commit", rc);
}

/* As billing.c's usage loop: a fresh batch id, the body's head, then the
 * spool appends the records to it. */
static __attribute__((noinline)) int bench_phase_begin_batch(paystream_spool *s, GString *body, char **id) {
	*id = paystream_random_uuid();
	paystream_billing_batch_body_begin(body, *id, bench_instance_json, g_get_real_time() / 1000);
	int rc = paystream_spool_begin_batch(s, *id, bench_batch_max, body, NULL);
	if(rc != PAYSTREAM_SPOOL_OK)
		g_free(*id);
	return rc;
}

static __attribute__((noinline)) void bench_phase_body(GString *body) {
	paystream_billing_batch_body_end(body);
}

static __attribute__((noinline)) char *bench_phase_sign(const GString *body) {
	return paystream_signature_header(BENCH_SECRET, time(NULL), body->str, body->len);
}

static __attribute__((noinline)) void bench_phase_ack(paystream_spool *s, const char *id) {
	int rc = paystream_spool_ack_batch(s, id);
	if(rc != PAYSTREAM_SPOOL_OK)
		fail("ack", rc);
}

static __attribute__((noinline)) void bench_phase_compact(paystream_spool *s) {
	int rc = paystream_spool_compact(s);
	if(rc != PAYSTREAM_SPOOL_OK)
		fail("compact", rc);
}

#define TIMED(run, which, stmt) do { \
		gint64 w0_ = bench_now_ns(), c0_ = bench_cpu_ns(); \
		stmt; \
		if((run) != NULL) { \
			(run)->ph[which].wall += bench_now_ns() - w0_; \
			(run)->ph[which].cpu += bench_cpu_ns() - c0_; \
		} \
	} while(0)

/* Drain the spool as the usage thread does (minus the HTTP call). */
static void bench_drain(paystream_spool *s, bench_run *run) {
	for(;;) {
		char *id = NULL;
		int rc;
		TIMED(run, PH_BEGIN, rc = bench_phase_begin_batch(s, bench_body, &id));
		if(rc == PAYSTREAM_SPOOL_ERR_EMPTY)
			break;
		if(rc != PAYSTREAM_SPOOL_OK)
			fail("begin_batch", rc);
		char *sig;
		TIMED(run, PH_BODY, bench_phase_body(bench_body));
		TIMED(run, PH_SIGN, sig = bench_phase_sign(bench_body));
		/* (the POST happens here in the plugin) */
		TIMED(run, PH_ACK, bench_phase_ack(s, id));
		if(run != NULL)
			run->batches++;
		g_free(sig);
		g_free(id);
	}
	if(paystream_spool_bytes(s) > bench_spool_max / 2) {
		TIMED(run, PH_COMPACT, bench_phase_compact(s));
		if(run != NULL)
			run->compactions++;
	}
}

/* One simulated second: the ticker's round, then the usage thread's. */
static void bench_second(paystream_spool *s, bench_viewer **v, guint n, gint64 now_ms, bench_run *run) {
	guint64 second = (guint64)(now_ms / 1000);
	bench_relay(v, n, second);
	guint64 spooled;
	TIMED(run, PH_TICK, spooled = bench_phase_tick(v, n, second, now_ms));
	TIMED(run, PH_RECORDS, bench_phase_records(s));
	TIMED(run, PH_COMMIT, bench_phase_commit(s));
	if(run != NULL)
		run->records += spooled;
	bench_drain(s, run);
}

static void bench_one_run(const char *base, guint n, guint seconds, guint per_room, bench_run *run) {
	memset(run, 0, sizeof(*run));
	char *dir = bench_tempdir(base, "paystream-bench-spool");
	GError *error = NULL;
	paystream_spool *s = paystream_spool_open(dir, bench_spool_max, NULL, &error);
	if(s == NULL) {
		fprintf(stderr, "bench_metering: %s\n", error->message);
		exit(1);
	}
	guint rooms = (n + per_room - 1) / per_room;
	char **room_ids = g_new0(char *, rooms);
	for(guint r = 0; r < rooms; r++)
		room_ids[r] = g_strdup_printf("room-%05u", r);
	gint64 t0 = (g_get_real_time() / 1000000) * 1000;
	bench_viewer **v = g_new0(bench_viewer *, n);
	for(guint i = 0; i < n; i++) {
		bench_viewer *viewer = g_new0(bench_viewer, 1);
		viewer->session = paystream_random_uuid();
		viewer->room = room_ids[i / per_room];
		viewer->viewer = g_strdup_printf("viewer-%07u", i);
		paystream_meter_init(&viewer->meter, BENCH_PRICE, "CRD", PAYSTREAM_METER_NO_BUDGET);
		/* Sessions began at different times within the interval. */
		viewer->last_record_ms = t0 - (gint64)(i % bench_interval) * 1000;
		paystream_record_ids ids = { viewer->session, viewer->room, viewer->viewer };
		paystream_record_source_init(&viewer->source, &ids, viewer->meter.currency);
		paystream_record_session_start(bench_backlog, &viewer->source, viewer->last_record_ms, BENCH_PRICE);
		int rc = paystream_spool_append_text(s, bench_backlog->str, bench_backlog->len, NULL);
		g_string_truncate(bench_backlog, 0);
		if(rc != PAYSTREAM_SPOOL_OK)
			fail("append session_start", rc);
		v[i] = viewer;
		if(i % 10000 == 9999) {
			bench_phase_commit(s);
			bench_drain(s, NULL);
		}
	}
	bench_phase_commit(s);
	bench_drain(s, NULL);
	/* Warm-up: one full interval, so that every viewer has spooled a tick. */
	gint64 now = t0;
	for(guint k = 0; k < bench_interval; k++) {
		now += 1000;
		bench_second(s, v, n, now, NULL);
	}
	CALLGRIND_ZERO_STATS;
	for(guint k = 0; k < seconds; k++) {
		now += 1000;
		bench_second(s, v, n, now, run);
	}
	CALLGRIND_DUMP_STATS_AT("measured");
	paystream_spool_close(s);
	for(guint i = 0; i < n; i++) {
		paystream_meter_clear(&v[i]->meter);
		paystream_record_source_clear(&v[i]->source);
		g_free(v[i]->session);
		g_free(v[i]->viewer);
		g_free(v[i]);
	}
	g_free(v);
	for(guint r = 0; r < rooms; r++)
		g_free(room_ids[r]);
	g_free(room_ids);
	bench_rmdir(dir);
	g_free(dir);
}

static void usage(void) {
	fprintf(stderr, "usage: bench_metering [--sessions N] [--seconds S] [--interval I] [--runs R]\n"
		"                      [--dir BASE] [--spool-max BYTES] [--per-room V] [--batch-max N]\n");
	exit(2);
}

int main(int argc, char **argv) {
	guint n = 1000, seconds = 10, runs = 3, per_room = 100;
	const char *base = "/var/tmp";
	static const struct option opts[] = {
		{ "sessions", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "spool-max", required_argument, NULL, 'm' },
		{ "per-room", required_argument, NULL, 'p' },
		{ "batch-max", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch(c) {
		case 'n': n = (guint)strtoul(optarg, NULL, 10); break;
		case 's': seconds = (guint)strtoul(optarg, NULL, 10); break;
		case 'i': bench_interval = (guint)strtoul(optarg, NULL, 10); break;
		case 'r': runs = (guint)strtoul(optarg, NULL, 10); break;
		case 'd': base = optarg; break;
		case 'm': bench_spool_max = g_ascii_strtoull(optarg, NULL, 10); break;
		case 'p': per_room = (guint)strtoul(optarg, NULL, 10); break;
		case 'b': bench_batch_max = (guint)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if(n == 0 || seconds == 0 || bench_interval == 0 || runs == 0 || per_room == 0 || bench_batch_max == 0)
		usage();
	bench_instance_json = paystream_record_quote(BENCH_INSTANCE);
	bench_backlog = g_string_sized_new(1024 * 1024);
	bench_body = g_string_sized_new(256 * 1024);
	printf("# bench_metering: %u sessions, billing_interval %u s, %u measured s, %u run(s), spool in %s\n",
		n, bench_interval, seconds, runs, base);
	printf("# ns per viewer-second (wall); cpu = thread CPU ns per viewer-second\n");
	printf("%-6s %9s %8s %8s %8s %9s %8s %8s %8s %8s %9s %9s\n", "run", "records", "tick", "records",
		"commit", "beg_batch", "body", "sign", "ack", "compact", "TOTAL", "TOTALcpu");
	double (*vals)[PH_N + 2] = g_malloc0(sizeof(double[PH_N + 2]) * runs);
	double (*cpus)[PH_N] = g_malloc0(sizeof(double[PH_N]) * runs);
	for(guint r = 0; r < runs; r++) {
		bench_run run;
		bench_one_run(base, n, seconds, per_room, &run);
		double vs = (double)n * seconds;
		double total = 0, total_cpu = 0;
		for(int p = 0; p < PH_N; p++) {
			vals[r][p] = run.ph[p].wall / vs;
			cpus[r][p] = run.ph[p].cpu / vs;
			total += run.ph[p].wall;
			total_cpu += run.ph[p].cpu;
		}
		vals[r][PH_N] = total / vs;
		/* CPU of all phases (fsync waits excluded): what the machine spends. */
		vals[r][PH_N + 1] = total_cpu / vs;
		printf("%-6u %9" G_GUINT64_FORMAT, r + 1, run.records);
		for(int p = 0; p < PH_N; p++)
			printf(" %*.1f", p == PH_BEGIN ? 9 : 8, vals[r][p]);
		printf(" %9.1f %9.1f\n", vals[r][PH_N], vals[r][PH_N + 1]);
		printf("#      batches %" G_GUINT64_FORMAT ", compactions %" G_GUINT64_FORMAT
			", commit cpu %.1f ns, begin_batch cpu %.1f ns, compact cpu %.1f ns per viewer-second\n",
			run.batches, run.compactions, run.ph[PH_COMMIT].cpu / vs, run.ph[PH_BEGIN].cpu / vs,
			run.ph[PH_COMPACT].cpu / vs);
		fflush(stdout);
	}
	printf("%-6s %9s", "median", "");
	double *col = g_new(double, runs);
	for(int p = 0; p < PH_N + 2; p++) {
		for(guint r = 0; r < runs; r++)
			col[r] = vals[r][p];
		printf(" %*.1f", p == PH_BEGIN || p >= PH_N ? 9 : 8, bench_median(col, (int)runs));
	}
	printf("\n");
	/* One machine-readable line for bench/run. */
	printf("RESULT metering sessions=%u interval=%u", n, bench_interval);
	for(int p = 0; p < PH_N + 2; p++) {
		for(guint r = 0; r < runs; r++)
			col[r] = vals[r][p];
		static const char *const extra[] = { "total", "total_cpu" };
		printf(" %s=%.1f", p < PH_N ? phase_names[p] : extra[p - PH_N], bench_median(col, (int)runs));
	}
	/* Each phase's thread CPU too (the fdatasync waits left out). */
	for(int p = 0; p < PH_N; p++) {
		for(guint r = 0; r < runs; r++)
			col[r] = cpus[r][p];
		printf(" %s_cpu=%.1f", phase_names[p], bench_median(col, (int)runs));
	}
	printf("\n");
	g_free(vals);
	g_free(cpus);
	g_free(col);
	return 0;
}
