/* test_ids.c - id syntax, random ids and keys, secret comparison. */
#include "unit.h"

#include <string.h>

#include "../../plugin/ids.h"

int main(void) {
	no_plan();
	ok(paystream_room_id_valid("demo"), "plain room id");
	ok(paystream_room_id_valid("a.b_c-D9"), "room id with . _ -");
	ok(!paystream_room_id_valid(""), "empty room id refused");
	ok(!paystream_room_id_valid(NULL), "NULL room id refused");
	ok(!paystream_room_id_valid("a b"), "space refused");
	ok(!paystream_room_id_valid("a/b"), "slash refused");
	ok(!paystream_room_id_valid("caf\xc3\xa9"), "non-ASCII refused");
	char id[80];
	memset(id, 'x', 64);
	id[64] = '\0';
	ok(paystream_room_id_valid(id), "64 characters accepted");
	id[64] = 'x';
	id[65] = '\0';
	ok(!paystream_room_id_valid(id), "65 characters refused");

	ok(paystream_viewer_id_valid("user@example.org:42"), "viewer id with @ and :");
	ok(!paystream_viewer_id_valid("a b"), "viewer id with space refused");
	ok(paystream_currency_valid("EUR_cents"), "currency");
	ok(!paystream_currency_valid("euro cents"), "currency with space refused");
	ok(!paystream_currency_valid("abcdefghijklmnopq"), "17-character currency refused");

	char *u1 = paystream_random_uuid(), *u2 = paystream_random_uuid();
	is_int((int)strlen(u1), 36, "uuid is 36 characters");
	ok(u1[14] == '4', "uuid is version 4");
	ok(strchr("89ab", u1[19]) != NULL, "uuid has the RFC 4122 variant");
	ok(strcmp(u1, u2) != 0, "two uuids differ");
	ok(paystream_room_id_valid(u1), "a uuid is a valid room id");
	g_free(u1);
	g_free(u2);

	char *k1 = paystream_random_key(), *k2 = paystream_random_key();
	is_int((int)strlen(k1), 32, "key is 32 characters");
	ok(strspn(k1, "0123456789abcdef") == 32, "key is lowercase hex");
	ok(strcmp(k1, k2) != 0, "two keys differ");
	g_free(k1);
	g_free(k2);

	ok(paystream_secret_matches(NULL, NULL), "no secret set: anything matches");
	ok(paystream_secret_matches(NULL, "x"), "no secret set: any given secret matches");
	ok(!paystream_secret_matches("s3cret", NULL), "secret set, none given");
	ok(!paystream_secret_matches("s3cret", "s3cre"), "prefix does not match");
	ok(!paystream_secret_matches("s3cret", "s3cret "), "longer does not match");
	ok(paystream_secret_matches("s3cret", "s3cret"), "same secret matches");
	ok(!paystream_secret_matches("s3cret", ""), "empty does not match");
	return done_testing();
}
