/* relay.c - the performer-to-viewers media path (see relay.h). */
#include "relay.h"

#include <string.h>

#include <debug.h>
#include <rtcp.h>
#include <rtp.h>
#include <utils.h>

#include "metering.h"
#include "plugin.h"

volatile gint paystream_relay_layer_events = 0;

void paystream_relay_keyframe(paystream_performer *performer, gboolean force, const char *reason) {
	if(performer->video_mindex < 0 || !g_atomic_int_get(&performer->live))
		return;
	gint64 now = janus_get_monotonic_time();
	gint64 last = __atomic_load_n(&performer->last_keyframe_request, __ATOMIC_RELAXED);
	if(!force && now - last < PAYSTREAM_KEYFRAME_THROTTLE_US) {
		/* Deferred, not dropped: the relay sends it when the window opens. */
		g_atomic_int_set(&performer->keyframe_pending, 1);
		return;
	}
	/* Two threads racing here may both pass: only one wins the swap. */
	if(!__atomic_compare_exchange_n(&performer->last_keyframe_request, &last, now, FALSE,
			__ATOMIC_RELAXED, __ATOMIC_RELAXED) && !force)
		return;
	g_atomic_int_set(&performer->keyframe_pending, 0);
	JANUS_LOG(LOG_HUGE, "[paystream] keyframe request to the performer of %s (%s)\n", performer->room->id, reason);
	paystream_gateway->send_pli_stream(performer->session->handle, performer->video_mindex);
}

void paystream_relay_send_remb(paystream_performer *performer, guint32 room_bitrate) {
	guint32 bitrate = g_atomic_int_get(&performer->bitrate);
	if(bitrate == 0)
		bitrate = room_bitrate;
	if(bitrate > 0 && performer->video_mindex >= 0)
		paystream_gateway->send_remb(performer->session->handle, bitrate);
}

void paystream_relay_viewer_follow(paystream_viewer *viewer, const paystream_performer *performer) {
	janus_rtp_simulcasting_context_reset(&viewer->sim_context);
	janus_vp8_simulcast_context_reset(&viewer->vp8_context);
	viewer->sim_context.rid_ext_id = performer ? performer->rid_ext_id : -1;
	viewer->sim_context.substream_target = viewer->substream_target;
	viewer->sim_context.templayer_target = viewer->temporal_target;
}

/* Learn which layer an SSRC carries from the rid header extension, for
 * every packet of the performer whether anyone watches or not: browsers send
 * the extension only until Janus's receiver reports acknowledge the SSRC, so
 * a mapping learned only while relaying to a viewer would never be learned
 * for a room whose first viewer arrives seconds after the performer. */
static void paystream_relay_learn_layer(paystream_performer *performer, char *buf, int len) {
	uint32_t ssrc = ntohl(((janus_rtp_header *)buf)->ssrc);
	if(ssrc == performer->ssrc[0] || ssrc == performer->ssrc[1] || ssrc == performer->ssrc[2] ||
			performer->rid_ext_id < 1)
		return;
	char rid[16];
	if(janus_rtp_header_extension_parse_rid(buf, len, performer->rid_ext_id, rid, sizeof(rid)) != 0)
		return;
	janus_mutex_lock(&performer->rid_mutex);
	for(int layer = 0; layer < 3; layer++) {
		if(performer->rid[layer] != NULL && strcmp(performer->rid[layer], rid) == 0) {
			JANUS_LOG(LOG_VERB, "[paystream] room %s: rid %s is SSRC %"SCNu32"\n", performer->room->id, rid, ssrc);
			performer->ssrc[layer] = ssrc;
			break;
		}
	}
	janus_mutex_unlock(&performer->rid_mutex);
}

/* Relay one simulcast video packet to one viewer if it belongs to the layer
 * the viewer gets; returns TRUE if it was relayed. Sets *want_keyframe if
 * the performer should be asked for a keyframe. */
static gboolean paystream_relay_simulcast(paystream_performer *performer, paystream_viewer *viewer,
		janus_plugin_rtp *packet, janus_plugin_rtp *out, gboolean *want_keyframe) {
	char *buf = packet->buffer;
	int plen = 0;
	char *payload = janus_rtp_payload(buf, packet->length, &plen);
	if(payload == NULL)
		return FALSE;
#ifdef PAYSTREAM_SIMULCAST_DD
	/* Janus 1.2 and later also read the dependency descriptor here. */
	gboolean relay = janus_rtp_simulcasting_context_process_rtp(&viewer->sim_context, buf, packet->length,
		packet->extensions.dd_content, packet->extensions.dd_len,
		performer->ssrc, performer->rid, performer->media.vcodec, &viewer->video_context, &performer->rid_mutex);
#else
	gboolean relay = janus_rtp_simulcasting_context_process_rtp(&viewer->sim_context, buf, packet->length,
		performer->ssrc, performer->rid, performer->media.vcodec, &viewer->video_context, &performer->rid_mutex);
#endif
	if(viewer->sim_context.need_pli)
		*want_keyframe = TRUE;
	if(!relay)
		return FALSE;
	if(viewer->sim_context.changed_substream || viewer->sim_context.changed_temporal) {
		g_atomic_int_set(&viewer->layer_changed, 1);
		g_atomic_int_set(&paystream_relay_layer_events, 1);
	}
	janus_rtp_header *header = (janus_rtp_header *)buf;
	janus_rtp_header_update(header, &viewer->video_context, TRUE, 0);
	header->type = viewer->video_pt;
	char descriptor[6];
	gboolean vp8 = performer->media.vcodec == JANUS_VIDEOCODEC_VP8 && plen >= (int)sizeof(descriptor);
	if(vp8) {
		/* The descriptor is rewritten per viewer: keep the original for the next. */
		memcpy(descriptor, payload, sizeof(descriptor));
		janus_vp8_simulcast_descriptor_update(payload, plen, &viewer->vp8_context,
			viewer->sim_context.changed_substream);
	}
	paystream_gateway->relay_rtp(viewer->session->handle, out);
	if(vp8)
		memcpy(payload, descriptor, sizeof(descriptor));
	return TRUE;
}

void paystream_relay_rtp(paystream_performer *performer, janus_plugin_rtp *packet) {
	if(!g_atomic_int_get(&performer->live) || packet->buffer == NULL || packet->length < 12)
		return;
	paystream_room *room = performer->room;
	gboolean video = packet->video;
	janus_rtp_header *header = (janus_rtp_header *)packet->buffer;
	uint32_t ssrc = header->ssrc, timestamp = header->timestamp;
	uint16_t seq = header->seq_number;
	uint8_t payload_type = header->type;
	gboolean want_keyframe = FALSE;
	janus_plugin_rtp out = *packet;

	if(video && performer->simulcast)
		paystream_relay_learn_layer(performer, packet->buffer, packet->length);

	janus_mutex_lock(&room->mutex);
	if(room->performer != performer) {
		janus_mutex_unlock(&room->mutex);
		return;
	}
	/* Read under the lock: a packet that waited for it while the ticker
	 * accounted a second must not mark that second afterwards. */
	gint64 now = janus_get_monotonic_time();
	guint64 second = paystream_ticker_second(now);
	if(video) {
		/* Periodic keyframe request and bandwidth cap, checked on video
		 * packets so an idle room costs nothing. */
		guint32 fir_freq = room->settings.fir_freq;
		gint64 since = now - __atomic_load_n(&performer->last_keyframe_request, __ATOMIC_RELAXED);
		if(fir_freq > 0 && since >= (gint64)fir_freq * G_USEC_PER_SEC)
			want_keyframe = TRUE;
		if(g_atomic_int_get(&performer->keyframe_pending) && since >= PAYSTREAM_KEYFRAME_THROTTLE_US)
			want_keyframe = TRUE;
		if(now - performer->last_remb >= 5 * G_USEC_PER_SEC) {
			performer->last_remb = now;
			paystream_relay_send_remb(performer, room->settings.bitrate);
		}
	}
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, room->viewers);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		paystream_viewer *viewer = value;
		if(!g_atomic_int_get(&viewer->session->pc_up) || !paystream_viewer_state_wants_media(&viewer->state) ||
				g_atomic_int_get(&viewer->stopped))
			continue;
		/* Nothing the budget or the token no longer pays for, even if the
		 * ticker that will stop the session is late. */
		if(viewer->metered && second >= viewer->relay_until)
			continue;
		if(video ? !viewer->has_video : !viewer->has_audio)
			continue;
		out.mindex = video ? PAYSTREAM_VIEWER_VIDEO_MINDEX : PAYSTREAM_VIEWER_AUDIO_MINDEX;
		gboolean relayed = TRUE;
		if(video && performer->simulcast) {
			relayed = paystream_relay_simulcast(performer, viewer, packet, &out, &want_keyframe);
		} else {
			janus_rtp_header_update(header, video ? &viewer->video_context : &viewer->audio_context, video, 0);
			/* The performer's payload type need not be the one this viewer
			 * negotiated (another browser may have taken over). */
			header->type = video ? viewer->video_pt : viewer->audio_pt;
			paystream_gateway->relay_rtp(viewer->session->handle, &out);
		}
		/* Metering counts a second only if media really went out in it.
		 * The ticker reads the marks under the same room mutex, so plain
		 * accesses do: no fence per packet, and the line is written once a
		 * second, not once a packet. */
		if(relayed)
			paystream_meter_mark(&viewer->media_marks, second);
		/* Restore what the next viewer's context expects to see. */
		header->ssrc = ssrc;
		header->timestamp = timestamp;
		header->seq_number = seq;
		header->type = payload_type;
	}
	janus_mutex_unlock(&room->mutex);
	if(want_keyframe)
		paystream_relay_keyframe(performer, FALSE, "periodic or simulcast");
}

void paystream_relay_viewer_rtcp(paystream_viewer *viewer, janus_plugin_rtcp *packet) {
	if(!packet->video || packet->buffer == NULL)
		return;
	if(!janus_rtcp_has_pli(packet->buffer, packet->length) && !janus_rtcp_has_fir(packet->buffer, packet->length))
		return;
	paystream_performer *performer = paystream_room_performer(viewer->room);
	if(performer == NULL)
		return;
	paystream_relay_keyframe(performer, FALSE, "PLI/FIR from a viewer");
	janus_refcount_decrease(&performer->ref);
}
