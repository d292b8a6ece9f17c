/* test_records.c - usage records have the contract's ids and fields. */
#include "unit.h"

#include <string.h>

#include "../../plugin/records.h"

static const char *str(json_t *r, const char *k) {
	return json_string_value(json_object_get(r, k));
}

int main(void) {
	no_plan();
	paystream_record_ids ids = { "s-1", "room.a", "alice" };
	json_t *r = paystream_record_session_start(&ids, 1000, 3, "credits");
	is_str(str(r, "type"), "session_start", "session_start type");
	is_str(str(r, "record_id"), "s-1:start", "session_start id");
	is_str(str(r, "session"), "s-1", "session");
	is_str(str(r, "room"), "room.a", "room");
	is_str(str(r, "viewer"), "alice", "viewer");
	is_int(json_integer_value(json_object_get(r, "at")), 1000, "at");
	is_int(json_integer_value(json_object_get(r, "price_per_second")), 3, "price");
	json_decref(r);

	paystream_meter m;
	paystream_meter_init(&m, 3, "credits", PAYSTREAM_METER_NO_BUDGET);
	paystream_meter_conditions c = { TRUE, TRUE, FALSE, TRUE, TRUE };
	for(int i = 1; i <= 4; i++)
		paystream_meter_tick(&m, &c, 2000 + i * 1000);
	paystream_meter_record mr;
	ok(paystream_meter_take_record(&m, &mr), "a record to build");
	r = paystream_record_tick(&ids, &mr, m.currency);
	is_str(str(r, "type"), "tick", "tick type");
	is_str(str(r, "record_id"), "s-1:1", "tick id is <session>:<seq>");
	is_int(json_integer_value(json_object_get(r, "seconds")), 4, "tick seconds");
	is_int(json_integer_value(json_object_get(r, "amount")), 12, "tick amount");
	ok(json_is_integer(json_object_get(r, "start")), "tick start");
	is_str(str(r, "currency"), "credits", "tick currency");
	json_decref(r);

	r = paystream_record_session_end(&ids, &m, "left");
	is_str(str(r, "record_id"), "s-1:end", "session_end id");
	is_int(json_integer_value(json_object_get(r, "seconds")), 4, "session_end totals: seconds");
	is_int(json_integer_value(json_object_get(r, "amount")), 12, "session_end totals: amount");
	is_str(str(r, "reason"), "left", "session_end reason");
	json_decref(r);
	paystream_meter_clear(&m);
	return done_testing();
}
