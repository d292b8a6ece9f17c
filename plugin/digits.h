/* digits.h - decimal digits of an integer, written into a buffer.
 *
 * The record writer (records.c) and the journal (spool.c) put several
 * integers in every line they write, once per viewer per billing interval,
 * among them 13-digit millisecond times: this is the one conversion both
 * use. Numbers are cut into 8-digit groups with 32-bit
 * arithmetic and written two digits at a time from a table, straight into
 * place (the length is known first), with no locale, no printf and no
 * allocation. Header-only so that it inlines into those loops. Pure. */
#ifndef PAYSTREAM_DIGITS_H
#define PAYSTREAM_DIGITS_H

#include <string.h>
#include <glib.h>

/* The longest output: 20 digits of a guint64, or a sign and 19 digits. */
#define PAYSTREAM_DIGITS_MAX 20

static const char paystream_digit_pairs[201] =
	"00010203040506070809" "10111213141516171819" "20212223242526272829" "30313233343536373839"
	"40414243444546474849" "50515253545556575859" "60616263646566676869" "70717273747576777879"
	"80818283848586878889" "90919293949596979899";

/* How many digits n has (1 to 10): from its bit length, then one compare. */
static inline guint paystream_digits_count32(guint32 n) {
	static const guint32 powers[10] = {
		0, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000
	};
	guint bits = 32 - (guint)__builtin_clz(n | 1);	/* 1 to 32 */
	guint estimate = (bits * 1233) >> 12;		/* floor(log10(2^bits)): 0 to 9 */
	return estimate + (n >= powers[estimate]);
}

/* n < 100000000 as exactly 8 digits (leading zeros). */
static inline char *paystream_digits_fixed8(char *p, guint32 n) {
	guint32 high = n / 10000, low = n % 10000;
	memcpy(p, paystream_digit_pairs + 2 * (high / 100), 2);
	memcpy(p + 2, paystream_digit_pairs + 2 * (high % 100), 2);
	memcpy(p + 4, paystream_digit_pairs + 2 * (low / 100), 2);
	memcpy(p + 6, paystream_digit_pairs + 2 * (low % 100), 2);
	return p + 8;
}

/* Write n's digits at p; returns the end (no NUL). */
static inline char *paystream_digits_u32(char *p, guint32 n) {
	if(n < 100) {
		/* Most of a tick's numbers (its seconds, often its amount). */
		if(n < 10) {
			*p = (char)('0' + n);
			return p + 1;
		}
		memcpy(p, paystream_digit_pairs + 2 * n, 2);
		return p + 2;
	}
	char *end = p + paystream_digits_count32(n), *d = end;
	while(n >= 100) {
		d -= 2;
		memcpy(d, paystream_digit_pairs + 2 * (n % 100), 2);
		n /= 100;
	}
	if(n >= 10)
		memcpy(d - 2, paystream_digit_pairs + 2 * n, 2);
	else
		d[-1] = (char)('0' + n);
	return end;
}

static inline char *paystream_digits_u64(char *p, guint64 n) {
	if(n <= G_MAXUINT32)
		return paystream_digits_u32(p, (guint32)n);
	if(n < G_GUINT64_CONSTANT(10000000000000000)) {
		/* 10 to 16 digits: a millisecond time has 13. */
		p = paystream_digits_u32(p, (guint32)(n / 100000000));
		return paystream_digits_fixed8(p, (guint32)(n % 100000000));
	}
	p = paystream_digits_u32(p, (guint32)(n / G_GUINT64_CONSTANT(10000000000000000)));
	p = paystream_digits_fixed8(p, (guint32)(n / 100000000 % 100000000));
	return paystream_digits_fixed8(p, (guint32)(n % 100000000));
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
