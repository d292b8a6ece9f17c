/* test_errors.c - error codes keep their documented names and reply shape. */
#include "unit.h"

#include "../../plugin/errors.h"

int main(void) {
	no_plan();
	is_str(paystream_error_name(PAYSTREAM_ERROR_NO_SUCH_ROOM), "no_such_room", "444 is no_such_room");
	is_str(paystream_error_name(PAYSTREAM_ERROR_WRONG_STREAM_KEY), "wrong_stream_key", "447 is wrong_stream_key");
	is_str(paystream_error_name(PAYSTREAM_ERROR_INTERNAL), "internal_error", "499 is internal_error");
	is_str(paystream_error_name(12345), "unknown", "an unlisted code is unknown");
	/* The codes are API: they must not move. */
	is_int(PAYSTREAM_ERROR_INVALID_JSON, 440, "invalid_json is 440");
	is_int(PAYSTREAM_ERROR_PERFORMER_PRESENT, 449, "performer_present is 449");
	is_int(PAYSTREAM_ERROR_CONFIG, 456, "config_error is 456");

	json_t *reply = paystream_error_json(PAYSTREAM_ERROR_WRONG_PIN, "Wrong pin");
	is_str(json_string_value(json_object_get(reply, "paystream")), "error", "reply names itself an error");
	is_int(json_integer_value(json_object_get(reply, "error_code")), 448, "reply carries the code");
	is_str(json_string_value(json_object_get(reply, "error")), "Wrong pin", "reply carries the text");
	json_decref(reply);
	reply = paystream_error_json(PAYSTREAM_ERROR_ROOM_FULL, NULL);
	is_str(json_string_value(json_object_get(reply, "error")), "room_full", "no text: the name stands in");
	json_decref(reply);
	return done_testing();
}
