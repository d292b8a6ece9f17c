/* test_token.c - HS256 token verification: signatures, algorithms, times,
 * rooms, claims, sizes. Tokens with odd headers or payloads are built here
 * with the test's own base64url and OpenSSL's HMAC, not with token.c. */
#include "unit.h"

#include <string.h>
#include <glib.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../plugin/token.h"

#define NOW 1700000000
static const char *const secrets[] = { "s3cret-one", NULL };
static const char *const rotation[] = { "s3cret-new", "s3cret-one", NULL };

static char *b64url(const void *data, size_t len) {
	char *s = g_base64_encode(data, len);
	GString *out = g_string_new(NULL);
	for(char *p = s; *p != '\0'; p++) {
		if(*p == '=')
			break;
		g_string_append_c(out, *p == '+' ? '-' : (*p == '/' ? '_' : *p));
	}
	g_free(s);
	return g_string_free(out, FALSE);
}

/* header and payload as raw text; secret NULL: an empty signature. */
static char *make(const char *header, const char *payload, const char *secret) {
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
	char *signing = g_strconcat(h, ".", p, NULL);
	g_free(h);
	g_free(p);
	char *sig = g_strdup("");
	if(secret != NULL) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		const EVP_MD *md = strstr(header, "HS512") ? EVP_sha512() : EVP_sha256();
		HMAC(md, secret, (int)strlen(secret), (unsigned char *)signing, strlen(signing), mac, &n);
		g_free(sig);
		sig = b64url(mac, n);
	}
	char *jwt = g_strconcat(signing, ".", sig, NULL);
	g_free(signing);
	g_free(sig);
	return jwt;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static paystream_token_status check(const char *jwt, const char *room) {
	paystream_token t;
	paystream_token_status s = paystream_token_verify(jwt, secrets, room, NOW, &t);
	paystream_token_clear(&t);
	return s;
}

static paystream_token_status check_payload(const char *payload) {
	char *jwt = make(HS256, payload, "s3cret-one");
	paystream_token_status s = check(jwt, "demo");
	g_free(jwt);
	return s;
}

static char *sign_claims(const char *room, gint64 exp, gint64 nbf, const char *secret) {
	json_t *c = json_pack("{s:s, s:s, s:I, s:s}", "room", room, "sub", "alice", "exp", (json_int_t)exp,
		"role", "viewer");
	if(nbf != 0)
		json_object_set_new(c, "nbf", json_integer(nbf));
	char *jwt = paystream_token_sign(c, secret);
	json_decref(c);
	return jwt;
}

int main(void) {
	no_plan();
	paystream_token t;

	/* A token made by hand with the openssl command line:
	 *   b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
	 *   H=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64u)
	 *   P=$(printf '%s' '{"room":"demo","sub":"alice","exp":2000000000,"role":"viewer","budget":500}' | b64u)
	 *   S=$(printf '%s.%s' $H $P | openssl dgst -sha256 -hmac 's3cret-one' -binary | b64u) */
	const char *cli = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
		"eyJyb29tIjoiZGVtbyIsInN1YiI6ImFsaWNlIiwiZXhwIjoyMDAwMDAwMDAwLCJyb2xlIjoidmlld2VyIiwiYnVkZ2V0Ijo1MDB9."
		"EOghpgkaQ1w7bc3yC7JFX2BLCe-cY-W5TmZIQ7CKeZI";
	is_int(paystream_token_verify(cli, secrets, "demo", NOW, &t), PAYSTREAM_TOKEN_OK, "openssl-made token verifies");
	is_str(t.room, "demo", "room claim");
	is_str(t.sub, "alice", "sub claim");
	is_int(t.exp, 2000000000, "exp claim");
	is_int(t.nbf, 0, "no nbf");
	is_int(t.role, PAYSTREAM_TOKEN_ROLE_VIEWER, "viewer role");
	ok(t.has_budget, "budget present");
	is_int(t.budget, 500, "budget claim");
	paystream_token_clear(&t);
	ok(t.room == NULL && t.sub == NULL, "clear frees and zeroes");

	/* jwt.io's sample token: a valid HS256 signature, but no room claim. */
	const char *jwtio = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
	const char *const jwtio_secret[] = { "your-256-bit-secret", NULL };
	is_int(paystream_token_verify(jwtio, jwtio_secret, "demo", NOW, &t), PAYSTREAM_TOKEN_MISSING_CLAIM,
		"jwt.io sample: signature fine, room claim missing");
	paystream_token_clear(&t);
	is_int(paystream_token_verify(jwtio, secrets, "demo", NOW, &t), PAYSTREAM_TOKEN_BAD_SIGNATURE,
		"jwt.io sample with another secret: bad signature");
	paystream_token_clear(&t);

	/* sign() round trip and its header */
	char *good = sign_claims("demo", NOW + 600, 0, "s3cret-one");
	ok(good != NULL && g_str_has_prefix(good, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."), "sign: HS256 JWT header");
	ok(strchr(good, '=') == NULL && strchr(good, '+') == NULL && strchr(good, '/') == NULL, "sign: base64url, no padding");
	is_int(check(good, "demo"), PAYSTREAM_TOKEN_OK, "good token");
	is_int(check(good, "other"), PAYSTREAM_TOKEN_WRONG_ROOM, "wrong room");
	is_int(check(good, NULL), PAYSTREAM_TOKEN_WRONG_ROOM, "no room asked: wrong room");
	is_int(paystream_token_verify(good, rotation, "demo", NOW, NULL), PAYSTREAM_TOKEN_OK, "old secret during rotation; out may be NULL");
	const char *const other[] = { "nope", NULL };
	is_int(paystream_token_verify(good, other, "demo", NOW, &t), PAYSTREAM_TOKEN_BAD_SIGNATURE, "wrong secret");
	ok(t.room == NULL, "out zeroed on failure");
	const char *const none[] = { NULL };
	is_int(paystream_token_verify(good, none, "demo", NOW, &t), PAYSTREAM_TOKEN_BAD_SIGNATURE, "no secrets");
	is_int(paystream_token_verify(good, NULL, "demo", NOW, &t), PAYSTREAM_TOKEN_BAD_SIGNATURE, "NULL secrets");
	const char *const empty[] = { "", NULL };
	is_int(paystream_token_verify(good, empty, "demo", NOW, &t), PAYSTREAM_TOKEN_BAD_SIGNATURE, "an empty secret never verifies");
	json_t *obj = json_object();
	ok(paystream_token_sign(obj, "") == NULL, "sign refuses an empty secret");
	json_t *arr = json_array();
	ok(paystream_token_sign(arr, "x") == NULL, "sign refuses non-objects");
	json_decref(obj);
	json_decref(arr);

	/* Tampering: flip one character of the signature, of the payload. */
	char *bad = g_strdup(good);
	char *last = bad + strlen(bad) - 2;
	*last = (*last == 'A') ? 'B' : 'A';
	is_int(check(bad, "demo"), PAYSTREAM_TOKEN_BAD_SIGNATURE, "altered signature");
	g_free(bad);
	char *other_claims = sign_claims("vip", NOW + 600, 0, "s3cret-one");
	char *dot_good = strchr(good, '.'), *dot_other = strchr(other_claims, '.');
	char *spliced = g_strdup_printf("%.*s%.*s%s", (int)(dot_good - good), good,
		(int)(strrchr(other_claims, '.') - dot_other), dot_other, strrchr(good, '.'));
	is_int(check(spliced, "vip"), PAYSTREAM_TOKEN_BAD_SIGNATURE, "payload of another token: bad signature");
	g_free(spliced);
	g_free(other_claims);
	char *signed_new = sign_claims("demo", NOW + 600, 0, "s3cret-new");
	is_int(check(signed_new, "demo"), PAYSTREAM_TOKEN_BAD_SIGNATURE, "new secret not yet configured");
	is_int(paystream_token_verify(signed_new, rotation, "demo", NOW, &t), PAYSTREAM_TOKEN_OK, "signed with the new secret during rotation");
	paystream_token_clear(&t);
	g_free(signed_new);
	g_free(good);

	/* exp and nbf with 30 s of leeway */
	char *jwt = sign_claims("demo", NOW - 29, 0, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "expired 29 s ago: within leeway");
	g_free(jwt);
	jwt = sign_claims("demo", NOW - 30, 0, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_EXPIRED, "expired 30 s ago: expired");
	g_free(jwt);
	jwt = sign_claims("demo", NOW - 3600, 0, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_EXPIRED, "expired an hour ago");
	g_free(jwt);
	jwt = sign_claims("demo", G_MAXINT64, 0, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "exp at the largest integer: no overflow");
	g_free(jwt);
	jwt = sign_claims("demo", NOW + 600, NOW + 30, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "nbf 30 s ahead: within leeway");
	g_free(jwt);
	jwt = sign_claims("demo", NOW + 600, NOW + 31, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_NOT_YET_VALID, "nbf 31 s ahead: not yet valid");
	g_free(jwt);
	jwt = sign_claims("demo", NOW + 600, G_MININT64, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "nbf at the smallest integer: no overflow");
	g_free(jwt);
	jwt = sign_claims("demo", NOW + 600, NOW - 10, "s3cret-one");
	is_int(paystream_token_verify(jwt, secrets, "demo", NOW, &t), PAYSTREAM_TOKEN_OK, "nbf in the past");
	is_int(t.nbf, NOW - 10, "nbf kept");
	paystream_token_clear(&t);
	g_free(jwt);

	/* Algorithms */
	const char *claims = "{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\"}";
	jwt = make("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL);
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "alg none with an empty signature");
	g_free(jwt);
	jwt = make("{\"alg\":\"none\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "alg none with an HS256 signature");
	g_free(jwt);
	jwt = make("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "alg HS512");
	g_free(jwt);
	jwt = make("{\"alg\":\"RS256\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "alg RS256");
	g_free(jwt);
	jwt = make("{\"alg\":\"hs256\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "alg is case-sensitive");
	g_free(jwt);
	jwt = make("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_UNSUPPORTED_ALG, "crit header refused");
	g_free(jwt);
	jwt = make("{\"alg\":\"HS256\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "no typ is fine");
	g_free(jwt);
	jwt = make("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "another typ is ignored");
	g_free(jwt);
	jwt = make("{\"typ\":\"JWT\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_MALFORMED, "no alg: malformed");
	g_free(jwt);
	jwt = make("{\"alg\":\"HS256\",\"alg\":\"none\"}", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_MALFORMED, "duplicate alg: malformed");
	g_free(jwt);

	/* Syntax */
	is_int(check(NULL, "demo"), PAYSTREAM_TOKEN_MALFORMED, "NULL token");
	is_int(check("", "demo"), PAYSTREAM_TOKEN_MALFORMED, "empty token");
	is_int(check("abc", "demo"), PAYSTREAM_TOKEN_MALFORMED, "one part");
	is_int(check("abc.def", "demo"), PAYSTREAM_TOKEN_MALFORMED, "two parts");
	is_int(check("a.b.c.d", "demo"), PAYSTREAM_TOKEN_MALFORMED, "four parts");
	is_int(check("..", "demo"), PAYSTREAM_TOKEN_MALFORMED, "empty parts");
	jwt = make(HS256, claims, "s3cret-one");
	char *with_pad = g_strdup_printf("%s=", jwt);
	is_int(check(with_pad, "demo"), PAYSTREAM_TOKEN_MALFORMED, "padding in the signature");
	g_free(with_pad);
	char *std = g_strdup(jwt);
	std[3] = '+';
	is_int(check(std, "demo"), PAYSTREAM_TOKEN_MALFORMED, "standard base64 '+' in the header");
	g_free(std);
	char *space = g_strdup_printf(" %s", jwt);
	is_int(check(space, "demo"), PAYSTREAM_TOKEN_MALFORMED, "leading space");
	g_free(space);
	/* Two base64url characters too many at the end of the signature leave
	 * a length that is 1 modulo 4: not base64; one more byte is a MAC of the
	 * wrong size. */
	char *longer = g_strdup_printf("%sAA", jwt);
	is_int(check(longer, "demo"), PAYSTREAM_TOKEN_MALFORMED, "signature of impossible length");
	g_free(longer);
	longer = g_strdup_printf("%sA", jwt);
	is_int(check(longer, "demo"), PAYSTREAM_TOKEN_BAD_SIGNATURE, "33-byte MAC: bad signature");
	g_free(longer);
	/* The MAC's last character carries 2 unused bits: setting them gives a
	 * non-canonical encoding of the same MAC, refused. */
	char *loose = g_strdup(jwt);
	char *end = loose + strlen(loose) - 1;
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	*end = alphabet[(strchr(alphabet, *end) - alphabet) | 3];
	ok(strcmp(loose, jwt) != 0, "non-canonical variant built");
	is_int(check(loose, "demo"), PAYSTREAM_TOKEN_MALFORMED, "non-canonical base64url refused");
	g_free(loose);
	g_free(jwt);
	jwt = make("{\"alg\":\"HS256\"", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_MALFORMED, "header is bad JSON");
	g_free(jwt);
	jwt = make("[\"HS256\"]", claims, "s3cret-one");
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_MALFORMED, "header is not an object");
	g_free(jwt);
	is_int(check_payload("{\"room\":\"demo\""), PAYSTREAM_TOKEN_MALFORMED, "claims are bad JSON");
	is_int(check_payload("\"demo\""), PAYSTREAM_TOKEN_MALFORMED, "claims are not an object");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"room\":\"vip\"}"),
		PAYSTREAM_TOKEN_MALFORMED, "duplicate claim");

	/* Claims */
	is_int(check_payload("{\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MISSING_CLAIM, "no room");
	is_int(check_payload("{\"room\":\"demo\",\"exp\":1700000600,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MISSING_CLAIM, "no sub");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MISSING_CLAIM, "no exp");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600}"), PAYSTREAM_TOKEN_MISSING_CLAIM, "no role");
	is_int(check_payload("{}"), PAYSTREAM_TOKEN_MISSING_CLAIM, "no claims at all");
	is_int(check_payload("{\"room\":7,\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MALFORMED, "room not a string");
	is_int(check_payload("{\"room\":\"\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MALFORMED, "empty room");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":null,\"exp\":1700000600,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MALFORMED, "sub null");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":\"1700000600\",\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MALFORMED, "exp a string");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600.0,\"role\":\"viewer\"}"), PAYSTREAM_TOKEN_MALFORMED, "exp a real");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"nbf\":true}"), PAYSTREAM_TOKEN_MALFORMED, "nbf a boolean");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"admin\"}"), PAYSTREAM_TOKEN_MALFORMED, "unknown role");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":[\"viewer\"]}"), PAYSTREAM_TOKEN_MALFORMED, "role an array");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"budget\":-1}"), PAYSTREAM_TOKEN_MALFORMED, "negative budget");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"budget\":1.5}"), PAYSTREAM_TOKEN_MALFORMED, "real budget");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"role\":\"viewer\",\"budget\":\"5\"}"), PAYSTREAM_TOKEN_MALFORMED, "wrong type wins over a missing claim");
	is_int(check_payload("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"budget\":0,\"iat\":1,\"x\":{}}"), PAYSTREAM_TOKEN_OK, "budget 0 and extra claims");
	jwt = make(HS256, "{\"room\":\"demo\",\"sub\":\"p1\",\"exp\":1700000600,\"role\":\"publisher\"}", "s3cret-one");
	is_int(paystream_token_verify(jwt, secrets, "demo", NOW, &t), PAYSTREAM_TOKEN_OK, "publisher token");
	is_int(t.role, PAYSTREAM_TOKEN_ROLE_PUBLISHER, "publisher role");
	ok(!t.has_budget, "no budget");
	paystream_token_clear(&t);
	g_free(jwt);

	/* Size bound: a signed token just over the limit is refused unread. */
	GString *big = g_string_new("{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"pad\":\"");
	while(big->len < PAYSTREAM_TOKEN_MAX_LEN * 3 / 4)
		g_string_append_c(big, 'x');
	g_string_append(big, "\"}");
	jwt = make(HS256, big->str, "s3cret-one");
	ok(strlen(jwt) > PAYSTREAM_TOKEN_MAX_LEN, "oversize token built (%zu bytes)", strlen(jwt));
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_MALFORMED, "oversize token refused");
	g_free(jwt);
	g_string_truncate(big, 0);
	g_string_append(big, "{\"room\":\"demo\",\"sub\":\"a\",\"exp\":1700000600,\"role\":\"viewer\",\"pad\":\"");
	while(big->len < PAYSTREAM_TOKEN_MAX_LEN * 3 / 4 - 120)
		g_string_append_c(big, 'x');
	g_string_append(big, "\"}");
	jwt = make(HS256, big->str, "s3cret-one");
	ok(strlen(jwt) <= PAYSTREAM_TOKEN_MAX_LEN, "large token under the bound (%zu bytes)", strlen(jwt));
	is_int(check(jwt, "demo"), PAYSTREAM_TOKEN_OK, "large token under the bound accepted");
	g_free(jwt);
	g_string_free(big, TRUE);

	is_str(paystream_token_status_name(PAYSTREAM_TOKEN_EXPIRED), "token_expired", "status name");
	is_str(paystream_token_status_name(PAYSTREAM_TOKEN_OK), "ok", "ok name");
	is_str(paystream_token_status_name((paystream_token_status)99), "unknown", "unknown status name");
	return done_testing();
}
