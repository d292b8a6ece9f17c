/* records.h - the usage records of docs/BILLING.md, written as JSON text
 * from a viewing session's identity and its meter.
 *
 * Every record carries type, record_id (stable: "<session>:start",
 * "<session>:<seq>", "<session>:end", so a re-send is recognised), session,
 * room and viewer (the account that pays). A record is one compact JSON
 * object with no line break, the form the spool stores and the batch body
 * embeds as it is: the strings are escaped once per session (by Jansson)
 * into a paystream_record_source, and each record only appends them and a
 * few integers, with no allocation beyond the output buffer's growth.
 * metering.c writes them under a room's lock; the benchmarks write them the
 * same way; the unit tests parse each kind back with Jansson. Pure: GLib
 * and Jansson only. */
#ifndef PAYSTREAM_RECORDS_H
#define PAYSTREAM_RECORDS_H

#include <glib.h>

#include "digits.h"
#include "meter.h"

typedef struct paystream_record_ids {
	const char *session;
	const char *room;
	const char *viewer;
} paystream_record_ids;

/* A session's identity as JSON text, made once. A tick record, the one
 * written every billing interval, is tick_head, its seq, tick_ids, four
 * numbers and tick_tail: three copies and the digits. */
typedef struct paystream_record_source {
	char *session;		/* the session id as JSON string content (no quotes) */
	char *ids;			/* "session":"...","room":"...","viewer":"..." */
	char *currency;		/* "..." (with the quotes) */
	char *tick_head;	/* {"type":"tick","record_id":"<session>: */
	char *tick_ids;		/* ",<ids>,"start": */
	char *tick_tail;	/* ,"currency":"..."} */
	gsize session_len, ids_len, currency_len, tick_head_len, tick_ids_len, tick_tail_len;
} paystream_record_source;

void paystream_record_source_init(paystream_record_source *src, const paystream_record_ids *ids, const char *currency);
void paystream_record_source_clear(paystream_record_source *src);

/* The digits of the last start time a tick record was written with, kept
 * by one writer (the ticker) and reused while the time repeats: in one pass
 * of the ticker every record of one second starts at the same millisecond,
 * so its 13 digits are written once per pass instead of once per viewer. */
typedef struct paystream_record_clock {
	gint64 ms;
	gsize len;			/* 0: no time written yet */
	char digits[PAYSTREAM_DIGITS_MAX];
} paystream_record_clock;

/* Each appends one record's JSON text to out (no "\n"); a tick's clock may
 * be NULL (a writer that does not keep one). */
void paystream_record_session_start(GString *out, const paystream_record_source *src, gint64 at_ms,
	gint64 price_per_second);
void paystream_record_tick(GString *out, const paystream_record_source *src, const paystream_meter_record *r,
	paystream_record_clock *clock);
void paystream_record_session_end(GString *out, const paystream_record_source *src, const paystream_meter *m,
	const char *reason);

/* s as a JSON string, quotes included (invalid UTF-8 replaced); g_free. */
char *paystream_record_quote(const char *s);

#endif
