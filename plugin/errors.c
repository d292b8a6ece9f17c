/* errors.c - names of the error codes and the error reply (see errors.h). */
#include "errors.h"

#include <glib.h>

static const struct {
	int code;
	const char *name;
} paystream_error_names[] = {
	{ PAYSTREAM_ERROR_INVALID_JSON, "invalid_json" },
	{ PAYSTREAM_ERROR_INVALID_REQUEST, "invalid_request" },
	{ PAYSTREAM_ERROR_MISSING_ELEMENT, "missing_element" },
	{ PAYSTREAM_ERROR_INVALID_ELEMENT, "invalid_element" },
	{ PAYSTREAM_ERROR_NO_SUCH_ROOM, "no_such_room" },
	{ PAYSTREAM_ERROR_ROOM_EXISTS, "room_exists" },
	{ PAYSTREAM_ERROR_UNAUTHORIZED, "unauthorized" },
	{ PAYSTREAM_ERROR_WRONG_STREAM_KEY, "wrong_stream_key" },
	{ PAYSTREAM_ERROR_WRONG_PIN, "wrong_pin" },
	{ PAYSTREAM_ERROR_PERFORMER_PRESENT, "performer_present" },
	{ PAYSTREAM_ERROR_WRONG_STATE, "wrong_state" },
	{ PAYSTREAM_ERROR_ROOM_FULL, "room_full" },
	{ PAYSTREAM_ERROR_INVALID_JSEP, "invalid_jsep" },
	{ PAYSTREAM_ERROR_INVALID_SDP, "invalid_sdp" },
	{ PAYSTREAM_ERROR_NO_SUCH_PARTICIPANT, "no_such_participant" },
	{ PAYSTREAM_ERROR_VIEWER_ID_TAKEN, "viewer_id_taken" },
	{ PAYSTREAM_ERROR_CONFIG, "config_error" },
	{ PAYSTREAM_ERROR_TOKEN_REQUIRED, "token_required" },
	{ PAYSTREAM_ERROR_INVALID_TOKEN, "invalid_token" },
	{ PAYSTREAM_ERROR_BILLING_UNAVAILABLE, "billing_unavailable" },
	{ PAYSTREAM_ERROR_INVALID_TIP, "invalid_tip" },
	{ PAYSTREAM_ERROR_RATE_LIMITED, "rate_limited" },
	{ PAYSTREAM_ERROR_STOPPED, "stopped" },
	{ PAYSTREAM_ERROR_INTERNAL, "internal_error" },
};

const char *paystream_error_name(int code) {
	for(size_t i = 0; i < G_N_ELEMENTS(paystream_error_names); i++) {
		if(paystream_error_names[i].code == code)
			return paystream_error_names[i].name;
	}
	return "unknown";
}

json_t *paystream_error_json(int code, const char *text) {
	json_t *reply = json_object();
	json_object_set_new(reply, "paystream", json_string("error"));
	json_object_set_new(reply, "error_code", json_integer(code));
	json_object_set_new(reply, "error", json_string(text && *text ? text : paystream_error_name(code)));
	return reply;
}
