/* errors.h - the plugin's stable error codes and the JSON error reply.
 *
 * Every refusal the plugin sends is {"paystream": "error", "error_code": N,
 * "error": "<text>"}. The codes are part of the public API (docs/API.md):
 * clients switch on them, so a code never changes meaning once released.
 * Pure: needs only GLib and Jansson. */
#ifndef PAYSTREAM_ERRORS_H
#define PAYSTREAM_ERRORS_H

#include <jansson.h>

typedef enum paystream_error_code {
	PAYSTREAM_OK = 0,
	PAYSTREAM_ERROR_INVALID_JSON = 440,
	PAYSTREAM_ERROR_INVALID_REQUEST = 441,
	PAYSTREAM_ERROR_MISSING_ELEMENT = 442,
	PAYSTREAM_ERROR_INVALID_ELEMENT = 443,
	PAYSTREAM_ERROR_NO_SUCH_ROOM = 444,
	PAYSTREAM_ERROR_ROOM_EXISTS = 445,
	PAYSTREAM_ERROR_UNAUTHORIZED = 446,
	PAYSTREAM_ERROR_WRONG_STREAM_KEY = 447,
	PAYSTREAM_ERROR_WRONG_PIN = 448,
	PAYSTREAM_ERROR_PERFORMER_PRESENT = 449,
	PAYSTREAM_ERROR_WRONG_STATE = 450,
	PAYSTREAM_ERROR_ROOM_FULL = 451,
	PAYSTREAM_ERROR_INVALID_JSEP = 452,
	PAYSTREAM_ERROR_INVALID_SDP = 453,
	PAYSTREAM_ERROR_NO_SUCH_PARTICIPANT = 454,
	PAYSTREAM_ERROR_VIEWER_ID_TAKEN = 455,
	PAYSTREAM_ERROR_CONFIG = 456,
	PAYSTREAM_ERROR_TOKEN_REQUIRED = 457,
	PAYSTREAM_ERROR_INVALID_TOKEN = 458,
	PAYSTREAM_ERROR_BILLING_UNAVAILABLE = 459,
	PAYSTREAM_ERROR_INVALID_TIP = 460,
	PAYSTREAM_ERROR_RATE_LIMITED = 461,
	PAYSTREAM_ERROR_STOPPED = 462,
	PAYSTREAM_ERROR_INTERNAL = 499,
} paystream_error_code;

/* Length of the buffers that carry an error's readable text. */
#define PAYSTREAM_ERROR_TEXT_LEN 256

/* The short name of a code as documented ("no_such_room"), or "unknown". */
const char *paystream_error_name(int code);

/* A new error reply object; text may be NULL (the name is used then). */
json_t *paystream_error_json(int code, const char *text);

#endif
