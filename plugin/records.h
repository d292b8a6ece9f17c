/* records.h - the usage records of docs/BILLING.md, built from a viewing
 * session's identity and its meter.
 *
 * Every record carries type, record_id (stable: "<session>:start",
 * "<session>:<seq>", "<session>:end", so a re-send is recognised), session,
 * room and viewer (the account that pays). metering.c builds them under a
 * room's lock; the benchmarks build them the same way. Pure: Jansson only. */
#ifndef PAYSTREAM_RECORDS_H
#define PAYSTREAM_RECORDS_H

#include <jansson.h>

#include "meter.h"

typedef struct paystream_record_ids {
	const char *session;
	const char *room;
	const char *viewer;
} paystream_record_ids;

json_t *paystream_record_session_start(const paystream_record_ids *ids, gint64 at_ms, gint64 price_per_second,
	const char *currency);
json_t *paystream_record_tick(const paystream_record_ids *ids, const paystream_meter_record *r, const char *currency);
json_t *paystream_record_session_end(const paystream_record_ids *ids, const paystream_meter *m, const char *reason);

#endif
