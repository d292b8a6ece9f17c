/* meter.h - what one viewer owes: the per-second accounting of a session.
 *
 * The ticker accounts for every second of every viewer of a priced room,
 * with whether the relay sent this viewer media during that second. The
 * relay marks the second (paystream_meter_mark: a bit per second of the
 * last 64, counted from the ticker's start) under the room's mutex, and the
 * ticker accounts for the whole seconds since its last visit
 * (paystream_meter_tick_seconds) under the same mutex: normally one, several
 * after a stall of the ticker (a slow disk holding its commit), so no second
 * with media is lost while the ticker waits. The media alone decides: the relay sends only while the viewer's PeerConnection is up, it
 * is started (not waiting, not offered), not paused, not stopped, and the
 * room's performer is live (relay.c), so media in a second proves they all
 * held during it. The viewer's state is deliberately not sampled at the tick:
 * one instant says nothing of the rest of the second, and a viewer who paused
 * just before every tick and resumed just after would watch for free. A billable second adds price_per_second to the
 * totals and to the pending span; paystream_meter_take_record() turns the
 * pending span into a record (for the spool, spool.h) and starts a new one,
 * so the records of a session always add up exactly to its totals.
 *
 * Money is integers only. The price is fixed when the meter starts: a price
 * edited mid-session applies to new sessions. With a budget (the token's
 * "budget" claim: the most this session may cost), a second is counted only
 * if the total stays within it; when the next second could not be paid for
 * the meter stops at once with "budget_exhausted", so the plugin can cut
 * the media before an unpaid second is relayed (a budget smaller than the
 * price stops the meter at init). A refreshed token may bring a new budget
 * and restart a meter stopped by its budget; any other stop is final. An
 * amount that would overflow stops the meter with "amount_overflow" and the
 * second is not counted. Once stopped, ticks count nothing, but what is
 * pending can still be taken.
 *
 * Not thread-safe: one meter is touched under its viewer's lock.
 * Pure: GLib only, no clock (time is passed in). */
#ifndef PAYSTREAM_METER_H
#define PAYSTREAM_METER_H

#include <glib.h>

#define PAYSTREAM_METER_NO_BUDGET (-1)
/* The stop reason of a meter whose budget cannot pay the next second: the
 * only stop a refreshed budget can undo. */
#define PAYSTREAM_METER_BUDGET_EXHAUSTED "budget_exhausted"

/* A span of counted seconds, to be appended to the spool. */
typedef struct paystream_meter_record {
	guint64 seq;			/* 1, 2, 3... per meter */
	gint64 seconds;
	gint64 amount;			/* seconds * price, exactly */
	gint64 start_ms;		/* start of the first second counted in the span */
	gint64 end_ms;			/* end of the last one; not every second in between
							 * need have been counted (pauses...) */
} paystream_meter_record;

typedef struct paystream_meter {
	gint64 price_per_second;
	char *currency;			/* a copy */
	gint64 budget;			/* PAYSTREAM_METER_NO_BUDGET: none */
	gint64 total_seconds;
	gint64 total_amount;
	gint64 pending_seconds;	/* counted, not yet in a record */
	gint64 pending_amount;
	gint64 pending_start_ms;	/* meaningful when pending_seconds > 0 */
	gint64 pending_end_ms;
	guint64 next_seq;
	gboolean stopped;
	const char *stop_reason;	/* static string; NULL while running */
} paystream_meter;

/* Start a meter. price_per_second >= 0; budget >= 0 or
 * PAYSTREAM_METER_NO_BUDGET; currency may be NULL. A negative price is taken
 * as 0 and the meter stopped with "invalid_price". */
void paystream_meter_init(paystream_meter *m, gint64 price_per_second, const char *currency, gint64 budget);
/* Free the currency copy. */
void paystream_meter_clear(paystream_meter *m);

/* Account for the second that ends at now_ms (unix ms), in which the relay
 * did or did not send media. Returns TRUE if it was counted. May stop the
 * meter (check m->stopped afterwards). */
gboolean paystream_meter_tick(paystream_meter *m, gboolean media_relayed, gint64 now_ms);

/* If seconds are pending: fill out, give it the next seq, reset the pending
 * span and return TRUE; else FALSE (out untouched). */
gboolean paystream_meter_take_record(paystream_meter *m, paystream_meter_record *out);

/* Undo the last take_record (its record could not be spooled): the seconds
 * are pending again and the next record gets the same seq. Any other record
 * is ignored. */
void paystream_meter_put_back(paystream_meter *m, const paystream_meter_record *r);

/* The seconds the relay sent a viewer media in: bit (s % 64) for second s
 * (counted from the ticker's start), for the 64 seconds up to and
 * including `last`, the latest second marked. The relay keeps it exact:
 * moving on to a later second it clears the bits of the seconds it skipped
 * (no media in them), so a bit never stands for a second 64 earlier. */
typedef struct paystream_media_marks {
	guint64 mask;		/* 0: no second marked yet */
	guint64 last;
} paystream_media_marks;

/* How far back a visit can look: a ticker stalled longer loses the seconds
 * before (the caller logs them). The 64 bits hold `last` and the 63
 * seconds before it, and the relay has usually marked the second in
 * progress (the visit's `to`) by then. */
#define PAYSTREAM_METER_LOOKBACK 63

/* The relay sent media in second. Writes only when the second is not
 * marked yet: once a second, not once a packet. */
static inline void paystream_meter_mark(paystream_media_marks *marks, guint64 second) {
	if(marks->mask != 0 && second == marks->last)
		return;
	if(marks->mask == 0 || second > marks->last) {
		if(marks->mask != 0 && second - marks->last < 64) {
			for(guint64 skipped = marks->last + 1; skipped < second; skipped++)
				marks->mask &= ~(G_GUINT64_CONSTANT(1) << (skipped & 63));
		} else {
			marks->mask = 0;
		}
		marks->last = second;
	} else if(marks->last - second >= 64) {
		return;		/* too old to be told apart from a later second */
	}
	guint64 bit = G_GUINT64_CONSTANT(1) << (second & 63);
	if((marks->mask & bit) == 0)
		marks->mask |= bit;
}

/* Whether second is marked. */
static inline gboolean paystream_meter_marked(const paystream_media_marks *marks, guint64 second) {
	return marks->mask != 0 && second <= marks->last && marks->last - second < 64 &&
		(marks->mask & (G_GUINT64_CONSTANT(1) << (second & 63))) != 0;
}

/* Account for the whole seconds [from, to) (at most the last
 * PAYSTREAM_METER_LOOKBACK of them) as paystream_meter_tick would, billing
 * the marked ones; the second to - 1 ends at now_ms. Returns the seconds
 * counted. The marks are only read. */
guint paystream_meter_tick_seconds(paystream_meter *m, const paystream_media_marks *marks, guint64 from, guint64 to,
	gint64 now_ms);

/* A refreshed token's budget (or PAYSTREAM_METER_NO_BUDGET) replaces the
 * old one. A meter stopped by "budget_exhausted" runs again if the new
 * budget pays for one more second; a running meter whose new budget does
 * not stops. Returns TRUE if the meter runs afterwards. */
gboolean paystream_meter_refresh(paystream_meter *m, gint64 new_budget);
/* Whether budget (or PAYSTREAM_METER_NO_BUDGET) pays for one more second
 * after the totals: what paystream_meter_refresh will find, changing
 * nothing. */
gboolean paystream_meter_budget_fits(const paystream_meter *m, gint64 budget);

/* Stop for reason (a static string, e.g. "left", "kicked", "token_expired");
 * the first reason is kept. */
void paystream_meter_stop(paystream_meter *m, const char *reason);

#endif
