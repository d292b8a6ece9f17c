/* token.h - the viewer's and the performer's access tokens (JWT, HS256).
 *
 * The platform's backend signs a token per viewer (or performer) with a
 * secret it shares with the plugin; the client shows it on watch/publish and
 * on a refresh. This module checks one: exactly three base64url parts,
 * header alg "HS256" only (never "none", never any other algorithm whatever
 * the header says), an HMAC-SHA256 that matches one of the configured
 * secrets (two during a rotation) compared in constant time, then the claims:
 *
 *	room	string, must equal the room asked for		mandatory
 *	sub	string, the viewer's (or performer's) id	mandatory
 *	exp	integer, unix seconds				mandatory
 *	role	"viewer" or "publisher"				mandatory
 *	nbf	integer, unix seconds				optional
 *	budget	integer >= 0, in the room's currency		optional
 *
 * exp and nbf get PAYSTREAM_TOKEN_LEEWAY seconds of clock skew. Times are
 * integers only (a real such as 1.7e9 is malformed). Duplicate keys in the
 * header or the claims are malformed (no "which one wins" ambiguity). Other
 * claims (iat, iss, jti...) are ignored; a header "typ" is ignored; a header
 * "crit" is refused as an unsupported algorithm (we implement no extension).
 * The signature is checked before the claims are even decoded.
 *
 * paystream_token_sign() makes tokens for the tests and the reference tools.
 * Pure: GLib, Jansson and libcrypto only; errors are returned, not logged. */
#ifndef PAYSTREAM_TOKEN_H
#define PAYSTREAM_TOKEN_H

#include <glib.h>
#include <jansson.h>

/* Longest token accepted, in bytes; longer ones are malformed. */
#define PAYSTREAM_TOKEN_MAX_LEN 8192
/* Clock skew allowed on exp and nbf, in seconds. */
#define PAYSTREAM_TOKEN_LEEWAY 30

typedef enum paystream_token_role {
	PAYSTREAM_TOKEN_ROLE_VIEWER = 0,	/* "viewer" */
	PAYSTREAM_TOKEN_ROLE_PUBLISHER,		/* "publisher" */
} paystream_token_role;

typedef enum paystream_token_status {
	PAYSTREAM_TOKEN_OK = 0,
	PAYSTREAM_TOKEN_MALFORMED,			/* syntax, encoding, JSON, claim types, size */
	PAYSTREAM_TOKEN_UNSUPPORTED_ALG,	/* alg is not "HS256" (including "none"), or crit */
	PAYSTREAM_TOKEN_BAD_SIGNATURE,		/* no configured secret made this MAC */
	PAYSTREAM_TOKEN_EXPIRED,
	PAYSTREAM_TOKEN_NOT_YET_VALID,
	PAYSTREAM_TOKEN_WRONG_ROOM,
	PAYSTREAM_TOKEN_MISSING_CLAIM,		/* room, sub, exp or role absent */
} paystream_token_status;

typedef struct paystream_token {
	char *room;
	char *sub;
	gint64 exp;
	gint64 nbf;				/* 0: none */
	paystream_token_role role;
	gboolean has_budget;
	gint64 budget;			/* meaningful when has_budget */
} paystream_token;

/* Check jwt for room at time now (unix seconds). secrets is a NULL-terminated
 * list (empty strings in it are skipped: an empty secret never verifies).
 * Checks run in this order: size and syntax, header (alg), signature, claims
 * (types, then presence), exp, nbf, room; the first failure is returned.
 * out is always initialized: filled on PAYSTREAM_TOKEN_OK, zeroed otherwise;
 * paystream_token_clear() it in both cases. room NULL never matches. */
paystream_token_status paystream_token_verify(const char *jwt, const char *const *secrets,
	const char *room, gint64 now, paystream_token *out);

/* "ok", "token_malformed", "token_unsupported_alg", "token_bad_signature",
 * "token_expired", "token_not_yet_valid", "token_wrong_room",
 * "token_missing_claim"; "unknown" for anything else. */
const char *paystream_token_status_name(paystream_token_status status);

/* Free what out holds and zero it; out may be NULL. */
void paystream_token_clear(paystream_token *out);

/* A new HS256 token (g_free it) for the claims object (borrowed, dumped as
 * compact JSON) with header {"alg":"HS256","typ":"JWT"}, base64url without
 * padding. NULL if claims is not an object or secret is NULL or empty. */
char *paystream_token_sign(json_t *claims, const char *secret);

#endif
