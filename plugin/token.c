/* token.c - HS256 JWT verification and signing (see token.h). */
#include "token.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define PAYSTREAM_TOKEN_MAC_LEN 32

static const char *const paystream_token_names[] = {
	[PAYSTREAM_TOKEN_OK] = "ok",
	[PAYSTREAM_TOKEN_MALFORMED] = "token_malformed",
	[PAYSTREAM_TOKEN_UNSUPPORTED_ALG] = "token_unsupported_alg",
	[PAYSTREAM_TOKEN_BAD_SIGNATURE] = "token_bad_signature",
	[PAYSTREAM_TOKEN_EXPIRED] = "token_expired",
	[PAYSTREAM_TOKEN_NOT_YET_VALID] = "token_not_yet_valid",
	[PAYSTREAM_TOKEN_WRONG_ROOM] = "token_wrong_room",
	[PAYSTREAM_TOKEN_MISSING_CLAIM] = "token_missing_claim",
};

const char *paystream_token_status_name(paystream_token_status status) {
	if((int)status < 0 || (size_t)status >= G_N_ELEMENTS(paystream_token_names))
		return "unknown";
	return paystream_token_names[status];
}

void paystream_token_clear(paystream_token *out) {
	if(out == NULL)
		return;
	g_free(out->room);
	g_free(out->sub);
	memset(out, 0, sizeof(*out));
}

/* base64url without padding, from GLib's standard base64. */
static char *paystream_b64url_encode(const guint8 *data, size_t len) {
	char *s = g_base64_encode(data, len);
	size_t n = strlen(s);
	while(n > 0 && s[n-1] == '=')
		s[--n] = '\0';
	for(size_t i = 0; i < n; i++) {
		if(s[i] == '+')
			s[i] = '-';
		else if(s[i] == '/')
			s[i] = '_';
	}
	return s;
}

/* Decode len bytes of base64url (no padding). GLib's decoder skips characters
 * it does not know, so the alphabet is checked first, and the result must
 * re-encode to the same text: one encoding per value, no hidden bits.
 * Returns NULL (and *out_len 0) when the text is not canonical base64url. */
static guint8 *paystream_b64url_decode(const char *text, size_t len, size_t *out_len) {
	*out_len = 0;
	if(len % 4 == 1)
		return NULL;
	for(size_t i = 0; i < len; i++) {
		char c = text[i];
		if(!g_ascii_isalnum(c) && c != '-' && c != '_')
			return NULL;
	}
	if(len == 0)
		return g_malloc0(1);
	GString *b64 = g_string_sized_new(len + 3);
	for(size_t i = 0; i < len; i++) {
		char c = text[i];
		g_string_append_c(b64, c == '-' ? '+' : (c == '_' ? '/' : c));
	}
	while(b64->len % 4 != 0)
		g_string_append_c(b64, '=');
	gsize n = 0;
	guint8 *data = g_base64_decode(b64->str, &n);
	g_string_free(b64, TRUE);
	char *again = paystream_b64url_encode(data, n);
	gboolean canonical = strlen(again) == len && memcmp(again, text, len) == 0;
	g_free(again);
	if(!canonical) {
		g_free(data);
		return NULL;
	}
	*out_len = n;
	return data;
}

/* A JSON object from a base64url part, or NULL. */
static json_t *paystream_token_part_json(const char *text, size_t len) {
	size_t n = 0;
	guint8 *raw = paystream_b64url_decode(text, len, &n);
	if(raw == NULL)
		return NULL;
	json_t *obj = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	g_free(raw);
	if(obj != NULL && !json_is_object(obj)) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static gboolean paystream_token_mac(const char *secret, const char *data, size_t len,
		guint8 mac[PAYSTREAM_TOKEN_MAC_LEN]) {
	unsigned int mac_len = 0;
	if(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, len,
			mac, &mac_len) == NULL)
		return FALSE;
	return mac_len == PAYSTREAM_TOKEN_MAC_LEN;
}

/* The claim's type: 1 present and right, 0 absent, -1 present and wrong. */
static int paystream_claim_string(json_t *claims, const char *name, const char **value) {
	json_t *v = json_object_get(claims, name);
	if(v == NULL)
		return 0;
	if(!json_is_string(v) || json_string_length(v) == 0 ||
			strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	*value = json_string_value(v);
	return 1;
}

static int paystream_claim_integer(json_t *claims, const char *name, gint64 *value) {
	json_t *v = json_object_get(claims, name);
	if(v == NULL)
		return 0;
	if(!json_is_integer(v))
		return -1;
	*value = (gint64)json_integer_value(v);
	return 1;
}

static paystream_token_status paystream_token_claims(json_t *claims, const char *room, gint64 now,
		paystream_token *out) {
	const char *c_room = NULL, *c_sub = NULL, *c_role = NULL;
	gint64 exp = 0, nbf = 0, budget = 0;
	int has_room = paystream_claim_string(claims, "room", &c_room);
	int has_sub = paystream_claim_string(claims, "sub", &c_sub);
	int has_role = paystream_claim_string(claims, "role", &c_role);
	int has_exp = paystream_claim_integer(claims, "exp", &exp);
	int has_nbf = paystream_claim_integer(claims, "nbf", &nbf);
	int has_budget = paystream_claim_integer(claims, "budget", &budget);
	if(has_room < 0 || has_sub < 0 || has_role < 0 || has_exp < 0 || has_nbf < 0 || has_budget < 0)
		return PAYSTREAM_TOKEN_MALFORMED;
	if(has_budget > 0 && budget < 0)
		return PAYSTREAM_TOKEN_MALFORMED;
	paystream_token_role role = PAYSTREAM_TOKEN_ROLE_VIEWER;
	if(has_role > 0) {
		if(strcmp(c_role, "viewer") == 0)
			role = PAYSTREAM_TOKEN_ROLE_VIEWER;
		else if(strcmp(c_role, "publisher") == 0)
			role = PAYSTREAM_TOKEN_ROLE_PUBLISHER;
		else
			return PAYSTREAM_TOKEN_MALFORMED;
	}
	if(!has_room || !has_sub || !has_role || !has_exp)
		return PAYSTREAM_TOKEN_MISSING_CLAIM;
	/* Expired once now >= exp + leeway; written so that no sum overflows. */
	if(exp <= G_MAXINT64 - PAYSTREAM_TOKEN_LEEWAY && now >= exp + PAYSTREAM_TOKEN_LEEWAY)
		return PAYSTREAM_TOKEN_EXPIRED;
	if(has_nbf > 0 && nbf >= G_MININT64 + PAYSTREAM_TOKEN_LEEWAY && now < nbf - PAYSTREAM_TOKEN_LEEWAY)
		return PAYSTREAM_TOKEN_NOT_YET_VALID;
	if(room == NULL || strcmp(room, c_room) != 0)
		return PAYSTREAM_TOKEN_WRONG_ROOM;
	out->room = g_strdup(c_room);
	out->sub = g_strdup(c_sub);
	out->exp = exp;
	out->nbf = has_nbf > 0 ? nbf : 0;
	out->role = role;
	out->has_budget = has_budget > 0;
	out->budget = has_budget > 0 ? budget : 0;
	return PAYSTREAM_TOKEN_OK;
}

paystream_token_status paystream_token_verify(const char *jwt, const char *const *secrets,
		const char *room, gint64 now, paystream_token *out) {
	paystream_token scratch;
	if(out == NULL)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	if(jwt == NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	size_t len = strnlen(jwt, PAYSTREAM_TOKEN_MAX_LEN + 1);
	if(len == 0 || len > PAYSTREAM_TOKEN_MAX_LEN)
		return PAYSTREAM_TOKEN_MALFORMED;
	/* Exactly three parts: header.payload.signature */
	const char *dot1 = memchr(jwt, '.', len);
	if(dot1 == NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt));
	if(dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jwt)) != NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	size_t header_len = (size_t)(dot1 - jwt);
	size_t payload_len = (size_t)(dot2 - dot1 - 1);
	size_t signed_len = (size_t)(dot2 - jwt);
	size_t sig_len = len - signed_len - 1;
	if(header_len == 0 || payload_len == 0)
		return PAYSTREAM_TOKEN_MALFORMED;

	/* The header first: an algorithm we do not implement stops here, before
	 * the signature part is even looked at (so "none" with an empty
	 * signature is an unsupported algorithm, not a bad signature). */
	json_t *header = paystream_token_part_json(jwt, header_len);
	if(header == NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	json_t *alg = json_object_get(header, "alg");
	json_t *typ = json_object_get(header, "typ");
	paystream_token_status status = PAYSTREAM_TOKEN_OK;
	if(alg == NULL || (typ != NULL && !json_is_string(typ)))
		status = PAYSTREAM_TOKEN_MALFORMED;
	else if(!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0 ||
			json_string_length(alg) != 5 || json_object_get(header, "crit") != NULL)
		status = PAYSTREAM_TOKEN_UNSUPPORTED_ALG;
	json_decref(header);
	if(status != PAYSTREAM_TOKEN_OK)
		return status;

	size_t mac_len = 0;
	guint8 *mac = paystream_b64url_decode(dot2 + 1, sig_len, &mac_len);
	if(mac == NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	/* Every secret is tried (no early exit), each in constant time. */
	gboolean match = FALSE;
	if(mac_len == PAYSTREAM_TOKEN_MAC_LEN && secrets != NULL) {
		for(const char *const *s = secrets; *s != NULL; s++) {
			guint8 expected[PAYSTREAM_TOKEN_MAC_LEN];
			if((*s)[0] == '\0' || !paystream_token_mac(*s, jwt, signed_len, expected))
				continue;
			if(CRYPTO_memcmp(expected, mac, PAYSTREAM_TOKEN_MAC_LEN) == 0)
				match = TRUE;
			OPENSSL_cleanse(expected, sizeof(expected));
		}
	}
	g_free(mac);
	if(!match)
		return PAYSTREAM_TOKEN_BAD_SIGNATURE;

	json_t *claims = paystream_token_part_json(dot1 + 1, payload_len);
	if(claims == NULL)
		return PAYSTREAM_TOKEN_MALFORMED;
	status = paystream_token_claims(claims, room, now, out);
	json_decref(claims);
	if(status != PAYSTREAM_TOKEN_OK)
		paystream_token_clear(out);
	else if(out == &scratch)
		paystream_token_clear(&scratch);
	return status;
}

char *paystream_token_sign(json_t *claims, const char *secret) {
	if(!json_is_object(claims) || secret == NULL || secret[0] == '\0')
		return NULL;
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char *payload = json_dumps(claims, JSON_COMPACT);
	if(payload == NULL)
		return NULL;
	char *h64 = paystream_b64url_encode((const guint8 *)header, strlen(header));
	char *p64 = paystream_b64url_encode((const guint8 *)payload, strlen(payload));
	free(payload);
	char *signing = g_strconcat(h64, ".", p64, NULL);
	g_free(h64);
	g_free(p64);
	guint8 mac[PAYSTREAM_TOKEN_MAC_LEN];
	char *jwt = NULL;
	if(paystream_token_mac(secret, signing, strlen(signing), mac)) {
		char *s64 = paystream_b64url_encode(mac, sizeof(mac));
		jwt = g_strconcat(signing, ".", s64, NULL);
		g_free(s64);
	}
	g_free(signing);
	return jwt;
}
