/* negotiate.h - SDP for the performer's answer and the viewers' offers.
 *
 * The performer offers; we answer with the first codec of the room's lists
 * that the offer carries, receive-only, and remember what was negotiated
 * (codec, opus options, H.264/VP9 profile, simulcast). Viewers get an offer
 * built from that: audio is always m-line 0 and video m-line 1, inactive when
 * the performer has no such media, so a viewer's m-lines never move and a
 * performer switch needs a new offer only when the media really changed.
 * Uses Janus's SDP helpers; never touches a room's lock. */
#ifndef PAYSTREAM_NEGOTIATE_H
#define PAYSTREAM_NEGOTIATE_H

#include <glib.h>
#include <jansson.h>

#include "room.h"

/* Answer the performer's offer. On success fills performer->media, its
 * m-line indexes and simulcast info, sets *answer (g_free it) and returns 0;
 * else returns an error code with text. */
int paystream_negotiate_publish(paystream_performer *performer, const paystream_room_settings *settings,
	const char *offer_sdp, json_t *simulcast, char **answer, char *error, size_t errlen);

/* A new offer (g_free it) for a viewer of a performer publishing media;
 * media may be NULL when there is no performer (not used today). Records in
 * the viewer what the offer carries. Call with the room's lock held. */
char *paystream_negotiate_viewer_offer(paystream_viewer *viewer, const paystream_media *media,
	const paystream_room_settings *settings);

/* TRUE when a viewer who negotiated `had` can receive `now` unchanged. */
gboolean paystream_media_compatible(const paystream_media *had, gboolean had_audio, gboolean had_video,
	const paystream_media *now);

#endif
