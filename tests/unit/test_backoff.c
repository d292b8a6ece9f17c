/* test_backoff.c - retry delays: window growth, cap, jitter bounds, no overflow. */
#include "unit.h"

#include <glib.h>

#include "../../plugin/backoff.h"

int main(void) {
	no_plan();
	/* attempt 0 */
	is_int(paystream_backoff_window_ms(0, 500, 60000), 500, "attempt 0: window is base");
	is_int(paystream_backoff_delay_ms(0, 500, 60000, 0), 250, "attempt 0, random 0: half the window");
	is_int(paystream_backoff_delay_ms(0, 500, 60000, 250), 500, "attempt 0, top of the window");
	is_int(paystream_backoff_delay_ms(0, 500, 60000, 251), 250, "random wraps in the window");
	is_int(paystream_backoff_delay_ms(0, 500, 60000, 100), 350, "attempt 0, in between");

	/* growth and cap */
	is_int(paystream_backoff_window_ms(1, 500, 60000), 1000, "attempt 1 doubles");
	is_int(paystream_backoff_window_ms(6, 500, 60000), 32000, "attempt 6");
	is_int(paystream_backoff_window_ms(7, 500, 60000), 60000, "attempt 7 is capped");
	is_int(paystream_backoff_delay_ms(7, 500, 60000, G_MAXUINT32), 30000 + G_MAXUINT32 % 30001, "capped delay");

	gboolean monotone = TRUE, bounded = TRUE, floor_kept = TRUE;
	guint prev = 0;
	for(guint a = 0; a < 200; a++) {
		guint w = paystream_backoff_window_ms(a, 500, 60000);
		if(w < prev)
			monotone = FALSE;
		prev = w;
		guint32 randoms[] = { 0, 1, 12345, 0x7fffffff, 0x80000000u, G_MAXUINT32 };
		for(size_t i = 0; i < G_N_ELEMENTS(randoms); i++) {
			guint d = paystream_backoff_delay_ms(a, 500, 60000, randoms[i]);
			if(d > w || d > 60000)
				bounded = FALSE;
			if(d < w / 2)
				floor_kept = FALSE;
		}
	}
	ok(monotone, "the window never shrinks as attempts grow");
	ok(bounded, "a delay never exceeds its window nor the cap");
	ok(floor_kept, "a delay is never below half its window");

	/* huge attempts and extreme parameters */
	is_int(paystream_backoff_window_ms(31, 1, G_MAXUINT), 1u << 31, "attempt 31 with base 1");
	is_int(paystream_backoff_window_ms(32, 1, G_MAXUINT), G_MAXUINT, "attempt 32: capped, no shift overflow");
	is_int(paystream_backoff_window_ms(G_MAXUINT, 500, 60000), 60000, "largest attempt: the cap");
	is_int(paystream_backoff_window_ms(30, G_MAXUINT, G_MAXUINT), G_MAXUINT, "largest base and cap");
	is_int(paystream_backoff_delay_ms(G_MAXUINT, G_MAXUINT, G_MAXUINT, G_MAXUINT32),
		G_MAXUINT / 2 + (guint)((guint64)G_MAXUINT32 % ((guint64)(G_MAXUINT - G_MAXUINT / 2) + 1)),
		"largest everything: no overflow");
	ok(paystream_backoff_delay_ms(G_MAXUINT, G_MAXUINT, G_MAXUINT, G_MAXUINT32) <= G_MAXUINT, "still within the cap");
	is_int(paystream_backoff_window_ms(3, 100000, 1000), 1000, "base above the cap: the cap");
	is_int(paystream_backoff_delay_ms(5, 0, 1000, 77), 0, "base 0: no delay");
	is_int(paystream_backoff_delay_ms(5, 100, 0, 77), 0, "cap 0: no delay");
	is_int(paystream_backoff_delay_ms(0, 1, 1000, 0), 0, "base 1, random 0: 0 (half of 1)");
	is_int(paystream_backoff_delay_ms(0, 1, 1000, 1), 1, "base 1, random 1: 1");
	return done_testing();
}
