/* tips.h - viewers tipping the performer.
 *
 * A tip is checked (amount within the room's min_tip/max_tip, a message of
 * at most 200 characters, the viewer's rate limit), spooled and sent to the
 * billing service at once by billing.c. The whole room sees it only once the
 * service accepted it; a declined or failed tip is told to the tipper alone.
 * A tip_id is the client's idempotency key: repeating one never charges or
 * shows a tip twice. */
#ifndef PAYSTREAM_TIPS_H
#define PAYSTREAM_TIPS_H

#include <jansson.h>

#include "handlers.h"

#define PAYSTREAM_TIP_MESSAGE_MAX 200	/* characters */
#define PAYSTREAM_TIP_INTERVAL_MS 1000	/* one tip a second per viewer... */
#define PAYSTREAM_TIP_BURST 3			/* ...after a burst of three */

void paystream_tips_init(void);
void paystream_tips_deinit(void);
/* The tips the server's previous run spooled and nobody settled yet
 * ([{"tip_id": T, ...}, ...], as paystream_spool_unacked_tips lists them):
 * in flight, so a request repeating one of their ids is answered as a
 * repeat instead of being spooled again. */
void paystream_tips_adopt_spooled(json_t *spooled);

/* The `tip` request of a watching viewer. */
void paystream_tip_request(paystream_message *msg, paystream_viewer *viewer, paystream_result *result);

/* billing.c's outcome of a tip (on a billing thread). */
void paystream_tips_result(json_t *tip, const char *status, const char *reason);

#endif
