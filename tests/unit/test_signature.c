/* test_signature.c - the billing request signature header, against vectors
 * computed outside this code. */
#include "unit.h"

#include <string.h>
#include <glib.h>

#include "../../plugin/signature.h"

int main(void) {
	no_plan();
	/* Computed with the openssl command line:
	 *   printf '%s' '1700000000.{"batch_id":"b","records":[]}' | openssl dgst -sha256 -hmac 'whsec_test' */
	const char *body = "{\"batch_id\":\"b\",\"records\":[]}";
	char *h = paystream_signature_header("whsec_test", 1700000000, body, strlen(body));
	is_str(h, "t=1700000000,v1=8572d0c89469b1a3bca2990b16899ce6c6c442e03f86953eddc652dc7055872f",
		"vector from openssl dgst -hmac");
	g_free(h);

	/* Computed with Python's hmac module (no OpenSSL command line), over a
	 * body with UTF-8, an escaped newline and a NUL byte in the middle, so
	 * the length is used and not strlen():
	 *   body = b'{"type":"tip","amount":50,"note":"caf\xc3\xa9\\n"}\x00tail'
	 *   hmac.new(b"k2-rotated", b"-5." + body, hashlib.sha256).hexdigest() */
	const char body2[] = "{\"type\":\"tip\",\"amount\":50,\"note\":\"caf\xc3\xa9\\n\"}\0tail";
	h = paystream_signature_header("k2-rotated", -5, body2, sizeof(body2) - 1);
	is_str(h, "t=-5,v1=3648eab0c46f96926dbdade1304f2425d8b0482df2b0c8e3f25284e6ab430bb5",
		"vector from Python's hmac, body with a NUL byte");
	g_free(h);

	/* Python: hmac.new(b"s", b"0.", hashlib.sha256).hexdigest() */
	h = paystream_signature_header("s", 0, NULL, 0);
	is_str(h, "t=0,v1=2572e102ebbc88d57bc0ef48471ee28bb7fc8c6e9c0558b3c8e5d276f84ac9c3", "empty body");
	g_free(h);
	h = paystream_signature_header("s", 0, "", 0);
	is_str(h, "t=0,v1=2572e102ebbc88d57bc0ef48471ee28bb7fc8c6e9c0558b3c8e5d276f84ac9c3", "empty body given as \"\"");
	g_free(h);

	char *a = paystream_signature_header("whsec_test", 1700000001, body, strlen(body));
	ok(a != NULL && strstr(a, "8572d0c8") == NULL, "another t, another MAC");
	ok(g_str_has_prefix(a, "t=1700000001,v1="), "t is the one given");
	is_int(strlen(a), strlen("t=1700000001,v1=") + 64, "64 hex digits");
	ok(strspn(a + strlen("t=1700000001,v1="), "0123456789abcdef") == 64, "lowercase hex");
	g_free(a);
	a = paystream_signature_header("whsec_test", G_MAXINT64, body, strlen(body));
	ok(a != NULL && g_str_has_prefix(a, "t=9223372036854775807,v1="), "largest t");
	g_free(a);

	ok(paystream_signature_header(NULL, 1, body, strlen(body)) == NULL, "no secret: NULL");
	ok(paystream_signature_header("", 1, body, strlen(body)) == NULL, "empty secret: NULL");
	ok(paystream_signature_header("s", 1, NULL, 3) == NULL, "NULL body with a length: NULL");
	return done_testing();
}
