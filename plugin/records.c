/* records.c - building usage records (see records.h). */
#include "records.h"

#include <glib.h>

static json_t *paystream_record_new(const paystream_record_ids *ids, const char *type, const char *suffix) {
	char record_id[256];
	g_snprintf(record_id, sizeof(record_id), "%s:%s", ids->session, suffix);
	json_t *record = json_object();
	json_object_set_new(record, "type", json_string(type));
	json_object_set_new(record, "record_id", json_string(record_id));
	json_object_set_new(record, "session", json_string(ids->session));
	json_object_set_new(record, "room", json_string(ids->room));
	json_object_set_new(record, "viewer", json_string(ids->viewer));
	return record;
}

json_t *paystream_record_session_start(const paystream_record_ids *ids, gint64 at_ms, gint64 price_per_second,
		const char *currency) {
	json_t *record = paystream_record_new(ids, "session_start", "start");
	json_object_set_new(record, "at", json_integer(at_ms));
	json_object_set_new(record, "price_per_second", json_integer(price_per_second));
	json_object_set_new(record, "currency", json_string(currency));
	return record;
}

json_t *paystream_record_tick(const paystream_record_ids *ids, const paystream_meter_record *r, const char *currency) {
	char seq[24];
	g_snprintf(seq, sizeof(seq), "%" G_GUINT64_FORMAT, r->seq);
	json_t *record = paystream_record_new(ids, "tick", seq);
	json_object_set_new(record, "start", json_integer(r->start_ms));
	json_object_set_new(record, "seconds", json_integer(r->seconds));
	json_object_set_new(record, "amount", json_integer(r->amount));
	json_object_set_new(record, "currency", json_string(currency));
	return record;
}

json_t *paystream_record_session_end(const paystream_record_ids *ids, const paystream_meter *m, const char *reason) {
	json_t *record = paystream_record_new(ids, "session_end", "end");
	json_object_set_new(record, "seconds", json_integer(m->total_seconds));
	json_object_set_new(record, "amount", json_integer(m->total_amount));
	json_object_set_new(record, "currency", json_string(m->currency));
	json_object_set_new(record, "reason", json_string(reason));
	return record;
}
