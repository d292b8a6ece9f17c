/* notify.h - messages out of the plugin: events pushed to a handle, and
 * events for Janus's event handlers.
 *
 * All helpers take ownership of the JSON they are given. Events to event
 * handlers are built only when Janus has handlers enabled. */
#ifndef PAYSTREAM_NOTIFY_H
#define PAYSTREAM_NOTIFY_H

#include <jansson.h>

#include "session.h"

/* {"paystream": name, "room": room} (room may be NULL). */
json_t *paystream_event_new(const char *name, const char *room);

/* Push event (and jsep, may be NULL) to the session's handle. */
void paystream_push(paystream_session *session, const char *transaction, json_t *event, json_t *jsep);
/* Push {"paystream": "error", ...} to the session's handle. */
void paystream_push_error(paystream_session *session, const char *transaction, int code, const char *text);

/* TRUE if Janus has event handlers that want our events. */
gboolean paystream_notify_enabled(void);
/* Send {"event": name, "room": room, ...fields} to event handlers; session
 * may be NULL for room-level events. fields is consumed (may be NULL). */
void paystream_notify(paystream_session *session, const char *name, const char *room, json_t *fields);


/* Pushes collected while a room's lock is held and sent after it is
 * released, so that no core callback runs under a room lock. */
typedef struct paystream_outbox {
	GList *items;
} paystream_outbox;

#define PAYSTREAM_OUTBOX_INIT { NULL }

/* Queue event (and jsep, may be NULL) for session; with close_pc the
 * session's PeerConnection is closed after the event is pushed. */
void paystream_outbox_add(paystream_outbox *box, paystream_session *session, json_t *event, json_t *jsep,
	gboolean close_pc);
/* Push everything queued, in order, and empty the box. */
void paystream_outbox_flush(paystream_outbox *box);

#endif
