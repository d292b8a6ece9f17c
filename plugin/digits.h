/* digits.h - decimal digits of an integer, written into a buffer.
 *
 * The record writer (records.c) and the journal (spool.c) put several
 * integers in every line they write, once per viewer per billing interval:
 * this is the one conversion both use, two digits per division, with no
 * locale, no printf and no allocation. Header-only so that it inlines into
 * those loops. Pure. */
#ifndef PAYSTREAM_DIGITS_H
#define PAYSTREAM_DIGITS_H

#include <string.h>
#include <glib.h>

/* The longest output: 20 digits of a guint64, or a sign and 19 digits. */
#define PAYSTREAM_DIGITS_MAX 20

/* Write n's digits at p; returns the end (no NUL). */
static inline char *paystream_digits_u64(char *p, guint64 n) {
	static const char pairs[201] =
		"00010203040506070809" "10111213141516171819" "20212223242526272829" "30313233343536373839"
		"40414243444546474849" "50515253545556575859" "60616263646566676869" "70717273747576777879"
		"80818283848586878889" "90919293949596979899";
	char digits[PAYSTREAM_DIGITS_MAX];
	char *d = digits + sizeof(digits);
	while(n >= 100) {
		guint r = (guint)(n % 100);
		n /= 100;
		d -= 2;
		memcpy(d, pairs + 2 * r, 2);
	}
	if(n >= 10) {
		d -= 2;
		memcpy(d, pairs + 2 * n, 2);
	} else {
		*--d = (char)('0' + n);
	}
	gsize len = (gsize)(digits + sizeof(digits) - d);
	memcpy(p, d, len);
	return p + len;
}

/* The same for a signed value ("-" first when negative). */
static inline char *paystream_digits_i64(char *p, gint64 value) {
	if(value < 0) {
		*p++ = '-';
		return paystream_digits_u64(p, -(guint64)value);
	}
	return paystream_digits_u64(p, (guint64)value);
}

#endif
