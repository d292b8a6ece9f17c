/* backoff.c - exponential backoff with half jitter (see backoff.h). */
#include "backoff.h"

guint paystream_backoff_window_ms(guint attempt, guint base_ms, guint cap_ms) {
	if(base_ms == 0 || cap_ms == 0)
		return 0;
	if(base_ms >= cap_ms || attempt >= 32)
		return cap_ms;
	/* base < 2^32 and attempt < 32: the shift fits in 64 bits. */
	guint64 window = (guint64)base_ms << attempt;
	return window >= cap_ms ? cap_ms : (guint)window;
}

guint paystream_backoff_delay_ms(guint attempt, guint base_ms, guint cap_ms, guint32 random) {
	guint window = paystream_backoff_window_ms(attempt, base_ms, cap_ms);
	guint low = window / 2;
	guint64 span = (guint64)(window - low) + 1;	/* values in [low, window] */
	return low + (guint)((guint64)random % span);
}
