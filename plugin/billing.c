/* billing.c - the billing threads, the spool they drain, and the HTTP calls
 * (see billing.h).
 *
 * Usage: every billing_interval the usage thread takes up to
 * billing_batch_max pending records from the spool as a batch (recorded in
 * the spool before it is sent), POSTs it, and on a 2xx acknowledges it and
 * applies the service's stop list. On anything else it retries that same
 * batch with backoff. Batches left unacknowledged by a previous run go first,
 * unchanged. While a backlog remains it sends without waiting.
 * Tips: the tip thread sends each spooled tip at once, retries with backoff
 * until tip_timeout, then reports it failed and stops retrying it. */
#include "billing.h"

#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include <debug.h>
#include <utils.h>

#include "backoff.h"
#include "billing_http.h"
#include "records.h"
#include "errors.h"
#include "ids.h"
#include "notify.h"
#include "signature.h"
#include "spool.h"

#define PAYSTREAM_RETRY_BASE_MS 250

static paystream_billing_callbacks paystream_callbacks;
static paystream_spool *paystream_billing_spool;
static char *paystream_billing_url, *paystream_billing_secret;
static char *paystream_billing_instance;	/* as a JSON string, quotes included */
static guint32 paystream_billing_interval, paystream_billing_timeout, paystream_retry_max, paystream_tip_timeout;
static guint32 paystream_batch_max;		/* records per usage batch */
static guint64 paystream_spool_max;

static GMutex paystream_billing_mutex;		/* guards everything below */
static GCond paystream_billing_wake;
static gboolean paystream_billing_running;
static GThread *paystream_usage_thread, *paystream_tips_thread;
static GHashTable *paystream_tips_due;		/* tip_id -> first attempt (monotonic us) */
static GHashTable *paystream_tips_done;		/* tip ids settled whose ack the spool could not take
											 * (tips thread only): never sent or told again */
static gint64 paystream_last_success;		/* unix ms of the last 2xx, 0: none */
/* Consecutive failed calls, counted apart for usage and tips: the two
 * threads call the service independently, and a tip answered during a usage
 * outage must not hide it. */
typedef enum paystream_call {
	PAYSTREAM_CALL_USAGE = 0,
	PAYSTREAM_CALL_TIP,
	PAYSTREAM_CALLS
} paystream_call;
static const char *const paystream_call_names[PAYSTREAM_CALLS] = { "usage", "tip" };
static guint paystream_failures[PAYSTREAM_CALLS];
static gboolean paystream_spool_full;
static gboolean paystream_spool_broken;	/* an fsync failed: the journal cannot be trusted until a restart */
static guint paystream_spool_failed_writes;	/* consecutive failed writes (ERR_IO), 0: writing */

gboolean paystream_billing_enabled(void) {
	return paystream_billing_spool != NULL;
}

/* ---- HTTP ------------------------------------------------------------ */

/* POST body to billing_url + path; returns the HTTP status, or 0 when no
 * reply came (timeout, connection error), with the reply's body in response. */
static long paystream_post(CURL *curl, const char *path, const char *key, const char *body, size_t len,
		GString *response) {
	char *url = g_strdup_printf("%s%s", paystream_billing_url, path);
	char *signature = paystream_signature_header(paystream_billing_secret, time(NULL), body, len);
	struct curl_slist *headers = paystream_billing_http_prepare(curl, url, key, signature, body, len,
		(long)paystream_billing_timeout, response);
	long status = 0;
	CURLcode rc = curl_easy_perform(curl);
	if(rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		JANUS_LOG(LOG_WARN, "[paystream] billing call %s failed: %s\n", path, curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	g_free(signature);
	g_free(url);
	return status;
}

/* Sleep until ms passed or the plugin stops; with wakeable, also until
 * woken (new records committed, a new tip). Returns FALSE when stopping. */
static gboolean paystream_billing_sleep_ms(guint ms, gboolean wakeable) {
	gint64 until = g_get_monotonic_time() + (gint64)ms * 1000;
	g_mutex_lock(&paystream_billing_mutex);
	while(paystream_billing_running && g_get_monotonic_time() < until) {
		/* A wake-up (or a spurious one) only makes a wakeable caller look
		 * for work early; a backoff waits its whole delay. */
		if(g_cond_wait_until(&paystream_billing_wake, &paystream_billing_mutex, until) && wakeable)
			break;
	}
	gboolean running = paystream_billing_running;
	g_mutex_unlock(&paystream_billing_mutex);
	return running;
}

static gboolean paystream_billing_wait_ms(guint ms) {
	return paystream_billing_sleep_ms(ms, TRUE);
}

static gboolean paystream_billing_backoff_ms(guint ms) {
	return paystream_billing_sleep_ms(ms, FALSE);
}

static gboolean paystream_billing_is_running(void) {
	g_mutex_lock(&paystream_billing_mutex);
	gboolean running = paystream_billing_running;
	g_mutex_unlock(&paystream_billing_mutex);
	return running;
}

static guint paystream_retry_delay(guint attempt) {
	guint32 r;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return paystream_backoff_delay_ms(attempt, PAYSTREAM_RETRY_BASE_MS, paystream_retry_max * 1000, r);
}

/* ---- the spool's health ------------------------------------------- */

/* New priced sessions are refused while the spool is full, broken or
 * failing to write (billing mutex held). */
static gboolean paystream_accepting_locked(void) {
	return !paystream_spool_full && !paystream_spool_broken && paystream_spool_failed_writes == 0;
}

static void paystream_spool_error_event(int rc) {
	paystream_notify(NULL, "spool_error", NULL, json_pack("{sssI}", "error", paystream_spool_status_name(rc),
		"spool_bytes", (json_int_t)paystream_spool_bytes(paystream_billing_spool)));
}

/* A spool call that writes returned rc: a commit (commit TRUE), or a batch
 * or a tip. ERR_IO is transient: the spool cut the failed write back and
 * keeps what it had buffered, so new priced sessions are refused only until
 * a commit writes it. ERR_BROKEN (a failed flush) is for good, until a
 * restart. Only commits move the transient state: a batch or tip line that
 * could not be written is dropped again, so the buffer may be empty after
 * it, and an empty commit proves nothing about the disk; a failed commit
 * keeps its lines, so the next commit that succeeds wrote them. */
static void paystream_spool_written(int rc, gboolean commit) {
	if(rc != PAYSTREAM_SPOOL_ERR_BROKEN && (!commit || (rc != PAYSTREAM_SPOOL_OK && rc != PAYSTREAM_SPOOL_ERR_IO)))
		return;
	g_mutex_lock(&paystream_billing_mutex);
	guint failed = paystream_spool_failed_writes;
	gboolean was_broken = paystream_spool_broken;
	if(rc == PAYSTREAM_SPOOL_OK)
		paystream_spool_failed_writes = 0;
	else if(rc == PAYSTREAM_SPOOL_ERR_IO)
		paystream_spool_failed_writes++;
	else
		paystream_spool_broken = TRUE;
	gboolean accepting = paystream_accepting_locked();
	g_mutex_unlock(&paystream_billing_mutex);
	if(rc == PAYSTREAM_SPOOL_OK && failed > 0 && !was_broken) {
		JANUS_LOG(LOG_INFO, "[paystream] spool: written again after %u failed write(s)%s\n", failed,
			accepting ? ": priced sessions accepted again" : "");
		paystream_notify(NULL, "spool_recovered", NULL, json_pack("{sssIsI}", "error",
			paystream_spool_status_name(PAYSTREAM_SPOOL_ERR_IO), "failures", (json_int_t)failed,
			"spool_bytes", (json_int_t)paystream_spool_bytes(paystream_billing_spool)));
	} else if(rc == PAYSTREAM_SPOOL_ERR_IO && failed == 0 && !was_broken) {
		/* Records stay buffered in the spool (and metering.c's backlog);
		 * the next commit, every second, tries again. */
		JANUS_LOG(LOG_ERR, "[paystream] spool: cannot write the journal (%s, disk full?): new priced sessions "
			"are refused until a write succeeds; records are kept in memory meanwhile\n",
			paystream_spool_status_name(rc));
		paystream_spool_error_event(rc);
	} else if(rc == PAYSTREAM_SPOOL_ERR_BROKEN && !was_broken) {
		/* The operator must fix the disk and restart Janus, whose replay of
		 * the journal is the truth. */
		JANUS_LOG(LOG_ERR, "[paystream] spool: a flush of the journal failed (%s): new priced sessions are "
			"refused until Janus is restarted\n", paystream_spool_status_name(rc));
		paystream_spool_error_event(rc);
	}
}

/* Commit the spool and note the outcome, both under paystream_commit_mutex:
 * the ticker and the tips thread both commit, and an outcome noted after a
 * later one would leave a stale state (a failed write reported after a
 * good one). Taken only here, before the billing or spool mutex. */
static GMutex paystream_commit_mutex;

static int paystream_commit_noted(void) {
	g_mutex_lock(&paystream_commit_mutex);
	int rc = paystream_spool_commit(paystream_billing_spool);
	paystream_spool_written(rc, TRUE);
	g_mutex_unlock(&paystream_commit_mutex);
	return rc;
}

/* rc is a spool failure already reported by paystream_spool_written. */
static gboolean paystream_spool_trouble_known(int rc) {
	g_mutex_lock(&paystream_billing_mutex);
	gboolean known = paystream_spool_broken || (rc == PAYSTREAM_SPOOL_ERR_IO && paystream_spool_failed_writes > 0);
	g_mutex_unlock(&paystream_billing_mutex);
	return known;
}

/* ---- usage --------------------------------------------------------- */

static void paystream_apply_stops(const char *reply) {
	json_t *root = reply && *reply ? json_loads(reply, 0, NULL) : NULL;
	json_t *list = json_object_get(root, "stop");
	/* All of a reply's stops in one walk of the viewers, not one walk each. */
	GHashTable *stops = g_hash_table_new(g_str_hash, g_str_equal);
	size_t i;
	json_t *stop;
	json_array_foreach(list, i, stop) {
		const char *session = json_string_value(json_object_get(stop, "session"));
		const char *reason = json_string_value(json_object_get(stop, "reason"));
		if(session != NULL && !g_hash_table_contains(stops, session))	/* a session listed twice: its first reason */
			g_hash_table_insert(stops, (gpointer)session, (gpointer)(reason ? reason : "insufficient_funds"));
	}
	if(g_hash_table_size(stops) > 0 && paystream_callbacks.stop_sessions != NULL)
		paystream_callbacks.stop_sessions(stops);
	g_hash_table_destroy(stops);
	if(root != NULL)
		json_decref(root);
}

static void paystream_note_failure(long status, paystream_call call) {
	const char *what = paystream_call_names[call];
	g_mutex_lock(&paystream_billing_mutex);
	guint failures = ++paystream_failures[call];
	g_mutex_unlock(&paystream_billing_mutex);
	/* The first failure and every tenth after it reach event handlers. */
	if(failures == 1 || failures % 10 == 0) {
		JANUS_LOG(LOG_WARN, "[paystream] billing service: %s failed (HTTP %ld), %u in a row\n", what, status, failures);
		paystream_notify(NULL, "billing_failed", NULL,
			json_pack("{sssIsI}", "call", what, "status", (json_int_t)status, "consecutive_failures", (json_int_t)failures));
	}
}

static void paystream_note_success(paystream_call call) {
	const char *what = paystream_call_names[call];
	g_mutex_lock(&paystream_billing_mutex);
	guint failures = paystream_failures[call];
	paystream_failures[call] = 0;
	paystream_last_success = janus_get_real_time() / 1000;
	g_mutex_unlock(&paystream_billing_mutex);
	if(failures > 0) {
		JANUS_LOG(LOG_INFO, "[paystream] billing service: %s answered again after %u failure(s)\n", what, failures);
		paystream_notify(NULL, "billing_recovered", NULL,
			json_pack("{sssI}", "call", what, "failures", (json_int_t)failures));
	}
}

/* Send one batch (body: built once, so a retry sends exactly the same
 * bytes) until the service takes it or the plugin stops. batch_id is its
 * Idempotency-Key and the body's batch_id; spool_id the id the spool knows
 * it by (the same, but for a replayed batch whose id was unfit: see the
 * usage loop). */
static void paystream_send_batch(CURL *curl, const char *batch_id, const char *spool_id, const GString *body) {
	GString *response = g_string_new(NULL);
	for(guint attempt = 0; paystream_billing_is_running(); attempt++) {
		long status = paystream_post(curl, "/v1/usage", batch_id, body->str, body->len, response);
		if(status >= 200 && status < 300) {
			paystream_spool_ack_batch(paystream_billing_spool, spool_id);
			paystream_note_success(PAYSTREAM_CALL_USAGE);
			paystream_apply_stops(response->str);
			break;
		}
		if(status >= 400 && status < 500 && status != 408 && status != 429)
			JANUS_LOG(LOG_ERR, "[paystream] billing service refused batch %s (HTTP %ld): %.200s\n",
				batch_id, status, response->str);
		paystream_note_failure(status, PAYSTREAM_CALL_USAGE);
		if(!paystream_billing_backoff_ms(paystream_retry_delay(attempt)))
			break;
	}
	g_string_free(response, TRUE);
}

static gpointer paystream_usage_loop(gpointer data) {
	CURL *curl = curl_easy_init();
	/* One body buffer for every batch: a backlog's batches are hundreds of
	 * kilobytes, not worth fresh memory each. */
	GString *body = g_string_sized_new(256 * 1024);
	/* Batches a previous run spooled but did not get acknowledged go first. */
	GPtrArray *unacked = paystream_spool_unacked_batches(paystream_billing_spool);
	for(guint i = 0; i < unacked->len && paystream_billing_is_running(); i++) {
		paystream_spool_batch_text *batch = g_ptr_array_index(unacked, i);
		/* The plugin's batch ids are UUIDs. One that could not be a header
		 * value or a JSON string as it is (only a journal written by hand)
		 * goes under a fresh id: its records keep theirs, and the service
		 * deduplicates them by record_id all the same. */
		gboolean fit = paystream_viewer_id_valid(batch->batch_id);
		char *fresh = fit ? NULL : paystream_random_uuid();
		if(!fit && fresh == NULL) {
			JANUS_LOG(LOG_ERR, "[paystream] spooled batch %u of %u left in the spool: no random id for it\n",
				i + 1, unacked->len);
			continue;
		}
		if(fresh != NULL) {
			char *shown = g_strescape(batch->batch_id, NULL);
			JANUS_LOG(LOG_WARN, "[paystream] spooled batch \"%.200s\" has an id unfit for the billing call: "
				"re-sending its records as batch %s\n", shown, fresh);
			g_free(shown);
		} else {
			JANUS_LOG(LOG_INFO, "[paystream] re-sending spooled batch %s\n", batch->batch_id);
		}
		const char *key = fresh != NULL ? fresh : batch->batch_id;
		paystream_billing_batch_body_begin(body, key, paystream_billing_instance, janus_get_real_time() / 1000);
		g_string_append_len(body, batch->records->str, (gssize)batch->records->len);
		paystream_billing_batch_body_end(body);
		paystream_send_batch(curl, key, batch->batch_id, body);
		g_free(fresh);
	}
	g_ptr_array_unref(unacked);
	while(paystream_billing_is_running()) {
		char *batch_id = paystream_random_uuid();
		int rc = PAYSTREAM_SPOOL_ERR_IO;	/* no random id: try again next interval */
		if(batch_id != NULL) {
			paystream_billing_batch_body_begin(body, batch_id, paystream_billing_instance, janus_get_real_time() / 1000);
			rc = paystream_spool_begin_batch(paystream_billing_spool, batch_id, paystream_batch_max, body, NULL);
			paystream_spool_written(rc, FALSE);
		}
		if(rc == PAYSTREAM_SPOOL_OK) {
			paystream_billing_batch_body_end(body);
			paystream_send_batch(curl, batch_id, batch_id, body);
			g_free(batch_id);
			if(paystream_spool_pending_count(paystream_billing_spool) > 0)
				continue;	/* a backlog: drain it without waiting */
		} else {
			/* A broken spool, or one the ticker's commits find failing, is
			 * reported there, once. */
			if(rc != PAYSTREAM_SPOOL_ERR_EMPTY && !paystream_spool_trouble_known(rc))
				JANUS_LOG(LOG_ERR, "[paystream] spool: cannot start a batch: %s\n", paystream_spool_status_name(rc));
			g_free(batch_id);
		}
		/* Keep the journal small once it has been drained. */
		if(paystream_spool_bytes(paystream_billing_spool) > paystream_spool_max / 2)
			paystream_spool_compact(paystream_billing_spool);
		/* (The spool's lock is taken before the billing mutex, never inside it:
		 * it is held through fdatasyncs, and rooms' locks wait on the billing
		 * mutex in paystream_billing_accepting.) */
		gboolean drained = paystream_spool_bytes(paystream_billing_spool) < paystream_spool_max / 2;
		g_mutex_lock(&paystream_billing_mutex);
		if(paystream_spool_full && drained) {
			paystream_spool_full = FALSE;
			JANUS_LOG(LOG_INFO, "[paystream] spool drained: priced sessions accepted again\n");
		}
		g_mutex_unlock(&paystream_billing_mutex);
		paystream_billing_wait_ms(paystream_billing_interval * 1000);
	}
	g_string_free(body, TRUE);
	curl_easy_cleanup(curl);
	return NULL;
}

/* ---- tips ----------------------------------------------------------- */

/* The tip's outcome is known: it leaves the spool and its tipper is told,
 * once. If the spool cannot take the ack (broken: only a restart helps),
 * the tip is remembered as done here, so it is neither sent nor told
 * again; a restart replays it, and the service answers the repeat from its
 * idempotency record without charging twice. */
static void paystream_tip_settle(const char *tip_id, json_t *tip, const char *outcome, const char *reason) {
	if(paystream_spool_ack_tip(paystream_billing_spool, tip_id) != PAYSTREAM_SPOOL_OK)
		g_hash_table_add(paystream_tips_done, g_strdup(tip_id));
	paystream_commit_noted();
	if(paystream_callbacks.tip_result)
		paystream_callbacks.tip_result(tip, outcome, reason);
}

/* Send one tip once; returns TRUE when it is settled (accepted, declined). */
static gboolean paystream_send_tip(CURL *curl, const char *tip_id, json_t *tip, GString *response) {
	char *text = json_dumps(tip, JSON_COMPACT | JSON_SORT_KEYS);
	long status = paystream_post(curl, "/v1/tips", tip_id, text, strlen(text), response);
	free(text);
	const char *outcome = NULL;
	char *reason = NULL;
	if(status >= 200 && status < 300) {
		outcome = "accepted";
	} else if(status == 402 || status == 409) {
		json_t *root = json_loads(response->str, 0, NULL);
		const char *r = json_string_value(json_object_get(root, "reason"));
		reason = g_strdup(r ? r : (status == 409 ? "conflict" : "declined"));
		if(root)
			json_decref(root);
		outcome = "declined";
	}
	if(outcome == NULL) {
		paystream_note_failure(status, PAYSTREAM_CALL_TIP);
		return FALSE;
	}
	paystream_note_success(PAYSTREAM_CALL_TIP);
	paystream_tip_settle(tip_id, tip, outcome, reason);
	g_free(reason);
	return TRUE;
}

static gpointer paystream_tips_loop(gpointer data) {
	CURL *curl = curl_easy_init();
	GString *response = g_string_new(NULL);
	guint attempt = 0;
	while(paystream_billing_is_running()) {
		json_t *tips = paystream_spool_unacked_tips(paystream_billing_spool);
		gboolean all_settled = TRUE;
		guint listed = 0;
		size_t i;
		json_t *entry;
		json_array_foreach(tips, i, entry) {
			const char *tip_id = json_string_value(json_object_get(entry, "tip_id"));
			json_t *tip = json_object_get(entry, "tip");
			if(g_hash_table_contains(paystream_tips_done, tip_id))
				continue;
			listed++;
			gint64 now = g_get_monotonic_time();
			g_mutex_lock(&paystream_billing_mutex);
			gint64 *first = g_hash_table_lookup(paystream_tips_due, tip_id);
			if(first == NULL) {
				first = g_new(gint64, 1);
				*first = now;
				g_hash_table_insert(paystream_tips_due, g_strdup(tip_id), first);
			}
			gboolean expired = now - *first > (gint64)paystream_tip_timeout * G_USEC_PER_SEC;
			g_mutex_unlock(&paystream_billing_mutex);
			gboolean settled = FALSE;
			if(!paystream_viewer_id_valid(tip_id)) {
				/* Clients' tip ids are checked (docs/API.md): this one comes from
				 * a journal written by hand and cannot be an Idempotency-Key.
				 * Not sent, so never charged; the tipper, if still here, is told. */
				char *shown = g_strescape(tip_id, NULL);
				JANUS_LOG(LOG_ERR, "[paystream] spooled tip \"%.200s\" has an id unfit for the billing call: "
					"dropped as failed\n", shown);
				g_free(shown);
				paystream_tip_settle(tip_id, tip, "failed", "invalid_tip_id");
				settled = TRUE;
			} else if(expired) {
				/* Not confirmed in time: the tipper is told it failed and it is
				 * not retried any more. The service's ledger stays the truth. */
				JANUS_LOG(LOG_WARN, "[paystream] tip %s not confirmed within %us: failed\n", tip_id, paystream_tip_timeout);
				paystream_tip_settle(tip_id, tip, "failed", "billing_unreachable");
				settled = TRUE;
			} else {
				settled = paystream_send_tip(curl, tip_id, tip, response);
			}
			if(settled) {
				g_mutex_lock(&paystream_billing_mutex);
				g_hash_table_remove(paystream_tips_due, tip_id);
				g_mutex_unlock(&paystream_billing_mutex);
			} else {
				all_settled = FALSE;
			}
		}
		gboolean none = listed == 0;
		json_decref(tips);
		if(none || all_settled) {
			attempt = 0;
			/* Nothing to retry: sleep until a new tip wakes us. */
			paystream_billing_wait_ms(none ? 60 * 1000 : 0);
		} else {
			/* A new tip may wake this early: it is sent at once, and the
			 * pending ones are retried with it. */
			paystream_billing_wait_ms(MIN(paystream_retry_delay(attempt++), 2000));
		}
	}
	g_string_free(response, TRUE);
	curl_easy_cleanup(curl);
	return NULL;
}

/* ---- what the rest of the plugin calls ------------------------------ */

gsize paystream_billing_records(const char *text, gsize len) {
	if(paystream_billing_spool == NULL)
		return len;	/* no billing: nothing is priced, nothing to keep */
	gsize taken = 0, done = 0;
	int rc;
	while((rc = paystream_spool_append_text(paystream_billing_spool, text + done, len - done, &taken)) ==
			PAYSTREAM_SPOOL_ERR_INVALID) {
		/* A bug, not a condition: say so and skip that one line rather
		 * than hold every later record back behind it. */
		const char *bad = text + done + taken;
		const char *nl = memchr(bad, '\n', len - done - taken);
		gsize bad_len = nl != NULL ? (gsize)(nl - bad) + 1 : len - done - taken;
		JANUS_LOG(LOG_ERR, "[paystream] spool: refused a malformed record, dropped: %.*s\n",
			(int)MIN(bad_len, 200), bad);
		done += taken + bad_len;
	}
	done += taken;
	if(rc == PAYSTREAM_SPOOL_OK)
		return done;
	if(rc != PAYSTREAM_SPOOL_ERR_FULL) {
		/* Appending writes nothing: only a spool broken earlier refuses. */
		paystream_spool_written(rc, FALSE);
		return done;
	}
	g_mutex_lock(&paystream_billing_mutex);
	gboolean first = !paystream_spool_full && !paystream_spool_broken;
	paystream_spool_full = TRUE;
	g_mutex_unlock(&paystream_billing_mutex);
	if(first) {
		JANUS_LOG(LOG_ERR, "[paystream] spool: cannot append a record: %s\n", paystream_spool_status_name(rc));
		paystream_spool_error_event(rc);
	}
	return done;
}

int paystream_billing_commit(void) {
	if(paystream_billing_spool == NULL)
		return 0;
	if(paystream_commit_noted() != PAYSTREAM_SPOOL_OK)
		return -1;
	/* Records are durable now: let the usage thread send them at once, so a
	 * stop from the service bites within about a second of the tick. */
	g_mutex_lock(&paystream_billing_mutex);
	g_cond_broadcast(&paystream_billing_wake);
	g_mutex_unlock(&paystream_billing_mutex);
	return 0;
}

gboolean paystream_billing_accepting(void) {
	if(paystream_billing_spool == NULL)
		return FALSE;
	g_mutex_lock(&paystream_billing_mutex);
	gboolean accepting = paystream_accepting_locked();
	g_mutex_unlock(&paystream_billing_mutex);
	return accepting;
}

int paystream_billing_tip(const char *tip_id, json_t *tip) {
	if(paystream_billing_spool == NULL)
		return PAYSTREAM_ERROR_BILLING_UNAVAILABLE;
	int rc = paystream_spool_append_tip(paystream_billing_spool, tip_id, tip);
	paystream_spool_written(rc, FALSE);
	if(rc == PAYSTREAM_SPOOL_ERR_DUPLICATE)
		return PAYSTREAM_ERROR_INVALID_TIP;
	if(rc != PAYSTREAM_SPOOL_OK)
		return PAYSTREAM_ERROR_BILLING_UNAVAILABLE;
	g_mutex_lock(&paystream_billing_mutex);
	g_cond_broadcast(&paystream_billing_wake);
	g_mutex_unlock(&paystream_billing_mutex);
	return 0;
}

json_t *paystream_billing_spooled_tips(void) {
	return paystream_billing_spool != NULL ? paystream_spool_unacked_tips(paystream_billing_spool) : json_array();
}

json_t *paystream_billing_stats(void) {
	json_t *stats = json_object();
	json_object_set_new(stats, "enabled", json_boolean(paystream_billing_spool != NULL));
	if(paystream_billing_spool == NULL)
		return stats;
	guint unacked = paystream_spool_unacked_count(paystream_billing_spool);	/* not under the billing mutex */
	guint64 spool_bytes = paystream_spool_bytes(paystream_billing_spool);
	g_mutex_lock(&paystream_billing_mutex);
	json_object_set_new(stats, "queue_depth", json_integer(unacked));
	json_object_set_new(stats, "last_success", paystream_last_success ? json_integer(paystream_last_success) : json_null());
	json_object_set_new(stats, "consecutive_failures", json_integer(paystream_failures[PAYSTREAM_CALL_USAGE]));
	json_object_set_new(stats, "consecutive_tip_failures", json_integer(paystream_failures[PAYSTREAM_CALL_TIP]));
	json_object_set_new(stats, "tips_in_flight", json_integer(g_hash_table_size(paystream_tips_due)));
	json_object_set_new(stats, "accepting_sessions", json_boolean(paystream_accepting_locked()));
	json_object_set_new(stats, "spool_broken", json_boolean(paystream_spool_broken));
	json_object_set_new(stats, "spool_write_failing", json_boolean(paystream_spool_failed_writes > 0));
	g_mutex_unlock(&paystream_billing_mutex);
	json_object_set_new(stats, "spool_bytes", json_integer(spool_bytes));
	json_object_set_new(stats, "spool_max_bytes", json_integer(paystream_spool_max));
	return stats;
}

int paystream_billing_start(const paystream_general_settings *general, const paystream_billing_callbacks *callbacks,
		char *error, size_t errlen) {
	if(general->billing_url == NULL)
		return 0;
	paystream_spool_report report = { 0 };
	GError *gerror = NULL;
	paystream_billing_spool = paystream_spool_open(general->spool_dir, general->spool_max_bytes, &report, &gerror);
	if(paystream_billing_spool == NULL) {
		g_snprintf(error, errlen, "cannot open the spool in %s: %s", general->spool_dir,
			gerror ? gerror->message : "unknown error");
		g_clear_error(&gerror);
		paystream_spool_report_clear(&report);
		return -1;
	}
	if(report.dropped_bytes > 0) {
		JANUS_LOG(LOG_ERR, "[paystream] spool: %" G_GUINT64_FORMAT " unreadable bytes (%" G_GUINT64_FORMAT
			" lines) at the end of the journal were not replayed%s%s\n", report.dropped_bytes, report.dropped_lines,
			report.dropped_path ? "; saved to " : "", report.dropped_path ? report.dropped_path : "");
		paystream_notify(NULL, "spool_corrupt", NULL, json_pack("{sIsIss?}", "dropped_bytes", (json_int_t)report.dropped_bytes,
			"dropped_lines", (json_int_t)report.dropped_lines, "saved_to", report.dropped_path));
	}
	JANUS_LOG(LOG_INFO, "[paystream] spool: %u pending record(s), %u unacknowledged batch(es), %u tip(s) to send\n",
		report.pending_records, report.unacked_batches, report.unacked_tips);
	paystream_spool_report_clear(&report);
	paystream_callbacks = *callbacks;
	paystream_billing_url = g_strdup(general->billing_url);
	/* A trailing slash would make "//v1/usage". */
	while(g_str_has_suffix(paystream_billing_url, "/"))
		paystream_billing_url[strlen(paystream_billing_url) - 1] = '\0';
	paystream_billing_secret = g_strdup(general->billing_secret);
	if(general->instance) {
		paystream_billing_instance = paystream_record_quote(general->instance);
	} else {
		char host[256] = "janus";
		gethostname(host, sizeof(host) - 1);
		paystream_billing_instance = paystream_record_quote(host);
	}
	paystream_billing_interval = general->billing_interval;
	paystream_batch_max = general->billing_batch_max;
	paystream_billing_timeout = general->billing_timeout;
	paystream_retry_max = general->retry_max;
	paystream_tip_timeout = general->tip_timeout;
	paystream_spool_max = general->spool_max_bytes;
	paystream_tips_due = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	paystream_tips_done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	paystream_billing_running = TRUE;
	paystream_usage_thread = g_thread_new("paystream usage", paystream_usage_loop, NULL);
	paystream_tips_thread = g_thread_new("paystream tips", paystream_tips_loop, NULL);
	return 0;
}

void paystream_billing_stop(void) {
	if(paystream_billing_spool == NULL)
		return;
	g_mutex_lock(&paystream_billing_mutex);
	paystream_billing_running = FALSE;
	g_cond_broadcast(&paystream_billing_wake);
	g_mutex_unlock(&paystream_billing_mutex);
	g_thread_join(paystream_usage_thread);
	g_thread_join(paystream_tips_thread);
	int rc = paystream_spool_close(paystream_billing_spool);
	if(rc != PAYSTREAM_SPOOL_OK)
		JANUS_LOG(LOG_ERR, "[paystream] spool: the last commit at shutdown failed (%s): records not yet on "
			"disk are lost (acknowledgements not on disk only make batches be sent again)\n", paystream_spool_status_name(rc));
	paystream_billing_spool = NULL;
	g_hash_table_destroy(paystream_tips_due);
	paystream_tips_due = NULL;
	g_hash_table_destroy(paystream_tips_done);
	paystream_tips_done = NULL;
	g_free(paystream_billing_url);
	g_free(paystream_billing_secret);
	g_free(paystream_billing_instance);
	paystream_billing_url = paystream_billing_secret = paystream_billing_instance = NULL;
	curl_global_cleanup();
}
