/* negotiate.c - performer answers and viewer offers (see negotiate.h). */
#include "negotiate.h"

#include <string.h>

#include <sdp-utils.h>

#include "errors.h"

/* The first codec of a comma-separated list present in m-line index. */
static const char *paystream_pick_codec(janus_sdp *offer, int index, const char *list, char *buf, size_t len) {
	gchar **names = g_strsplit(list, ",", -1);
	const char *found = NULL;
	for(gchar **n = names; *n && !found; n++) {
		if(janus_sdp_get_codec_pt(offer, index, *n) >= 0) {
			g_strlcpy(buf, *n, len);
			found = buf;
		}
	}
	g_strfreev(names);
	return found;
}

/* Keep the opus options the performer asked for, so viewers decode the
 * same stream the performer encodes. */
static void paystream_opus_options(janus_sdp *offer, int index, const char *codec, char *out, size_t len) {
	out[0] = '\0';
	int pt = janus_sdp_get_codec_pt(offer, index, codec);
	const char *fmtp = pt >= 0 ? janus_sdp_get_fmtp(offer, index, pt) : NULL;
	if(fmtp == NULL)
		return;
	static const char *const options[] = { "useinbandfec=1", "usedtx=1", "stereo=1" };
	for(size_t i = 0; i < G_N_ELEMENTS(options); i++) {
		if(strstr(fmtp, options[i]) == NULL)
			continue;
		if(out[0] != '\0')
			g_strlcat(out, ";", len);
		g_strlcat(out, options[i], len);
	}
}

static gboolean paystream_mline_sends(const janus_sdp_mline *m) {
	return m->port > 0 && (m->direction == JANUS_SDP_SENDRECV || m->direction == JANUS_SDP_SENDONLY ||
		m->direction == JANUS_SDP_DEFAULT);
}

int paystream_negotiate_publish(paystream_performer *performer, const paystream_room_settings *settings,
		const char *offer_sdp, json_t *simulcast, char **answer, char *error, size_t errlen) {
	char sdp_error[200];
	*answer = NULL;
	janus_sdp *offer = janus_sdp_parse(offer_sdp, sdp_error, sizeof(sdp_error));
	if(offer == NULL) {
		g_snprintf(error, errlen, "Invalid SDP offer: %s", sdp_error);
		return PAYSTREAM_ERROR_INVALID_SDP;
	}
	char acodec_buf[16], vcodec_buf[16];
	const char *acodec = NULL, *vcodec = NULL;
	int amindex = -1, vmindex = -1;
	for(GList *l = offer->m_lines; l; l = l->next) {
		janus_sdp_mline *m = l->data;
		if(!paystream_mline_sends(m))
			continue;
		if(m->type == JANUS_SDP_AUDIO && amindex < 0) {
			acodec = paystream_pick_codec(offer, m->index, settings->audiocodec, acodec_buf, sizeof(acodec_buf));
			if(acodec)
				amindex = m->index;
		} else if(m->type == JANUS_SDP_VIDEO && vmindex < 0) {
			vcodec = paystream_pick_codec(offer, m->index, settings->videocodec, vcodec_buf, sizeof(vcodec_buf));
			if(vcodec)
				vmindex = m->index;
		}
	}
	if(acodec == NULL && vcodec == NULL) {
		janus_sdp_destroy(offer);
		g_snprintf(error, errlen, "The offer sends no audio or video in a codec this room accepts (audio: %s; video: %s)",
			settings->audiocodec, settings->videocodec);
		return PAYSTREAM_ERROR_INVALID_SDP;
	}
	paystream_media media;
	memset(&media, 0, sizeof(media));
	media.acodec = acodec ? janus_audiocodec_from_name(acodec) : JANUS_AUDIOCODEC_NONE;
	media.vcodec = vcodec ? janus_videocodec_from_name(vcodec) : JANUS_VIDEOCODEC_NONE;
	if(media.acodec == JANUS_AUDIOCODEC_OPUS)
		paystream_opus_options(offer, amindex, acodec, media.audio_fmtp, sizeof(media.audio_fmtp));

	janus_sdp *sdp_answer = janus_sdp_generate_answer(offer);
	for(GList *l = offer->m_lines; l; l = l->next) {
		janus_sdp_mline *m = l->data;
		gboolean audio = (m->index == amindex), video = (m->index == vmindex);
		if(!audio && !video) {
			janus_sdp_generate_answer_mline(offer, sdp_answer, m,
				JANUS_SDP_OA_MLINE, m->type,
				JANUS_SDP_OA_ENABLED, FALSE,
				JANUS_SDP_OA_DONE);
			continue;
		}
		janus_sdp_generate_answer_mline(offer, sdp_answer, m,
			JANUS_SDP_OA_MLINE, m->type,
			JANUS_SDP_OA_CODEC, audio ? acodec : vcodec,
			JANUS_SDP_OA_DIRECTION, JANUS_SDP_RECVONLY,
			JANUS_SDP_OA_FMTP, (audio && media.audio_fmtp[0]) ? media.audio_fmtp : NULL,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_MID,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_RID,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_REPAIRED_RID,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_AUDIO_LEVEL,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_VIDEO_ORIENTATION,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_PLAYOUT_DELAY,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_TRANSPORT_WIDE_CC,
			JANUS_SDP_OA_ACCEPT_EXTMAP, JANUS_RTP_EXTMAP_ABS_SEND_TIME,
			JANUS_SDP_OA_DONE);
	}
	if(vcodec != NULL) {
		/* The answer picked one payload type: viewers must get its profile. */
		int pt = janus_sdp_get_codec_pt(sdp_answer, vmindex, vcodec);
		const char *fmtp = pt >= 0 ? janus_sdp_get_fmtp(sdp_answer, vmindex, pt) : NULL;
		char *profile = fmtp ? janus_sdp_get_video_profile(media.vcodec, fmtp) : NULL;
		if(profile != NULL)
			g_strlcpy(media.video_profile, profile, sizeof(media.video_profile));
		g_free(profile);
	}
	*answer = janus_sdp_write(sdp_answer);
	janus_sdp_destroy(sdp_answer);
	janus_sdp_destroy(offer);

	performer->media = media;
	performer->audio_mindex = amindex;
	performer->video_mindex = vmindex;
	performer->simulcast = FALSE;
	performer->rid_ext_id = -1;
	janus_rtp_simulcasting_cleanup(NULL, performer->ssrc, performer->rid, &performer->rid_mutex);
	gboolean can_simulcast = (media.vcodec == JANUS_VIDEOCODEC_VP8 || media.vcodec == JANUS_VIDEOCODEC_H264);
	for(size_t i = 0; can_simulcast && simulcast && i < json_array_size(simulcast); i++) {
		json_t *s = json_array_get(simulcast, i);
		if(json_integer_value(json_object_get(s, "mindex")) != vmindex)
			continue;
		int rid_ext_id = -1;
		janus_mutex_lock(&performer->rid_mutex);
		janus_rtp_simulcasting_prepare(s, &rid_ext_id, performer->ssrc, performer->rid);
		janus_mutex_unlock(&performer->rid_mutex);
		performer->rid_ext_id = rid_ext_id;
		performer->simulcast = TRUE;
		break;
	}
	return 0;
}

static char *paystream_first_codec(const char *list) {
	const char *comma = strchr(list, ',');
	return comma ? g_strndup(list, comma - list) : g_strdup(list);
}

char *paystream_negotiate_viewer_offer(paystream_viewer *viewer, const paystream_media *media,
		const paystream_room_settings *settings) {
	gboolean has_audio = media && media->acodec != JANUS_AUDIOCODEC_NONE;
	gboolean has_video = media && media->vcodec != JANUS_VIDEOCODEC_NONE;
	/* An inactive m-line still needs a codec: take the room's first. */
	char *fallback_audio = paystream_first_codec(settings->audiocodec);
	char *fallback_video = paystream_first_codec(settings->videocodec);
	janus_audiocodec acodec = has_audio ? media->acodec : janus_audiocodec_from_name(fallback_audio);
	janus_videocodec vcodec = has_video ? media->vcodec : janus_videocodec_from_name(fallback_video);
	const char *profile = (has_video && media->video_profile[0]) ? media->video_profile : NULL;
	char name[128];
	g_snprintf(name, sizeof(name), "paystream %s", settings->room);
	janus_sdp *offer = janus_sdp_generate_offer(name, "0.0.0.0", JANUS_SDP_OA_DONE);
	janus_sdp_generate_offer_mline(offer,
		JANUS_SDP_OA_MLINE, JANUS_SDP_AUDIO,
		JANUS_SDP_OA_MID, "a",
		JANUS_SDP_OA_PT, janus_audiocodec_pt(acodec),
		JANUS_SDP_OA_CODEC, janus_audiocodec_name(acodec),
		JANUS_SDP_OA_FMTP, (has_audio && media->audio_fmtp[0]) ? media->audio_fmtp : NULL,
		JANUS_SDP_OA_DIRECTION, has_audio ? JANUS_SDP_SENDONLY : JANUS_SDP_INACTIVE,
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_MID, janus_rtp_extension_id(JANUS_RTP_EXTMAP_MID),
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_AUDIO_LEVEL, janus_rtp_extension_id(JANUS_RTP_EXTMAP_AUDIO_LEVEL),
		JANUS_SDP_OA_DONE);
	janus_sdp_generate_offer_mline(offer,
		JANUS_SDP_OA_MLINE, JANUS_SDP_VIDEO,
		JANUS_SDP_OA_MID, "v",
		JANUS_SDP_OA_PT, janus_videocodec_pt(vcodec),
		JANUS_SDP_OA_CODEC, janus_videocodec_name(vcodec),
		JANUS_SDP_OA_H264_PROFILE, vcodec == JANUS_VIDEOCODEC_H264 ? profile : NULL,
		JANUS_SDP_OA_VP9_PROFILE, vcodec == JANUS_VIDEOCODEC_VP9 ? profile : NULL,
		JANUS_SDP_OA_DIRECTION, has_video ? JANUS_SDP_SENDONLY : JANUS_SDP_INACTIVE,
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_MID, janus_rtp_extension_id(JANUS_RTP_EXTMAP_MID),
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_VIDEO_ORIENTATION, janus_rtp_extension_id(JANUS_RTP_EXTMAP_VIDEO_ORIENTATION),
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_ABS_SEND_TIME, janus_rtp_extension_id(JANUS_RTP_EXTMAP_ABS_SEND_TIME),
		JANUS_SDP_OA_EXTENSION, JANUS_RTP_EXTMAP_TRANSPORT_WIDE_CC, janus_rtp_extension_id(JANUS_RTP_EXTMAP_TRANSPORT_WIDE_CC),
		JANUS_SDP_OA_DONE);
	offer->o_version = ++viewer->session->sdp_version;
	char *sdp = janus_sdp_write(offer);
	janus_sdp_destroy(offer);
	g_free(fallback_audio);
	g_free(fallback_video);
	if(media != NULL)
		viewer->media = *media;
	else
		memset(&viewer->media, 0, sizeof(viewer->media));
	viewer->has_audio = has_audio;
	viewer->has_video = has_video;
	viewer->audio_pt = janus_audiocodec_pt(acodec);
	viewer->video_pt = janus_videocodec_pt(vcodec);
	return sdp;
}

gboolean paystream_media_compatible(const paystream_media *had, gboolean had_audio, gboolean had_video,
		const paystream_media *now) {
	gboolean now_audio = now->acodec != JANUS_AUDIOCODEC_NONE;
	gboolean now_video = now->vcodec != JANUS_VIDEOCODEC_NONE;
	if(had_audio != now_audio || had_video != now_video)
		return FALSE;
	if(now_audio && (had->acodec != now->acodec || strcmp(had->audio_fmtp, now->audio_fmtp) != 0))
		return FALSE;
	if(now_video && (had->vcodec != now->vcodec || strcmp(had->video_profile, now->video_profile) != 0))
		return FALSE;
	return TRUE;
}
