// viewer.html: watch a room, the meter, tips, pause/resume, quality.
import { PaystreamClient, STOP_REASONS, PaystreamError } from './paystream.js';
import { $, params, setState, showError, errorText, addTip, sleep } from './common.js';

const q = params();
const server = q.get('server') || '';
const video = $('video');

let client = null;
let viewer = null;
let paused = false;
let stopped = false;
let currency = '';

const LAYERS = { 2: 'high', 1: 'medium', 0: 'low' };

function overlay(text) {
	$('overlay').hidden = !text;
	$('overlay').textContent = text || '';
}

function state(s, text, over) {
	setState(s, text);
	overlay(over);
	const watching = !!viewer;
	$('pause').disabled = !watching || stopped || s !== 'live' && s !== 'paused';
	$('quality').disabled = !watching || stopped;
	$('leave').disabled = !watching;
	$('tip-send').disabled = !watching || !viewer.opts.token;
	$('join').hidden = watching;
}

// Frames actually shown: lets anyone (and the tests) tell a playing video from a frozen one.
const frames = { count: 0, last: 0, width: 0, height: 0 };
window.paystreamFrames = frames;
function onFrame(now, meta) {
	frames.count++;
	frames.last = performance.now();
	frames.width = meta.width;
	frames.height = meta.height;
	$('resolution').textContent = meta.width + '×' + meta.height;
	video.requestVideoFrameCallback(onFrame);
}
if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);

async function play() {
	try {
		await video.play();
	} catch (e) {
		// Autoplay with sound needs a user gesture: play muted, offer unmute.
		video.muted = true;
		$('unmute').hidden = false;
		try { await video.play(); } catch (e2) { /* nothing to play yet */ }
	}
}

async function watch(ev) {
	if (ev) ev.preventDefault();
	const room = $('room').value.trim();
	if (!room) { showError('Enter the room.'); return; }
	showError('');
	stopped = false;
	paused = false;
	$('room-name').textContent = room;
	document.title = 'paystream · ' + room;
	setState('connecting', 'connecting…');
	overlay('Connecting…');
	try {
		if (!client || !client.connected) {
			client = await PaystreamClient.connect({ server });
			const c = client;
			c.on('disconnected', (why) => { if (c === client) lost(why); });
		}
		const v = await client.watch({ room, token: $('token').value || undefined, display: $('display').value.trim() || undefined });
		viewer = v;
		hook(v);
		currency = v.info.currency || '';
		$('currency').textContent = currency;
		$('price').textContent = v.info.price_per_second + ' ' + currency + '/s';
		if (v.info.status === 'live') state('connecting', 'connecting…', 'Connecting to the stream…');
		else state('waiting', 'waiting', 'Waiting for the performer…');
	} catch (e) {
		viewer = null;
		state('error', 'not watching', 'Could not start watching.');
		showError(errorText(e));
	}
}

function hook(v) {
	v.on('track', (stream) => {
		if (video.srcObject !== stream) video.srcObject = stream;
		if (!paused) play();
	});
	v.on('webrtcup', () => { if (!stopped && !paused) state('live', 'LIVE'); });
	v.on('started', () => { if (!stopped) state('live', 'LIVE'); });
	v.on('live', (m, jsep) => { if (!stopped) state(jsep ? 'connecting' : 'live', jsep ? 'connecting…' : 'LIVE', jsep ? 'The performer is back, connecting…' : ''); });
	v.on('offline', () => { if (!stopped) state('offline', 'performer offline', 'The performer is offline. Stay here: the show resumes when they are back.'); });
	// Paused: the element is paused too (a MediaStream's currentTime would
	// otherwise run on with the audio clock while no frames come).
	v.on('paused', () => { paused = true; video.pause(); $('pause').textContent = 'Resume'; state('paused', 'paused', 'Paused: you are not being charged.'); });
	v.on('resumed', () => { paused = false; $('pause').textContent = 'Pause'; play(); state('live', 'LIVE'); });
	v.on('tick', (m) => {
		$('seconds').textContent = m.seconds;
		$('amount').textContent = m.amount;
		if (m.currency) $('currency').textContent = m.currency;
	});
	v.on('stopped', (m) => {
		stopped = true;
		$('seconds').textContent = m.seconds;
		$('amount').textContent = m.amount;
		const why = STOP_REASONS[m.reason] || m.reason;
		document.body.dataset.stopReason = m.reason;
		state('stopped', 'stopped: ' + why, 'Stopped: ' + why + '.');
		tellPlatform({ type: 'paystream:stopped', reason: m.reason, seconds: m.seconds, amount: m.amount, currency: m.currency });
	});
	v.on('refreshed', (m) => {
		if (v !== viewer) return;
		if (stopped && m.resumed) {
			stopped = false;
			delete document.body.dataset.stopReason;
			state(paused ? 'paused' : 'live', paused ? 'paused' : 'LIVE', paused ? 'Paused: you are not being charged.' : '');
		}
	});
	v.on('simulcast', (m) => { $('layer').textContent = (LAYERS[m.substream] || m.substream) + ' (layer ' + m.substream + ')'; });
	v.on('tip', (m) => addTip($('tips'), m));
	v.on('kicked', () => { stopped = true; document.body.dataset.stopReason = 'kicked'; state('stopped', 'stopped: kicked', 'Stopped: you were removed from the room.'); });
	v.on('destroyed', () => { stopped = true; document.body.dataset.stopReason = 'room_destroyed'; state('stopped', 'stopped: room closed', 'Stopped: the room was closed.'); });
	v.on('error', (e) => { if (e.request !== 'tip') showError(errorText(e)); });
	v.on('ice', (s) => {
		if (v !== viewer || stopped) return;
		if (s === 'disconnected' || s === 'failed') state('reconnecting', 'reconnecting…', 'Connection problem, reconnecting…');
		else if ((s === 'connected' || s === 'completed') && document.body.dataset.state === 'reconnecting') state('live', 'LIVE');
	});
}

// The connection to the server was lost: watch again on a new one.
let reconnecting = false;
async function lost(why) {
	if (reconnecting || !viewer) return;
	reconnecting = true;
	viewer = null;
	state('reconnecting', 'reconnecting…', 'Connection lost, reconnecting…');
	for (let attempt = 0; attempt < 30; attempt++) {
		await sleep(Math.min(1000 * 2 ** attempt, 8000));
		try { if (client) client.destroy(); } catch (e) { /* gone */ }
		client = null;
		await watch();
		if (viewer) break;
	}
	reconnecting = false;
}

async function leave() {
	const v = viewer;
	viewer = null;
	if (v) await v.leave().catch(() => {});
	video.srcObject = null;
	state('idle', 'not watching', 'You left the room.');
}

async function tip(ev) {
	ev.preventDefault();
	if (!viewer) return;
	const result = $('tip-result');
	const amount = parseInt($('tip-amount').value, 10);
	if (!(amount > 0)) { result.dataset.status = 'error'; result.textContent = 'Enter a whole amount.'; return; }
	const message = $('tip-message').value;
	result.dataset.status = 'sending';
	result.textContent = 'Sending ' + amount + ' ' + currency + '…';
	try {
		const r = await viewer.tip({ amount, message, onpending: () => { result.dataset.status = 'pending'; result.textContent = 'Tip of ' + amount + ' ' + currency + ' pending…'; } });
		result.dataset.status = r.status;
		if (r.status === 'accepted') {
			result.textContent = 'Thank you! Your tip of ' + amount + ' ' + currency + ' was sent.';
			$('tip-message').value = '';
		} else if (r.status === 'declined') {
			result.textContent = 'Tip declined' + (r.reason === 'insufficient_funds' ? ': not enough funds.' : r.reason ? ': ' + r.reason + '.' : '.');
		} else {
			result.textContent = 'The tip could not be confirmed; it was not charged twice. Check your balance later.';
		}
	} catch (e) {
		result.dataset.status = 'error';
		result.textContent = 'Tip not sent: ' + errorText(e);
	}
}

// ---- token refresh: the platform hands the page a new token ---------------
// window.paystreamViewer.refresh(token) -> Promise of {exp, budget, resumed},
// or a postMessage {type: 'paystream:refresh', token, id} from this page's
// origin or one named by ?platform_origin= (comma-separated), answered with
// {type: 'paystream:refresh-result', id, ok, exp, budget, resumed, error, code}.
// See docs/CLIENT.md "Token refresh".
async function refresh(token) {
	token = typeof token === 'string' ? token.trim() : '';
	if (!token) throw new Error('refresh: no token given');
	const v = viewer;
	if (!v) {
		// Not watching (yet, or any more): keep it for the next watch.
		$('token').value = token;
		return { exp: null, budget: null, resumed: false, watching: false };
	}
	const r = await v.refresh(token);
	if (v === viewer) $('token').value = token;   // a reconnect watches with the new token
	return { exp: r.exp, budget: r.budget === undefined ? null : r.budget, resumed: !!r.resumed, watching: true };
}

function originOf(s) {
	try { return new URL(s).origin; } catch (e) { return null; }
}
const platformOrigins = new Set([window.location.origin,
	...(q.get('platform_origin') || '').split(',').map((s) => originOf(s.trim())).filter(Boolean)]);

// Tells the embedding page (parent frame or opener) about the session, only
// at the origins it is allowed to have.
function tellPlatform(msg) {
	const targets = [];
	if (window.parent && window.parent !== window) targets.push(window.parent);
	if (window.opener) targets.push(window.opener);
	for (const t of targets) {
		for (const origin of platformOrigins) {
			try { t.postMessage(msg, origin); } catch (e) { /* closed or not allowed */ }
		}
	}
}

window.addEventListener('message', async (ev) => {
	const d = ev.data;
	if (!d || typeof d !== 'object' || d.type !== 'paystream:refresh') return;
	if (!platformOrigins.has(ev.origin)) return;
	const reply = (m) => {
		if (ev.source) ev.source.postMessage(Object.assign({ type: 'paystream:refresh-result', id: d.id === undefined ? null : d.id }, m), ev.origin);
	};
	try {
		const r = await refresh(d.token);
		reply(Object.assign({ ok: true }, r));
	} catch (e) {
		showError(errorText(e));
		reply({ ok: false, error: errorText(e), code: e.code || null });
	}
});

$('join-form').addEventListener('submit', watch);
$('tip-form').addEventListener('submit', tip);
$('leave').addEventListener('click', leave);
$('unmute').addEventListener('click', () => { video.muted = false; $('unmute').hidden = true; video.play().catch(() => {}); });
$('pause').addEventListener('click', async () => {
	if (!viewer) return;
	try { await (paused ? viewer.resume() : viewer.pause()); } catch (e) { showError(errorText(e)); }
});
$('quality').addEventListener('change', async () => {
	if (!viewer) return;
	try { await viewer.setQuality($('quality').value); } catch (e) { showError(errorText(e)); }
});
window.addEventListener('pagehide', () => { if (viewer) viewer.leave(); });

$('room').value = q.get('room') || '';
$('token').value = q.get('token') || '';
$('display').value = q.get('display') || '';
if (q.get('muted') === '1') video.muted = true;
state('idle', 'not watching', 'Enter a room and your ticket to watch.');
window.paystreamPage = { get viewer() { return viewer; }, get client() { return client; }, watch, leave, refresh };
window.paystreamViewer = Object.freeze({ refresh, get state() { return document.body.dataset.state; } });
if ($('room').value && ($('token').value || q.get('free') === '1')) watch();
