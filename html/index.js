// index.html: the demo's front door.
import { $, setState, showError } from './common.js';

let config = null;
const rooms = new Map();

function addRoom(r) {
	rooms.set(r.room, r);
	const sel = $('room-select');
	if (![...sel.options].some((o) => o.value === r.room)) {
		const o = document.createElement('option');
		o.value = r.room;
		o.textContent = (r.description && r.description !== r.room ? r.description + ' (' + r.room + ')' : r.room);
		sel.append(o);
	}
}

function update() {
	const r = rooms.get($('room-select').value);
	if (!r) return;
	$('room-info').textContent = 'Price: ' + r.price_per_second + ' ' + (r.currency || 'credits') + ' per second.';
	const p = new URLSearchParams({ room: r.room });
	if (r.stream_key) p.set('key', r.stream_key);
	$('performer-link').href = 'performer.html?' + p;
	const v = new URLSearchParams({ room: r.room });
	if (r.token || (config.viewer && config.viewer.token)) v.set('token', r.token || config.viewer.token);
	v.set('display', config.viewer && config.viewer.account || 'viewer');
	$('viewer-link').href = 'viewer.html?' + v;
}

async function balance() {
	const account = config && config.viewer && config.viewer.account;
	if (!account) return;
	try {
		const r = await fetch('billing/accounts/' + encodeURIComponent(account), { cache: 'no-store' });
		const d = await r.json();
		if (!r.ok) throw new Error(d.error || r.status);
		$('balance').textContent = d.balance + ' ' + (config.currency || 'credits');
	} catch (e) {
		$('balance').textContent = 'unavailable';
	}
}

async function create(ev) {
	ev.preventDefault();
	const out = $('create-result');
	out.dataset.status = '';
	out.textContent = 'Creating…';
	try {
		const r = await fetch('demo/rooms', {
			method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ room: $('new-room').value.trim(), price_per_second: Number($('new-price').value) }),
		});
		const d = await r.json();
		if (!r.ok) throw new Error(d.error || 'HTTP ' + r.status);
		addRoom({ room: d.room, price_per_second: d.price_per_second, currency: d.currency, stream_key: d.stream_key, token: d.token });
		$('room-select').value = d.room;
		update();
		out.dataset.status = 'accepted';
		out.textContent = 'Room ' + d.room + ' created; the links above now open it.';
	} catch (e) {
		out.dataset.status = 'error';
		out.textContent = 'Could not create the room: ' + e.message;
	}
}

(async () => {
	try {
		const r = await fetch('demo/config.json', { cache: 'no-store' });
		if (!r.ok) throw new Error('HTTP ' + r.status);
		config = await r.json();
	} catch (e) {
		setState('error', 'no demo');
		showError('This server has no demo configuration (start it with scripts/demo). You can still open performer.html and viewer.html with ?room=…&key=… / ?room=…&token=….');
		return;
	}
	for (const r of config.rooms || []) addRoom(r);
	$('account').textContent = (config.viewer && config.viewer.account) || '–';
	$('room-select').addEventListener('change', update);
	$('create').hidden = !config.create_rooms;
	$('create-form').addEventListener('submit', create);
	update();
	balance();
	setInterval(balance, 2000);
	setState('ready', 'ready');
})();
