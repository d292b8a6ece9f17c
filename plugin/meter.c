/* meter.c - per-viewer second counting, budget and records (see meter.h). */
#include "meter.h"

#include <string.h>

/* TRUE when one more second fits in the meter's own budget. */
static gboolean paystream_meter_affordable(const paystream_meter *m) {
	return paystream_meter_budget_fits(m, m->budget);
}

void paystream_meter_init(paystream_meter *m, gint64 price_per_second, const char *currency, gint64 budget) {
	memset(m, 0, sizeof(*m));
	m->price_per_second = price_per_second < 0 ? 0 : price_per_second;
	m->currency = g_strdup(currency);
	m->budget = budget < 0 ? PAYSTREAM_METER_NO_BUDGET : budget;
	m->next_seq = 1;
	if(price_per_second < 0)
		paystream_meter_stop(m, "invalid_price");
	else if(!paystream_meter_affordable(m))
		paystream_meter_stop(m, PAYSTREAM_METER_BUDGET_EXHAUSTED);
}

void paystream_meter_clear(paystream_meter *m) {
	if(m == NULL)
		return;
	g_free(m->currency);
	m->currency = NULL;
}

gboolean paystream_meter_tick(paystream_meter *m, gboolean media_relayed, gint64 now_ms) {
	if(m->stopped || !media_relayed)
		return FALSE;
	if(!paystream_meter_affordable(m)) {
		paystream_meter_stop(m, PAYSTREAM_METER_BUDGET_EXHAUSTED);
		return FALSE;
	}
	if(m->total_amount > G_MAXINT64 - m->price_per_second || m->total_seconds == G_MAXINT64) {
		paystream_meter_stop(m, "amount_overflow");
		return FALSE;
	}
	if(m->pending_seconds == 0)
		m->pending_start_ms = now_ms >= G_MININT64 + 1000 ? now_ms - 1000 : now_ms;
	m->pending_end_ms = now_ms;
	m->total_seconds++;
	m->total_amount += m->price_per_second;
	m->pending_seconds++;
	m->pending_amount += m->price_per_second;
	/* Stop now rather than relay a second that the next tick could not bill. */
	if(!paystream_meter_affordable(m))
		paystream_meter_stop(m, PAYSTREAM_METER_BUDGET_EXHAUSTED);
	return TRUE;
}

guint paystream_meter_tick_seconds(paystream_meter *m, const paystream_media_marks *marks, guint64 from, guint64 to,
		gint64 now_ms) {
	guint counted = 0;
	if(to > PAYSTREAM_METER_LOOKBACK && from < to - PAYSTREAM_METER_LOOKBACK)
		from = to - PAYSTREAM_METER_LOOKBACK;
	for(guint64 second = from; second < to; second++)
		if(paystream_meter_tick(m, paystream_meter_marked(marks, second), now_ms - (gint64)(to - 1 - second) * 1000))
			counted++;
	return counted;
}

gboolean paystream_meter_take_record(paystream_meter *m, paystream_meter_record *out) {
	if(m->pending_seconds == 0)
		return FALSE;
	out->seq = m->next_seq++;
	out->seconds = m->pending_seconds;
	out->amount = m->pending_amount;
	out->start_ms = m->pending_start_ms;
	out->end_ms = m->pending_end_ms;
	m->pending_seconds = 0;
	m->pending_amount = 0;
	m->pending_start_ms = 0;
	m->pending_end_ms = 0;
	return TRUE;
}

void paystream_meter_put_back(paystream_meter *m, const paystream_meter_record *r) {
	/* Only the record just taken can come back: its seq is the last one. */
	if(r->seq + 1 != m->next_seq)
		return;
	m->next_seq = r->seq;
	if(m->pending_seconds > 0) {
		/* Seconds counted since: the span grows back to the earlier start. */
		m->pending_start_ms = r->start_ms;
	} else {
		m->pending_start_ms = r->start_ms;
		m->pending_end_ms = r->end_ms;
	}
	m->pending_seconds += r->seconds;
	m->pending_amount += r->amount;
}

gboolean paystream_meter_budget_fits(const paystream_meter *m, gint64 budget) {
	/* (total_amount <= budget checked first: no overflow in the subtraction.) */
	return budget < 0 || (m->total_amount <= budget && m->price_per_second <= budget - m->total_amount);
}

gboolean paystream_meter_refresh(paystream_meter *m, gint64 new_budget) {
	gboolean fits = paystream_meter_budget_fits(m, new_budget);
	m->budget = new_budget < 0 ? PAYSTREAM_METER_NO_BUDGET : new_budget;
	if(m->stopped) {
		if(fits && m->stop_reason != NULL && strcmp(m->stop_reason, PAYSTREAM_METER_BUDGET_EXHAUSTED) == 0) {
			m->stopped = FALSE;
			m->stop_reason = NULL;
		}
	} else if(!fits) {
		paystream_meter_stop(m, PAYSTREAM_METER_BUDGET_EXHAUSTED);
	}
	return !m->stopped;
}

void paystream_meter_stop(paystream_meter *m, const char *reason) {
	if(m->stopped)
		return;
	m->stopped = TRUE;
	m->stop_reason = reason != NULL ? reason : "stopped";
}
