/* backoff.h - how long the billing thread waits before retrying a request.
 *
 * Exponential backoff with jitter: the window of attempt n (0 for the first
 * retry) is min(cap_ms, base_ms * 2^n), and the delay is drawn uniformly from
 * the upper half of that window, [window/2, window]. The lower bound keeps a
 * failing billing service from being retried in a tight loop (pure "full
 * jitter" can draw 0); the random upper half still spreads the retries of
 * many Janus instances that lost the service at the same moment. The
 * randomness is a parameter (the caller passes a g_random_int() or RAND_bytes
 * value) so that the tests are deterministic. No overflow for any attempt:
 * once base * 2^n reaches the cap, the window stays at the cap. The modulo
 * bias of a 32-bit random value over a window of at most 2^31 ms is
 * irrelevant here. Pure: GLib only. */
#ifndef PAYSTREAM_BACKOFF_H
#define PAYSTREAM_BACKOFF_H

#include <glib.h>

/* The delay in ms before retry number attempt (0-based). Never more than
 * cap_ms, never less than half the window; 0 when base_ms or cap_ms is 0. */
guint paystream_backoff_delay_ms(guint attempt, guint base_ms, guint cap_ms, guint32 random);

/* The window of attempt: min(cap_ms, base_ms * 2^attempt), without overflow. */
guint paystream_backoff_window_ms(guint attempt, guint base_ms, guint cap_ms);

#endif
