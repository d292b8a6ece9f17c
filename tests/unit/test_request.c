/* test_request.c - request validation: every malformed shape gets its code. */
#include "unit.h"

#include "../../plugin/errors.h"
#include "../../plugin/request.h"

static int check(const char *text, int expected, const char *what) {
	json_error_t jerr;
	json_t *body = json_loads(text, JSON_ALLOW_NUL, &jerr);
	if(body == NULL)
		bail_out("bad test JSON %s: %s", text, jerr.text);
	const paystream_request_spec *spec = NULL;
	char error[256] = "";
	int rc = paystream_request_parse(body, &spec, error, sizeof(error));
	json_decref(body);
	if(rc != expected)
		diag("%s -> %d (%s)", text, rc, error);
	else if(rc != 0 && error[0] == '\0')
		diag("%s: no readable text", text);
	return is_int(rc, expected, "%s", what) && (rc == 0 || error[0] != '\0');
}

int main(void) {
	no_plan();
	const paystream_request_spec *spec = NULL;
	char error[256];
	is_int(paystream_request_parse(NULL, &spec, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_JSON, "no body");
	json_t *array = json_array();
	is_int(paystream_request_parse(array, &spec, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_JSON, "array body");
	json_decref(array);

	ok(check("{}", PAYSTREAM_ERROR_INVALID_REQUEST, "missing request"), "missing request has text");
	check("{\"request\": 5}", PAYSTREAM_ERROR_INVALID_REQUEST, "non-string request");
	check("{\"request\": \"fly\"}", PAYSTREAM_ERROR_INVALID_REQUEST, "unknown request");
	check("{\"request\": \"list\"}", 0, "list needs nothing");
	check("{\"request\": \"create\"}", 0, "create needs nothing");
	check("{\"request\": \"create\", \"room\": \"demo-1.x\"}", 0, "create with a room id");
	check("{\"request\": \"create\", \"room\": 7}", PAYSTREAM_ERROR_INVALID_ELEMENT, "numeric room");
	check("{\"request\": \"create\", \"room\": \"a b\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "room with a space");
	check("{\"request\": \"create\", \"room\": \"\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "empty room");
	check("{\"request\": \"create\", \"room\": \"x\\u0000y\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "room with NUL");
	check("{\"request\": \"create\", \"is_private\": \"yes\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "string boolean");
	check("{\"request\": \"create\", \"max_viewers\": -1}", PAYSTREAM_ERROR_INVALID_ELEMENT, "negative integer");
	check("{\"request\": \"create\", \"max_viewers\": 1.5}", PAYSTREAM_ERROR_INVALID_ELEMENT, "real for integer");
	check("{\"request\": \"create\", \"price_per_second\": 1000000000001}", PAYSTREAM_ERROR_INVALID_ELEMENT, "price too high");
	check("{\"request\": \"create\", \"price_per_second\": 25}", 0, "integer price");
	check("{\"request\": \"create\", \"stream_key\": \"short\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "stream key under 8 bytes");
	check("{\"request\": \"create\", \"description\": \"tab\\there\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "control character in text");
	check("{\"request\": \"create\", \"currency\": \"euro cents\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "bad currency");
	check("{\"request\": \"create\", \"unknown_field\": [1]}", 0, "unknown fields are ignored");
	check("{\"request\": \"destroy\"}", PAYSTREAM_ERROR_MISSING_ELEMENT, "destroy needs room");
	check("{\"request\": \"exists\", \"room\": null}", PAYSTREAM_ERROR_MISSING_ELEMENT, "null counts as missing");
	check("{\"request\": \"publish\", \"stream_key\": \"k\"}", PAYSTREAM_ERROR_MISSING_ELEMENT, "publish needs room");
	check("{\"request\": \"publish\", \"room\": \"r\", \"token\": \"\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "empty token");
	check("{\"request\": \"tip\"}", PAYSTREAM_ERROR_MISSING_ELEMENT, "tip needs amount");
	check("{\"request\": \"tip\", \"amount\": -5}", PAYSTREAM_ERROR_INVALID_ELEMENT, "negative tip");
	check("{\"request\": \"tip\", \"amount\": 5, \"message\": \"line\\nbreak\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "control character in a tip message");
	check("{\"request\": \"tip\", \"amount\": 5, \"tip_id\": \"a b\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "bad tip_id");
	check("{\"request\": \"tip\", \"amount\": 5, \"message\": \"<img src=x onerror=alert(1)>\", \"tip_id\": \"t-1\"}", 0, "markup is text, not refused");
	check("{\"request\": \"refresh\"}", PAYSTREAM_ERROR_MISSING_ELEMENT, "refresh needs token");
	check("{\"request\": \"stats\"}", 0, "stats");
	check("{\"request\": \"create\", \"tick_notify\": 3601}", PAYSTREAM_ERROR_INVALID_ELEMENT, "tick_notify above an hour");
	check("{\"request\": \"publish\", \"room\": \"r\", \"stream_key\": \"k\", \"takeover\": 1}",
		PAYSTREAM_ERROR_INVALID_ELEMENT, "takeover must be boolean");
	check("{\"request\": \"watch\", \"room\": \"r\", \"viewer_id\": \"a b\"}", PAYSTREAM_ERROR_INVALID_ELEMENT, "bad viewer id");
	check("{\"request\": \"configure\", \"substream\": 3}", PAYSTREAM_ERROR_INVALID_ELEMENT, "substream above 2");
	check("{\"request\": \"configure\", \"substream\": 0, \"temporal\": 2}", 0, "substream and temporal");
	check("{\"request\": \"kick\", \"room\": \"r\", \"performer\": true}", 0, "kick the performer");

	spec = paystream_request_lookup("create");
	ok(spec != NULL && spec->synchronous, "create is synchronous");
	spec = paystream_request_lookup("watch");
	ok(spec != NULL && !spec->synchronous, "watch is asynchronous");
	ok(paystream_request_lookup(NULL) == NULL, "NULL name");
	return done_testing();
}
