/* notify.h - messages out of the plugin: events pushed to a handle, and
 * events for Janus's event handlers.
 *
 * All helpers take ownership of the JSON they are given. Events to event
 * handlers are built only when Janus has handlers enabled.
 *
 * Pushing a JSEP makes Janus set up ICE for the handle and (without
 * full_trickle) wait until its candidates are gathered: milliseconds on a
 * bare host, a STUN round trip or more with a STUN or TURN server, up to
 * seconds while an old PeerConnection is still being cleaned up. So an event
 * with a JSEP is handed to a small pool of threads (offer_threads) and the
 * caller goes on. Everything pushed to one handle still arrives in the order
 * it was pushed: from a JSEP push until that handle's queue is empty again,
 * its later pushes and PeerConnection closes queue behind it. A queued push
 * holds a reference to its session; a handle gone by its turn gets nothing. */
#ifndef PAYSTREAM_NOTIFY_H
#define PAYSTREAM_NOTIFY_H

#include <jansson.h>

#include "session.h"

/* {"paystream": name, "room": room} (room may be NULL). */
json_t *paystream_event_new(const char *name, const char *room);

/* Push event (and jsep, may be NULL) to the session's handle: now, or after
 * the pushes queued before it (see above). */
void paystream_push(paystream_session *session, const char *transaction, json_t *event, json_t *jsep);
/* Close the handle's PeerConnection once everything pushed to it before has
 * been pushed (paystream_session_close_pc). */
void paystream_push_close(paystream_session *session);

/* Start the threads that push JSEPs (0: every push happens on the caller's
 * thread); returns 0, or -1 with text. */
int paystream_push_threads_start(guint threads, char *error, size_t errlen);
/* Stop the threads (plugin destroy): what is still queued is dropped, a
 * push under way finishes; later pushes happen on the caller's thread. */
void paystream_push_threads_stop(void);
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
 * session's PeerConnection is closed after the event is pushed. The box
 * holds a reference to session until it is flushed. */
void paystream_outbox_add(paystream_outbox *box, paystream_session *session, json_t *event, json_t *jsep,
	gboolean close_pc);
/* Push everything queued, in order (paystream_push, paystream_push_close),
 * and empty the box. */
void paystream_outbox_flush(paystream_outbox *box);

#endif
