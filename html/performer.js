// performer.html: camera preview, go live, earnings, tips.
import { PaystreamClient, PaystreamError } from './paystream.js';
import { $, params, setState, showError, errorText, addTip, sleep } from './common.js';

const q = params();
const server = q.get('server') || '';
const [vw, vh] = (q.get('video') || '1280x720').split('x').map(Number);

let client = null;
let performer = null;
let preview = null;     // the MediaStream shown and sent
let wantLive = false;   // the performer asked to be live
let generation = 0;     // bumps on every go-live/stop: stale callbacks ignore themselves

const STATE_TEXT = { offline: 'offline', connecting: 'connecting…', live: 'LIVE', reconnecting: 'reconnecting…' };
function state(s, extra) { setState(s, STATE_TEXT[s] + (extra ? ' · ' + extra : '')); updateButtons(s); }

function updateButtons(s) {
	$('golive').disabled = s !== 'offline';
	$('stop').disabled = s === 'offline';
	for (const id of ['room', 'key', 'token', 'display', 'simulcast', 'takeover']) $(id).disabled = s !== 'offline';
}

// ---- camera and microphone ------------------------------------------------
async function startPreview() {
	const cam = $('camera').value, mic = $('mic').value;
	const constraints = {
		audio: mic ? { deviceId: { exact: mic } } : true,
		video: Object.assign({ width: { ideal: vw || 1280 }, height: { ideal: vh || 720 } },
			cam ? { deviceId: { exact: cam } } : {}),
	};
	let stream;
	try {
		stream = await navigator.mediaDevices.getUserMedia(constraints);
	} catch (e) {
		showError('Cannot open the camera or microphone: ' + (e.message || e.name) +
			'. Allow access in the browser and reload.');
		throw e;
	}
	const old = preview;
	preview = stream;
	$('preview').srcObject = stream;
	if (performer) {
		for (const t of stream.getTracks()) await performer.replaceTrack(t).catch(() => {});
	}
	if (old) old.getTracks().forEach((t) => t.stop());
	await listDevices();
}

async function listDevices() {
	const devices = await navigator.mediaDevices.enumerateDevices();
	const fill = (sel, kind, current) => {
		const chosen = sel.value || current;
		sel.replaceChildren();
		let n = 0;
		for (const d of devices.filter((x) => x.kind === kind)) {
			const o = document.createElement('option');
			o.value = d.deviceId;
			o.textContent = d.label || (kind === 'videoinput' ? 'Camera ' : 'Microphone ') + (++n);
			sel.append(o);
		}
		if (chosen && [...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
	};
	const track = (kind) => preview && preview.getTracks().find((t) => t.kind === kind);
	const cur = (kind) => { const t = track(kind); return t && t.getSettings().deviceId; };
	fill($('camera'), 'videoinput', cur('video'));
	fill($('mic'), 'audioinput', cur('audio'));
}

// ---- going live -----------------------------------------------------------
function options(takeover) {
	return {
		room: $('room').value.trim(),
		streamKey: $('key').value || undefined,
		token: $('token').value || undefined,
		display: $('display').value.trim() || undefined,
		simulcast: $('simulcast').checked,
		takeover: takeover || $('takeover').checked,
		stream: preview,
	};
}

async function ensureClient() {
	if (client && client.connected) return client;
	const c = await PaystreamClient.connect({ server });
	c.on('disconnected', (reason) => { if (client === c) lost('connection to the server lost: ' + reason); });
	client = c;
	return c;
}

async function publishOnce(takeover) {
	const gen = generation;
	const c = await ensureClient();
	const p = await c.publish(options(takeover));
	if (gen !== generation) { p.stop(); return; }
	performer = p;
	p.on('earnings', (m) => {
		$('viewers').textContent = m.viewers;
		$('paying').textContent = m.paying_viewers;
		$('earnings').textContent = m.amount + ' ' + m.currency;
		$('billed-seconds').textContent = m.seconds + ' s';
	});
	p.on('tip', (m) => addTip($('tips'), m));
	p.on('replaced', () => ended('Another connection took over this stream with the same key.'));
	p.on('kicked', () => ended('The platform removed you from the room.'));
	p.on('destroyed', () => ended('The room was closed.'));
	p.on('error', (e) => showError(errorText(e)));
	p.on('ice', (s) => {
		if (p !== performer || !wantLive) return;
		if (s === 'disconnected') state('reconnecting', 'network');
		else if (s === 'connected' || s === 'completed') state('live');
		else if (s === 'failed') lost('the media connection failed');
	});
	p.on('hangup', () => { if (p === performer && wantLive) lost('the media connection was closed'); });
	// janus.js tore our PeerConnection down without a hang-up from Janus (e.g. a local failure).
	p.on('cleanup', () => { if (p === performer && wantLive) lost('the media connection was closed'); });
	showError('');
	state('live', p.info && p.info.simulcast ? 'simulcast' : '');
	document.body.dataset.simulcast = String(!!(p.info && p.info.simulcast));
}

async function goLive(ev) {
	if (ev) ev.preventDefault();
	if (!$('room').value.trim()) { showError('Enter the room.'); return; }
	if (!$('key').value && !$('token').value) { showError('Enter the stream key or a publisher token.'); return; }
	generation++;
	wantLive = true;
	state('connecting');
	showError('');
	try {
		if (!preview) await startPreview();
		await publishOnce(false);
	} catch (e) {
		wantLive = false;
		state('offline');
		showError(errorText(e));
		if (performer) { performer.stop(); performer = null; }
	}
}

// The connection or the PeerConnection went away while we want to be live:
// come back with takeover (our old connection may still hold the room).
let reconnecting = false;
async function lost(why) {
	if (!wantLive || reconnecting) return;
	reconnecting = true;
	const gen = ++generation;
	state('reconnecting');
	showError('Reconnecting: ' + why + '…');
	const old = performer;
	performer = null;
	if (old) old.stop().catch(() => {});
	for (let attempt = 0; wantLive && gen === generation; attempt++) {
		await sleep(Math.min(1000 * 2 ** attempt, 8000));
		if (!wantLive || gen !== generation) break;
		try {
			if (client && !client.connected) { client.destroy(); client = null; }
			generation = gen;   // publishOnce checks it
			await publishOnce(true);
			break;
		} catch (e) {
			const fatal = e instanceof PaystreamError && [444, 446, 447, 449, 457, 458].includes(e.code);
			showError('Reconnecting: ' + errorText(e));
			if (fatal) { wantLive = false; state('offline'); break; }
		}
	}
	reconnecting = false;
}

function ended(message) {
	wantLive = false;
	generation++;
	const p = performer;
	performer = null;
	if (p) p.stop().catch(() => {});
	state('offline');
	showError(message);
}

async function stop() {
	wantLive = false;
	generation++;
	const p = performer;
	performer = null;
	$('stop').disabled = true;
	if (p) await p.stop().catch(() => {});
	state('offline');
	$('viewers').textContent = '0';
	$('paying').textContent = '0';
}

// ---- start ------------------------------------------------------------------
$('golive-form').addEventListener('submit', goLive);
$('stop').addEventListener('click', stop);
$('camera').addEventListener('change', () => startPreview().catch(() => {}));
$('mic').addEventListener('change', () => startPreview().catch(() => {}));
if (navigator.mediaDevices) navigator.mediaDevices.addEventListener('devicechange', () => listDevices().catch(() => {}));
window.addEventListener('pagehide', () => { if (performer) performer.stop(); });

$('room').value = q.get('room') || '';
$('key').value = q.get('key') || '';
$('token').value = q.get('token') || '';
$('display').value = q.get('display') || '';
if (q.get('simulcast') === '0') $('simulcast').checked = false;
state('offline');

// For tests and debugging: the page's objects.
window.paystreamPage = {
	get performer() { return performer; }, get client() { return client; }, goLive, stop,
	// Debugging and tests: drop the live PeerConnection the way a browser whose
	// media connection died does (janus.js closes it and tells Janus, which
	// answers with a hang-up). The page should show `reconnecting` and come
	// back by itself with takeover on a new handle. Returns false when not live.
	debugDropMedia() {
		if (!performer || !performer.handle || !performer.pc) return false;
		performer.handle.hangup(true);
		return true;
	},
};

(async () => {
	try { await startPreview(); } catch (e) { return; }
	if ($('room').value && ($('key').value || $('token').value)) goLive();
})();
