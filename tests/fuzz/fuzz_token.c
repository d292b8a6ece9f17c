/* fuzz_token.c - libFuzzer target for token.c (see README.md here).
 *
 * The first byte picks the mode:
 *	even: the rest is a token, verified as it is (syntax, base64url, header,
 *	      signature paths);
 *	odd:  the rest is "<header JSON>\n<claims JSON>", made into a token with a
 *	      valid HS256 signature, so that the claims checks are reached too.
 * Besides the sanitizers, it checks that an accepted token carries what
 * verify promises, and that paystream_token_sign()'s tokens always pass the
 * header and signature checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token.h"

#define SECRET "fuzz-secret"
#define NOW 1700000000

static const char *const secrets[] = { "old-secret", SECRET, NULL };

static char *b64url(const void *data, size_t len) {
	char *s = g_base64_encode(data, len);
	for(char *p = s; *p != '\0'; p++) {
		if(*p == '+')
			*p = '-';
		else if(*p == '/')
			*p = '_';
		else if(*p == '=')
			*p = '\0';
	}
	return s;
}

static void check(const char *jwt) {
	paystream_token t;
	paystream_token_status s = paystream_token_verify(jwt, secrets, "demo", NOW, &t);
	if(s == PAYSTREAM_TOKEN_OK) {
		if(t.room == NULL || strcmp(t.room, "demo") != 0 || t.sub == NULL || t.sub[0] == '\0' ||
				t.exp + PAYSTREAM_TOKEN_LEEWAY <= NOW || (t.has_budget && t.budget < 0) ||
				(t.role != PAYSTREAM_TOKEN_ROLE_VIEWER && t.role != PAYSTREAM_TOKEN_ROLE_PUBLISHER))
			abort();
	} else if(t.room != NULL || t.sub != NULL) {
		abort();
	}
	paystream_token_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if(size == 0)
		return 0;
	const char *rest = (const char *)data + 1;
	size_t len = size - 1;
	if((data[0] & 1) == 0) {
		char *jwt = g_strndup(rest, len);
		check(jwt);
		g_free(jwt);
		return 0;
	}
	const char *nl = memchr(rest, '\n', len);
	if(nl == NULL)
		return 0;
	char *h = b64url(rest, (size_t)(nl - rest));
	char *p = b64url(nl + 1, len - (size_t)(nl - rest) - 1);
	char *signing = g_strconcat(h, ".", p, NULL);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)signing, strlen(signing), mac, &n);
	char *sig = b64url(mac, n);
	char *jwt = g_strconcat(signing, ".", sig, NULL);
	check(jwt);
	g_free(h);
	g_free(p);
	g_free(signing);
	g_free(sig);
	g_free(jwt);

	/* Our own signer's tokens never fail on header or signature. */
	json_t *claims = json_loadb(nl + 1, len - (size_t)(nl - rest) - 1, 0, NULL);
	if(json_is_object(claims)) {
		char *own = paystream_token_sign(claims, SECRET);
		if(own == NULL)
			abort();
		paystream_token t;
		paystream_token_status s = paystream_token_verify(own, secrets, "demo", NOW, &t);
		paystream_token_clear(&t);
		if(strlen(own) > PAYSTREAM_TOKEN_MAX_LEN ? s != PAYSTREAM_TOKEN_MALFORMED :
				(s == PAYSTREAM_TOKEN_UNSUPPORTED_ALG || s == PAYSTREAM_TOKEN_BAD_SIGNATURE))
			abort();
		g_free(own);
	}
	json_decref(claims);
	return 0;
}
