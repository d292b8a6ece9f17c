/* signature.h - the signature header of requests to the billing service.
 *
 * Every HTTP request the billing thread sends carries a header whose value is
 * "t=<unix seconds>,v1=<hex>", where <hex> is the lowercase hexadecimal
 * HMAC-SHA256, keyed with the shared billing secret, of the text "<t>." followed
 * by the exact body bytes. The billing service recomputes it, compares in
 * constant time and refuses stale t values, so a captured request can be
 * neither altered nor replayed later. The body is signed as bytes: sign what
 * is sent, after serializing, never a re-serialization.
 * Pure: GLib and libcrypto only. */
#ifndef PAYSTREAM_SIGNATURE_H
#define PAYSTREAM_SIGNATURE_H

#include <stddef.h>
#include <glib.h>

/* The header value (g_free it) for body (len bytes, may hold any byte;
 * body may be NULL when len is 0) sent at time t. NULL when secret is NULL
 * or empty, or body is NULL with len > 0. */
char *paystream_signature_header(const char *secret, gint64 t, const char *body, size_t len);

#endif
