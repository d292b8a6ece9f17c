/* metering.h - billing viewers by the second: their viewing sessions, the
 * one ticker that drives every room, and the records it spools.
 *
 * A viewer who watches with a token has a viewing session (a UUID in every
 * record); in a priced room it is metered. Once a second the ticker visits
 * every room under that room's lock, gives each metered viewer's meter
 * (meter.h) the seconds since its last visit that the relay marked with
 * media (one, or all of them when the visit came late), pushes `tick` and `earnings`
 * events, and every billing_interval turns each session's counted seconds
 * into a `tick` record. All records of a tick are appended to the spool and
 * made durable with one fsync before any event about them is pushed. (A
 * stop decided elsewhere, by a kick, a destroy or the billing service's
 * stop list, tells the viewer at once; its last record reaches the disk
 * with the ticker's next commit, within a second: a crash in between loses
 * those seconds to the platform, never bills them twice.)
 * Records built under a room's lock only join a memory queue; the ticker
 * moves them to the spool with no room lock held, so the relay never waits
 * for a disk. Cost is linear in viewers and stays off the media path: the
 * relay only sets a flag per viewer. */
#ifndef PAYSTREAM_METERING_H
#define PAYSTREAM_METERING_H

#include <jansson.h>

#include "notify.h"
#include "room.h"
#include "token.h"

/* The token clock leeway, in seconds (token.c uses the same). */
#define PAYSTREAM_TOKEN_LEEWAY 30

/* Give a viewer who presented token a viewing session; in a priced room,
 * start its meter and spool session_start. Call with the room's lock held,
 * the viewer in the room. Returns 0, PAYSTREAM_ERROR_BILLING_UNAVAILABLE
 * (the spool is full), or PAYSTREAM_ERROR_INVALID_TOKEN (its budget cannot
 * pay for one second). */
int paystream_metering_begin_locked(paystream_viewer *viewer, const paystream_token *token);

/* Stop billing a viewer for reason (insufficient_funds, budget_exhausted,
 * token_expired, kicked, room_destroyed): no more media, a `stopped` event
 * queued in box, what was counted spooled. Room lock held. */
void paystream_metering_stop_locked(paystream_viewer *viewer, const char *reason, paystream_outbox *box);

/* The session is over (the viewer left, hung up, was kicked or the room was
 * destroyed): spool the last counted seconds and session_end with the
 * totals. Room lock held; a second call does nothing. */
void paystream_metering_finish_locked(paystream_viewer *viewer, const char *reason);

/* A token refresh: new expiry and budget; may restart a meter stopped by
 * its budget, or stop a running one whose new budget cannot pay the next
 * second (its `stopped` event goes to box). Room lock held. Returns TRUE if
 * the viewer gets media again. */
gboolean paystream_metering_refresh_locked(paystream_viewer *viewer, const paystream_token *token,
	paystream_outbox *box);

/* The billing service's stop list (session id -> reason): stop the viewers
 * of those sessions, in one walk of every room's viewers. The reasons in
 * stops are replaced by the ones kept (the table has no value destructor). */
void paystream_metering_stop_sessions(GHashTable *stops);

/* The room's currency was edited (room->mutex held): the running show's
 * and summary's amounts so far move apart under old_currency. */
void paystream_metering_currency_changed_locked(paystream_room *room, const char *old_currency);

/* {"session", "seconds", "amount", "currency", "stopped"} for
 * listparticipants; room lock held. NULL for a viewer without a session. */
json_t *paystream_metering_describe_locked(const paystream_viewer *viewer);

/* Verify a client's token for room and role against the configured
 * secrets (the current one and, during a rotation, the previous one).
 * Returns 0 with out filled (paystream_token_clear it), or
 * PAYSTREAM_ERROR_INVALID_TOKEN with the reason in error. */
int paystream_metering_check_token(const char *jwt, const char *room, paystream_token_role role,
	paystream_token *out, char *error, size_t errlen);

/* The ticker counts whole seconds from its start (monotonic time): the
 * relay marks media in the second a packet goes out in. */
extern gint64 paystream_ticker_epoch_us;
static inline guint64 paystream_ticker_second(gint64 monotonic_us) {
	gint64 since = monotonic_us - __atomic_load_n(&paystream_ticker_epoch_us, __ATOMIC_RELAXED);
	return since > 0 ? (guint64)since / G_USEC_PER_SEC : 0;
}

/* At plugin init, before any media: the ticker's seconds start now. */
void paystream_metering_init(void);
/* The ticker thread. */
void paystream_ticker_start(void);
void paystream_ticker_stop(void);
/* Spool what the backlog holds and commit (at shutdown, after the last
 * sessions were finished). */
void paystream_metering_flush(void);
/* At plugin destroy, after the last flush: free the backlog, and log the
 * records a full or broken spool never took. */
void paystream_metering_deinit(void);

#endif
