/* relay.h - the media path: the performer's RTP to every viewer, keyframe
 * requests and bandwidth caps back to the performer.
 *
 * Per packet this takes the room's lock (never a plugin-wide one), walks the
 * room's viewers, rewrites the RTP header in place through each viewer's
 * switching context (so sequence numbers and timestamps continue across a
 * performer switch) and to the viewer's payload type, relays, and restores
 * the header. It allocates nothing
 * and builds no JSON: a simulcast layer change only raises a flag that the
 * handler thread turns into an event. */
#ifndef PAYSTREAM_RELAY_H
#define PAYSTREAM_RELAY_H

#include <plugins/plugin.h>

#include "room.h"

/* Minimum time between two keyframe requests sent to a performer for
 * viewers (PLI/FIR from viewers, new viewers, resume). */
#define PAYSTREAM_KEYFRAME_THROTTLE_US G_USEC_PER_SEC

/* An RTP packet from a performer. */
void paystream_relay_rtp(paystream_performer *performer, janus_plugin_rtp *packet);

/* An RTCP packet from a viewer: PLI/FIR become (throttled) keyframe
 * requests to the room's performer. */
void paystream_relay_viewer_rtcp(paystream_viewer *viewer, janus_plugin_rtcp *packet);

/* Ask the performer for a keyframe; unless force, at most once per
 * PAYSTREAM_KEYFRAME_THROTTLE_US. A request inside that window is kept
 * pending and sent by the relay as soon as the window has passed. */
void paystream_relay_keyframe(paystream_performer *performer, gboolean force, const char *reason);

/* Send the bitrate cap (the performer's own, else the room's) by REMB. */
void paystream_relay_send_remb(paystream_performer *performer, guint32 room_bitrate);

/* A viewer's simulcast state for a (new) performer: keeps the targets the
 * viewer chose and the switching contexts, forgets the old substreams.
 * Call with the room's lock held. */
void paystream_relay_viewer_follow(paystream_viewer *viewer, const paystream_performer *performer);

/* Set by the relay when some viewer's simulcast layer changed. */
extern volatile gint paystream_relay_layer_events;

#endif
