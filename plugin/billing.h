/* billing.h - delivery of usage records and tips to the platform's billing
 * service.
 *
 * Owns the spool (spool.h) and two threads with a libcurl handle each: one
 * sends usage batches every billing_interval, one sends tips at once. Both
 * retry with backoff (backoff.h) and the same ids until the service answers,
 * so with the service deduplicating by Idempotency-Key and record_id every
 * record and tip is applied exactly once (docs/BILLING.md). Nothing here runs
 * on the media path or on Janus's request threads: the ticker and the tip
 * handler only append to the spool (memory, then one fsync per tick), and
 * results come back through the callbacks below, on a billing thread. */
#ifndef PAYSTREAM_BILLING_H
#define PAYSTREAM_BILLING_H

#include <glib.h>
#include <jansson.h>

#include "settings.h"

/* What the billing threads report back (set before paystream_billing_start). */
typedef struct paystream_billing_callbacks {
	/* The service asked to stop viewing sessions: session id -> reason
	 * (e.g. insufficient_funds), both strings valid during the call; the
	 * callee may replace the values. */
	void (*stop_sessions)(GHashTable *stops);
	/* A tip's outcome: "accepted", "declined" (reason from the service) or
	 * "failed" (not confirmed within tip_timeout). tip is what was sent. */
	void (*tip_result)(json_t *tip, const char *status, const char *reason);
} paystream_billing_callbacks;

/* Open the spool (re-sending what it holds) and start the threads; with no
 * billing_url configured this does nothing and returns 0. */
int paystream_billing_start(const paystream_general_settings *general, const paystream_billing_callbacks *callbacks,
	char *error, size_t errlen);
void paystream_billing_stop(void);
gboolean paystream_billing_enabled(void);

/* Append usage records (JSON text, one per line: records.h) to the spool,
 * not yet durable (see commit). Returns the bytes of text taken: all of it,
 * or less when the spool is full or broken (then the rest is the caller's
 * to keep or drop; the spool_error event and log say why, once). Records
 * taken while writes fail stay buffered in the spool until a commit writes
 * them. */
gsize paystream_billing_records(const char *text, gsize len);
/* Make every record appended so far durable (one fsync); the ticker calls
 * this once per tick. Returns 0 or -1 (a failed write is retried by the
 * next call; spool_error and spool_recovered events report the episode). */
int paystream_billing_commit(void);
/* FALSE while the spool is full, while its writes fail (a full disk: until
 * a commit succeeds again) or once a flush failed (until a restart): new
 * priced sessions are refused. */
gboolean paystream_billing_accepting(void);

/* Spool a tip (durable on return) and send it at once. Returns 0,
 * PAYSTREAM_ERROR_BILLING_UNAVAILABLE, or PAYSTREAM_ERROR_INVALID_TIP for a
 * tip_id already in flight. */
int paystream_billing_tip(const char *tip_id, json_t *tip);

/* The tips in the spool not settled yet (a new array, as
 * paystream_spool_unacked_tips lists them; empty without billing). */
json_t *paystream_billing_spooled_tips(void);

/* {"enabled", "queue_depth", "spool_bytes", "spool_max_bytes",
 *  "last_success", "consecutive_failures", "tips_in_flight", ...} */
json_t *paystream_billing_stats(void);

#endif
