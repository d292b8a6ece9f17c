/* bench_delivery.c - billing delivery throughput: the usage thread's drain
 * loop against a billing service.
 *
 * Pre-fills a fresh spool (on disk, under --dir) with --records usage
 * records (a session_start for each of --sessions sessions, then ticks,
 * built with the real records.c and spooled with spool.c, committed every
 * 1000 appends as the ticker commits a round), then drains it exactly as
 * plugin/billing.c's usage thread does with a backlog: begin_batch(--batch-max,
 * default the plugin's billing_batch_max default)
 * (on disk before it is sent; the records' text), the body
 * paystream_billing_batch_body() around it, paystream_signature_header(), POST with one
 * reused libcurl handle and the same headers and options, on a 2xx
 * ack_batch and the reply's stop list parsed; then the compaction the usage
 * thread does once drained. One run per invocation.
 *
 * Prints records per second of the drain and where its wall time went:
 * the client's own work (spool, body, signature, ack, reply) and the HTTP
 * call, split by libcurl's timers into sending the request (pretransfer to
 * the end of the upload), waiting for the service (until the first byte of
 * the reply) and the rest. With --service-pid, also the CPU the service
 * process used during the drain (from /proc/PID/stat).
 *
 *   bench_delivery --url http://127.0.0.1:PORT --secret S [--records N]
 *                  [--sessions N] [--viewers N] [--dir BASE] [--service-pid PID]
 *                  [--batch-max N]
 */
#include <getopt.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>

#include "billing_http.h"
#include "ids.h"
#include "meter.h"
#include "records.h"
#include "settings.h"
#include "signature.h"
#include "spool.h"

#include "bench_common.h"

#define BENCH_SPOOL_MAX (64 * 1024 * 1024)

static void fail(const char *what, int rc) {
	fprintf(stderr, "bench_delivery: %s: %s\n", what, paystream_spool_status_name(rc));
	exit(1);
}


/* utime + stime of a process, in ns; -1 if unknown. */
static gint64 bench_proc_cpu_ns(long pid) {
	if(pid <= 0)
		return -1;
	char path[64], *text = NULL;
	g_snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if(!g_file_get_contents(path, &text, NULL, NULL))
		return -1;
	/* Fields after the ")" of the command name: state is field 3, utime 14, stime 15. */
	char *p = strrchr(text, ')');
	gint64 result = -1;
	if(p != NULL) {
		gchar **f = g_strsplit(p + 2, " ", 0);
		if(g_strv_length(f) > 13)
			result = (g_ascii_strtoll(f[11], NULL, 10) + g_ascii_strtoll(f[12], NULL, 10)) *
				(1000000000 / sysconf(_SC_CLK_TCK));
		g_strfreev(f);
	}
	g_free(text);
	return result;
}

/* When the reply's first byte (its status line) arrived. */
static gint64 bench_first_byte;
static size_t bench_curl_header(char *data, size_t size, size_t nmemb, void *user) {
	if(bench_first_byte == 0)
		bench_first_byte = bench_now_ns();
	return size * nmemb;
}

static gint64 bench_self_cpu_ns(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((gint64)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
		((gint64)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

int main(int argc, char **argv) {
	const char *url = NULL, *secret = "bench-billing-secret", *base = "/var/tmp";
	guint records = 200000, sessions = 1000, viewers = 250, batch_max = PAYSTREAM_DEFAULT_BATCH_MAX;
	long service_pid = 0;
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "secret", required_argument, NULL, 'k' },
		{ "records", required_argument, NULL, 'n' },
		{ "sessions", required_argument, NULL, 's' },
		{ "viewers", required_argument, NULL, 'v' },
		{ "dir", required_argument, NULL, 'd' },
		{ "service-pid", required_argument, NULL, 'p' },
		{ "batch-max", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch(c) {
		case 'u': url = optarg; break;
		case 'k': secret = optarg; break;
		case 'n': records = (guint)strtoul(optarg, NULL, 10); break;
		case 's': sessions = (guint)strtoul(optarg, NULL, 10); break;
		case 'v': viewers = (guint)strtoul(optarg, NULL, 10); break;
		case 'd': base = optarg; break;
		case 'p': service_pid = strtol(optarg, NULL, 10); break;
		case 'b': batch_max = (guint)strtoul(optarg, NULL, 10); break;
		default: url = NULL; optind = argc; break;
		}
	}
	if(url == NULL || records < sessions || sessions == 0 || viewers == 0 || batch_max == 0) {
		fprintf(stderr, "usage: bench_delivery --url http://HOST:PORT --secret S [--records N] [--sessions N]\n"
			"                      [--viewers N] [--dir BASE] [--service-pid PID] [--batch-max N]\n");
		return 2;
	}
	char *endpoint = g_strdup_printf("%s/v1/usage", url);

	/* ---- fill ---- */
	char *dir = bench_tempdir(base, "paystream-bench-delivery");
	GError *error = NULL;
	paystream_spool *s = paystream_spool_open(dir, 0, NULL, &error);
	if(s == NULL) {
		fprintf(stderr, "bench_delivery: %s\n", error->message);
		return 1;
	}
	gint64 fill0 = bench_now_ns();
	gint64 t0 = g_get_real_time() / 1000 - (gint64)(records / sessions + 1) * 1000;
	paystream_meter *meters = g_new0(paystream_meter, sessions);
	char **ids_s = g_new0(char *, sessions), **ids_v = g_new0(char *, sessions), **ids_r = g_new0(char *, sessions);
	guint spooled = 0;
	paystream_record_source *sources = g_new0(paystream_record_source, sessions);
	GString *text = g_string_new(NULL);
	for(guint i = 0; i < sessions; i++) {
		ids_s[i] = paystream_random_uuid();
		ids_v[i] = g_strdup_printf("viewer-%05u", i % viewers);
		ids_r[i] = g_strdup_printf("room-%03u", i / 100);
		paystream_meter_init(&meters[i], 10, "CRD", PAYSTREAM_METER_NO_BUDGET);
		paystream_record_ids ids = { ids_s[i], ids_r[i], ids_v[i] };
		paystream_record_source_init(&sources[i], &ids, "CRD");
		g_string_truncate(text, 0);
		paystream_record_session_start(text, &sources[i], t0, 10);
		int rc = paystream_spool_append_text(s, text->str, text->len, NULL);
		if(rc != PAYSTREAM_SPOOL_OK)
			fail("append", rc);
		spooled++;
	}
	for(gint64 now = t0 + 1000; spooled < records; now += 1000) {
		for(guint i = 0; i < sessions && spooled < records; i++) {
			paystream_meter_tick(&meters[i], TRUE, now);
			paystream_meter_record r;
			paystream_meter_take_record(&meters[i], &r);
			g_string_truncate(text, 0);
			paystream_record_tick(text, &sources[i], &r, NULL);
			int rc = paystream_spool_append_text(s, text->str, text->len, NULL);
			if(rc != PAYSTREAM_SPOOL_OK)
				fail("append", rc);
			if(++spooled % 1000 == 0 && (rc = paystream_spool_commit(s)) != PAYSTREAM_SPOOL_OK)
				fail("commit", rc);
		}
	}
	int rc = paystream_spool_commit(s);
	if(rc != PAYSTREAM_SPOOL_OK)
		fail("commit", rc);
	double fill_s = (bench_now_ns() - fill0) / 1e9;
	guint64 journal = paystream_spool_bytes(s);

	/* ---- drain, as paystream_usage_loop() + paystream_send_batch() ---- */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *curl = curl_easy_init();
	GString *response = g_string_new(NULL);
	gint64 t_begin = 0, t_body = 0, t_sign = 0, t_http = 0, t_ack = 0, t_reply = 0, t_compact = 0;
	double h_wait = 0, h_total = 0;
	guint batches = 0, sent = 0, stops = 0;
	guint64 body_bytes = 0;
	gint64 svc0 = bench_proc_cpu_ns(service_pid), cpu0 = bench_self_cpu_ns();
	gint64 drain0 = bench_now_ns();
	char *instance_json = paystream_record_quote("bench-instance");
	GString *body = g_string_sized_new(256 * 1024);
	for(;;) {
		char *batch_id = paystream_random_uuid();
		guint count = 0;
		gint64 a = bench_now_ns();
		paystream_billing_batch_body_begin(body, batch_id, instance_json, g_get_real_time() / 1000);
		rc = paystream_spool_begin_batch(s, batch_id, batch_max, body, &count);
		gint64 b = bench_now_ns();
		t_begin += b - a;
		if(rc == PAYSTREAM_SPOOL_ERR_EMPTY) {
			g_free(batch_id);
			break;
		}
		if(rc != PAYSTREAM_SPOOL_OK)
			fail("begin_batch", rc);
		paystream_billing_batch_body_end(body);
		gint64 d = bench_now_ns();
		t_body += d - b;
		size_t len = body->len;
		char *signature = paystream_signature_header(secret, time(NULL), body->str, len);
		gint64 e = bench_now_ns();
		t_sign += e - d;
		/* The plugin's own request set-up (billing_http.c). */
		struct curl_slist *headers = paystream_billing_http_prepare(curl, endpoint, batch_id, signature,
			body->str, len, 60L, response);
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, bench_curl_header);
		bench_first_byte = 0;
		long status = 0;
		CURLcode cc = curl_easy_perform(curl);
		if(cc == CURLE_OK)
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		gint64 f = bench_now_ns();
		t_http += f - e;
		/* From the start of the call to the reply's first byte: sending the
		 * request (loopback: fast) and the service reading, checking and
		 * committing it. The rest: receiving the reply. */
		h_wait += bench_first_byte > 0 ? (bench_first_byte - e) / 1e9 : (f - e) / 1e9;
		h_total += (f - e) / 1e9;
		curl_slist_free_all(headers);
		g_free(signature);
		if(status < 200 || status >= 300) {
			fprintf(stderr, "bench_delivery: batch %s: HTTP %ld (%s): %.300s\n", batch_id, status,
				curl_easy_strerror(cc), response->str);
			return 1;
		}
		rc = paystream_spool_ack_batch(s, batch_id);
		if(rc != PAYSTREAM_SPOOL_OK)
			fail("ack", rc);
		gint64 g = bench_now_ns();
		t_ack += g - f;
		/* paystream_apply_stops(): parse the reply, walk its stop list. */
		json_t *root = response->len ? json_loads(response->str, 0, NULL) : NULL;
		stops += (guint)json_array_size(json_object_get(root, "stop"));
		if(root != NULL)
			json_decref(root);
		t_reply += bench_now_ns() - g;
		batches++;
		sent += count;
		body_bytes += len;
		g_free(batch_id);
	}
	g_string_free(body, TRUE);
	g_free(instance_json);
	gint64 h = bench_now_ns();
	if(paystream_spool_bytes(s) > BENCH_SPOOL_MAX / 2)
		paystream_spool_compact(s);
	t_compact = bench_now_ns() - h;
	gint64 drain = bench_now_ns() - drain0;
	gint64 cpu = bench_self_cpu_ns() - cpu0;
	gint64 svc1 = bench_proc_cpu_ns(service_pid);
	double ds = drain / 1e9;
	double http = t_http / 1e9;
	/* Everything but the HTTP call is the client's (frees included). */
	double client = ds - http;
	double other = client - (double)(t_begin + t_body + t_sign + t_ack + t_reply + t_compact) / 1e9;

	printf("# bench_delivery: %u records (%u sessions), spool in %s, journal %.1f MB, filled in %.2f s (%.0f records/s)\n",
		records, sessions, dir, journal / 1e6, fill_s, records / fill_s);
	printf("# %u batches, %u records, %.1f MB of bodies (%.0f bytes/record), %u stop entries in replies\n",
		batches, sent, body_bytes / 1e6, (double)body_bytes / sent, stops);
	printf("drain           %8.3f s   %9.0f records/s\n", ds, sent / ds);
	printf("  client        %8.3f s   %5.1f %%  (begin_batch %.3f, body %.3f, sign %.3f, ack %.3f, reply %.3f, compact %.3f, frees %.3f)\n",
		client, 100 * client / ds, t_begin / 1e9, t_body / 1e9, t_sign / 1e9, t_ack / 1e9, t_reply / 1e9,
		t_compact / 1e9, other);
	printf("  http          %8.3f s   %5.1f %%  (until the reply's first byte %.3f, reading the reply %.3f)\n",
		http, 100 * http / ds, h_wait, h_total - h_wait);
	printf("  cpu           client %.3f s", cpu / 1e9);
	if(svc0 >= 0 && svc1 >= 0)
		printf(", service %.3f s", (svc1 - svc0) / 1e9);
	printf("\n");
	printf("RESULT delivery records=%u rate=%.0f drain_s=%.3f client_s=%.3f http_s=%.3f wait_s=%.3f"
		" client_cpu_s=%.3f service_cpu_s=%.3f client_only_rate=%.0f\n",
		sent, sent / ds, ds, client, http, h_wait, cpu / 1e9,
		svc0 >= 0 && svc1 >= 0 ? (svc1 - svc0) / 1e9 : -1.0, sent / client);

	g_string_free(response, TRUE);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	paystream_spool_close(s);
	for(guint i = 0; i < sessions; i++) {
		paystream_meter_clear(&meters[i]);
		paystream_record_source_clear(&sources[i]);
		g_free(ids_s[i]);
		g_free(ids_v[i]);
		g_free(ids_r[i]);
	}
	g_free(meters);
	g_free(sources);
	g_string_free(text, TRUE);
	g_free(ids_s);
	g_free(ids_v);
	g_free(ids_r);
	bench_rmdir(dir);
	g_free(dir);
	g_free(endpoint);
	return 0;
}
