/* handlers.h - the requests and lifecycle events of performers (performer.c),
 * viewers (viewer.c) and room management (admin.c), as called by the Janus
 * glue (plugin.c).
 *
 * Asynchronous requests arrive as a paystream_message on the handler
 * thread, already validated against request.c's table; each handler answers
 * by pushing an event to the message's transaction. Synchronous requests
 * return their reply. */
#ifndef PAYSTREAM_HANDLERS_H
#define PAYSTREAM_HANDLERS_H

#include <glib.h>
#include <jansson.h>

#include "errors.h"
#include "notify.h"
#include "request.h"
#include "room.h"
#include "session.h"

typedef struct paystream_message {
	paystream_session *session;		/* holds a reference */
	char *transaction;
	json_t *body;
	json_t *jsep;
	const paystream_request_spec *spec;
} paystream_message;

/* A handler's outcome: 0, or an error code with a readable text. */
typedef struct paystream_result {
	int code;
	char text[PAYSTREAM_ERROR_TEXT_LEN];
} paystream_result;

int paystream_fail(paystream_result *result, int code, const char *format, ...) G_GNUC_PRINTF(3, 4);
/* The room the request's "room" names, with a reference taken; NULL (and
 * result set to 444) when there is none. */
paystream_room *paystream_room_named(json_t *body, paystream_result *result);

/* performer.c */
void paystream_performer_request(paystream_message *msg, paystream_result *result);
/* The room of performer goes offline if performer is its live performer;
 * viewers get `offline`, event handlers get performer_offline(reason). */
void paystream_performer_offline(paystream_performer *performer, const char *reason);
void paystream_performer_setup_media(paystream_session *session);
void paystream_performer_hangup(paystream_session *session);

/* viewer.c */
void paystream_viewer_request(paystream_message *msg, paystream_result *result);
/* Take viewer out of its room; event handlers get viewer_left(reason). */
void paystream_viewer_remove(paystream_viewer *viewer, const char *reason);
/* Tell every viewer of room that performer is live (room lock held). */
void paystream_viewers_performer_live(paystream_room *room, paystream_performer *performer, paystream_outbox *box);
void paystream_viewer_setup_media(paystream_session *session);
void paystream_viewer_hangup(paystream_session *session);
/* Push pending simulcast layer changes (handler thread). */
void paystream_viewers_push_layer_events(void);

/* admin.c: a validated synchronous request; returns the reply. */
json_t *paystream_admin_request(const paystream_request_spec *spec, json_t *body);
/* Load permanent rooms; called once at init. */
int paystream_admin_load_rooms(void);

#endif
