// facefleet's page: plain JavaScript, no build step, no third-party code.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const svg = ['svg', 'g', 'rect', 'text', 'path', 'line', 'title'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
};

// ---------------------------------------------------------------- API access

const KEY_STORE = 'facefleet.apiKey';

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// keyPrompt is the one pending "API key needed" question: requests that get a 401
// while it is open wait for the same answer.
let keyPrompt = null;

function askForKey(reason) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const d = $('#key-dialog'), input = $('#key-input');
    $('#key-error').textContent = reason || '';
    input.value = '';
    const done = (key) => {
      d.close();
      $('#key-form').removeEventListener('submit', submit);
      $('#key-cancel').removeEventListener('click', cancel);
      keyPrompt = null;
      resolve(key);
    };
    const submit = (ev) => {
      ev.preventDefault();
      const k = input.value.trim();
      if (!k) { $('#key-error').textContent = 'Type the key, or Cancel.'; return; }
      localStorage.setItem(KEY_STORE, k);
      $('#key-button').hidden = false;
      done(k);
    };
    const cancel = () => done(null);
    $('#key-form').addEventListener('submit', submit);
    $('#key-cancel').addEventListener('click', cancel);
    d.addEventListener('cancel', (ev) => { ev.preventDefault(); cancel(); }, { once: true });
    d.showModal();
    input.focus();
  });
  return keyPrompt;
}

// api fetches a path of this service with the stored key; a 401 asks for a key
// (once for all requests that need it) and retries. It answers the Response or
// throws an APIError whose message is the service's own words.
async function api(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(opts.headers || {});
    const key = localStorage.getItem(KEY_STORE);
    if (key) headers.set('Authorization', 'Bearer ' + key);
    let res;
    try {
      res = await fetch(path, { ...opts, headers });
    } catch (e) {
      throw new APIError(0, 'network', 'Cannot reach the service (' + e.message + '). Is it running?');
    }
    if (res.status === 401 && attempt < 3) {
      const why = key ? 'The stored key was refused: ' + (await errorText(res)) : '';
      if (key) localStorage.removeItem(KEY_STORE);
      const k = await askForKey(why);
      if (k) continue;
      throw new APIError(401, 'key_required', 'This needs an API key: ' + (await errorText(res)));
    }
    if (!res.ok) throw new APIError(res.status, 'http_' + res.status, await errorText(res));
    return res;
  }
}

async function errorText(res) {
  if (res.bodyUsed) return res.statusText || ('HTTP ' + res.status);
  const text = await res.text().catch(() => '');
  try {
    const j = JSON.parse(text);
    if (j && j.error && j.error.message) return j.error.message;
  } catch (_) { /* not JSON */ }
  const t = text.trim();
  if (t && t.length < 400 && !t.startsWith('<')) return t;
  return `the service answered ${res.status} ${res.statusText || ''}`.trim();
}

const apiJSON = async (path, opts) => (await api(path, opts)).json();
const subjectPath = (name) => '/v1/subjects/' + encodeURIComponent(name);

// ---------------------------------------------------------------- tabs

const tabs = ['recognize', 'people', 'fleet'];
function showTab(name, focus) {
  for (const t of tabs) {
    const tab = $('#tab-' + t), on = t === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $('#' + t).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === 'people') loadPeople();
  if (name === 'fleet') startFleet(); else stopFleet();
  history.replaceState(null, '', '#' + name);
}
for (const t of tabs) {
  $('#tab-' + t).addEventListener('click', () => showTab(t));
  $('#tab-' + t).addEventListener('keydown', (ev) => {
    const i = tabs.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    showTab(tabs[(next + tabs.length) % tabs.length], true);
  });
}

// ---------------------------------------------------------------- recognize

const fmtDist = (d) => (typeof d === 'number' ? d.toFixed(2) : '–');
const stemOf = (key) => key.replace(/\.[^.]*$/, '');
let photoSeq = 0;

function addFiles(files) {
  const list = [...files].filter((f) => f.size > 0);
  if (!list.length) return;
  const queue = list.map((f) => ({ file: f, card: photoCard(f) }));
  // At most four uploads at once; the rest wait their turn.
  let next = 0;
  const worker = async () => { while (next < queue.length) { const j = queue[next++]; await recognize(j.file, j.card); } };
  for (let i = 0; i < Math.min(4, queue.length); i++) worker();
}

function photoCard(file) {
  const id = 'photo-' + (++photoSeq);
  const card = el('article', { class: 'photo', id, 'aria-labelledby': id + '-h' },
    el('h3', { id: id + '-h', text: file.name }),
    el('div', { class: 'stage' }, el('img', { alt: 'Photo ' + file.name, src: URL.createObjectURL(file), onerror: (ev) => { ev.target.hidden = true; } })),
    el('p', { class: 'answer busy', text: 'Recognizing…' }),
    el('ul', { class: 'faces', 'aria-label': 'Faces found' }),
    el('p', { class: 'timings' }),
    el('p', { class: 'error', role: 'alert' }));
  $('#results').prepend(card);
  return card;
}

async function recognize(file, card) {
  const answer = card.querySelector('.answer');
  answer.className = 'answer busy';
  answer.textContent = 'Recognizing…';
  card.querySelector('.error').textContent = '';
  const form = new FormData();
  form.append('image', file, file.name);
  try {
    const r = await apiJSON('/v1/recognize', { method: 'POST', body: form });
    drawResult(card, file, r);
  } catch (e) {
    answer.className = 'answer';
    answer.textContent = '';
    card.querySelector('.error').textContent = 'Could not recognize ' + file.name + ': ' + e.message;
  }
}

function drawResult(card, file, r) {
  const stage = card.querySelector('.stage');
  stage.querySelector('svg')?.remove();
  const svg = el('svg', { viewBox: `0 0 ${r.width} ${r.height}`, preserveAspectRatio: 'none', role: 'group', 'aria-label': 'Faces in ' + file.name });
  const list = card.querySelector('.faces');
  list.replaceChildren();
  const fontSize = Math.max(10, Math.round(Math.max(r.width, r.height) / 60));
  r.faces.forEach((f, i) => {
    const known = !!f.subject && f.subject !== 'Unknown';
    const name = known ? f.subject : 'Unknown';
    const label = `${name} ${fmtDist(f.distance)}`;
    const aria = `Face ${i + 1}: ${name}, distance ${fmtDist(f.distance)}. Enroll this face`;
    const open = () => openEnroll(card, file, r, i);
    const g = el('g', { class: 'face ' + (known ? 'known' : 'unknown'), tabindex: 0, role: 'button', 'aria-label': aria,
      'data-name': name, 'data-index': i,
      onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } } },
    el('rect', { x: f.box.x, y: f.box.y, width: f.box.w, height: f.box.h, rx: 3 }),
    // Labels stay inside the photo: right-aligned near its right edge.
    el('text', f.box.x > r.width * 0.7
      ? { x: Math.min(r.width, f.box.x + f.box.w), 'text-anchor': 'end', y: Math.max(fontSize, f.box.y - 4), 'font-size': fontSize, text: label }
      : { x: Math.max(0, f.box.x), y: Math.max(fontSize, f.box.y - 4), 'font-size': fontSize, text: label }));
    svg.append(g);
    list.append(el('li', {}, el('button', { type: 'button', class: known ? 'known' : 'unknown', 'aria-label': aria, onclick: open,
      text: `${i + 1}. ${label}` })));
  });
  stage.append(svg);
  const answer = card.querySelector('.answer');
  answer.className = 'answer';
  const faces = r.faces.length === 1 ? '1 face' : r.faces.length + ' faces';
  answer.replaceChildren(el('code', { title: 'what POST / answers for this file', text: stemOf(r.key) + ':' + r.name }),
    ' · ' + faces + (r.faces.length ? ' — click a face to enroll it' : ''));
  const t = r.timings || {};
  const ms = (v) => (typeof v === 'number' ? Math.round(v) + ' ms' : '–');
  card.querySelector('.timings').textContent =
    `total ${ms(t.total_ms)} · queued ${ms(t.queued_ms)} · inference ${ms(t.inference_ms)} · overhead ${ms(t.overhead_ms)}` +
    (r.worker ? ` · worker ${r.worker}` : '');
}

const drop = $('#drop');
$('#files').addEventListener('change', (ev) => { addFiles(ev.target.files); ev.target.value = ''; });
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); addFiles(ev.dataTransfer.files); });
// Dropping anywhere else on the page must not navigate away from it.
window.addEventListener('dragover', (ev) => ev.preventDefault());
window.addEventListener('drop', (ev) => ev.preventDefault());

// ---------------------------------------------------------------- enroll from a box

// cropFace cuts the face (with a margin, so the detector finds it again) out of
// the photo as a JPEG blob: enrollment then describes this face and no other.
async function cropFace(file, r, i) {
  const img = new Image();
  const url = URL.createObjectURL(file);
  try {
    img.src = url;
    await img.decode();
  } finally { URL.revokeObjectURL(url); }
  const b = r.faces[i].box;
  // Boxes are in the pixels the service decoded; scale if the browser sees another size.
  const sx = img.naturalWidth / r.width, sy = img.naturalHeight / r.height;
  const side = Math.max(b.w, b.h) * 1.8;
  const x0 = Math.max(0, (b.x + b.w / 2 - side / 2) * sx), y0 = Math.max(0, (b.y + b.h / 2 - side / 2) * sy);
  const x1 = Math.min(img.naturalWidth, (b.x + b.w / 2 + side / 2) * sx), y1 = Math.min(img.naturalHeight, (b.y + b.h / 2 + side / 2) * sy);
  const c = document.createElement('canvas');
  const scale = Math.min(1, 400 / Math.max(x1 - x0, y1 - y0)); // a face needs no more than 400 px
  c.width = Math.max(1, Math.round((x1 - x0) * Math.max(scale, 160 / Math.max(x1 - x0, y1 - y0))));
  c.height = Math.max(1, Math.round(c.width * (y1 - y0) / (x1 - x0)));
  c.getContext('2d').drawImage(img, x0, y0, x1 - x0, y1 - y0, 0, 0, c.width, c.height);
  return new Promise((res, rej) => c.toBlob((bl) => (bl ? res(bl) : rej(new Error('cannot crop the face'))), 'image/jpeg', 0.92));
}

let enrolling = null;

async function openEnroll(card, file, r, i) {
  const d = $('#enroll-dialog');
  enrolling = { card, file, r, i, confirmFor: null, returnTo: document.activeElement };
  $('#enroll-error').textContent = '';
  $('#enroll-confirm').hidden = true;
  $('#enroll-ask').hidden = false;
  $('#enroll-submit').textContent = 'Enroll';
  $('#enroll-submit').disabled = false;
  const f = r.faces[i];
  $('#enroll-name').value = f.subject && f.subject !== 'Unknown' ? f.subject : '';
  $('#enroll-title').textContent = `Enroll face ${i + 1} of ${file.name}`;
  const preview = $('#enroll-preview');
  if (preview.src.startsWith('blob:')) URL.revokeObjectURL(preview.src);
  preview.removeAttribute('src');
  d.showModal();
  $('#enroll-name').focus();
  const job = enrolling;
  job.crop = cropFace(file, r, i);
  fillNames();
  try {
    const blob = await job.crop;
    if (enrolling === job) preview.src = URL.createObjectURL(blob);
  } catch (e) {
    if (enrolling === job) $('#enroll-error').textContent = 'Cannot cut this face out of the photo: ' + e.message;
  }
}

// listSubjects lists every subject, page by page where the service pages.
async function listSubjects() {
  let out = [], after = null;
  for (;;) {
    const j = await apiJSON('/v1/subjects' + (after === null ? '' : '?limit=1000&after=' + encodeURIComponent(after)));
    out = out.concat(j.subjects || []);
    if (!j.next) return out;
    after = j.next;
  }
}

// facesOf answers how many faces name has enrolled, null when nobody of that name is.
async function facesOf(name) {
  try {
    return ((await apiJSON(subjectPath(name) + '/faces')).faces || []).length;
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

async function fillNames() {
  try {
    const subs = (await apiJSON('/v1/subjects?limit=500')).subjects || [];
    $('#subject-names').replaceChildren(...subs.map((s) => el('option', { value: s.name })));
  } catch (_) { /* the name list is a convenience */ }
}

function closeEnroll() {
  const d = $('#enroll-dialog');
  if (d.open) d.close();
  const back = enrolling && enrolling.returnTo;
  enrolling = null;
  if (back && back.isConnected) back.focus();
}

$('#enroll-cancel').addEventListener('click', () => {
  if (enrolling && enrolling.confirmFor) { // back from "add to an existing person?"
    enrolling.confirmFor = null;
    $('#enroll-confirm').hidden = true;
    $('#enroll-ask').hidden = false;
    $('#enroll-submit').textContent = 'Enroll';
    $('#enroll-name').focus();
    return;
  }
  closeEnroll();
});
$('#enroll-dialog').addEventListener('close', () => { enrolling = null; });

$('#enroll-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const job = enrolling;
  if (!job) return;
  const name = $('#enroll-name').value.trim();
  const err = $('#enroll-error');
  err.textContent = '';
  if (!name) { err.textContent = 'Type the name of this person.'; return; }
  if (/[/\\:]/.test(name) || name === 'Unknown' || name === 'NoFace') { err.textContent = 'Names may not contain / \\ or :, and may not be Unknown or NoFace.'; return; }
  const btn = $('#enroll-submit');
  btn.disabled = true;
  try {
    const blob = await job.crop;
    if (job.confirmFor !== name) {
      const have = await facesOf(name);
      if (have !== null) {
        job.confirmFor = name;
        const p = $('#enroll-confirm');
        p.textContent = `${name} is already enrolled with ${have} face${have === 1 ? '' : 's'}. Add this face to ${name}?`;
        p.hidden = false;
        $('#enroll-ask').hidden = true;
        btn.textContent = 'Add to ' + name;
        btn.disabled = false;
        btn.focus();
        return;
      }
    }
    btn.textContent = 'Enrolling…';
    const form = new FormData();
    form.append('image', blob, `face-${stemOf(job.file.name).slice(0, 80)}-${job.i + 1}.jpg`);
    const out = await apiJSON(subjectPath(name) + '/faces', { method: 'POST', body: form });
    const status = job.card.querySelector('.error');
    closeEnroll();
    status.textContent = '';
    announce(`Enrolled ${out.subject}: ${out.faces} face${out.faces === 1 ? '' : 's'}.`);
    recognize(job.file, job.card); // redraw with the new name
  } catch (e) {
    err.textContent = 'Enrollment failed: ' + e.message;
    btn.disabled = false;
    btn.textContent = job.confirmFor ? 'Add to ' + job.confirmFor : 'Enroll';
  }
});

const liveRegion = el('p', { class: 'sr-only', role: 'status', id: 'announce' });
document.body.append(liveRegion);
function announce(text) { liveRegion.textContent = text; }

// ---------------------------------------------------------------- people

const PAGE = 8;
let peoplePage = 0;
const thumbURLs = [];

function confirmAction(text, yes) {
  return new Promise((resolve) => {
    const d = $('#confirm-dialog');
    $('#confirm-text').textContent = text;
    $('#confirm-yes').textContent = yes;
    const back = document.activeElement;
    d.returnValue = '';
    d.addEventListener('close', () => { resolve(d.returnValue === 'yes'); if (back && back.isConnected) back.focus(); }, { once: true });
    d.showModal();
    $('#confirm-no').focus();
  });
}

async function loadPeople() {
  const status = $('#people-status');
  status.className = '';
  status.textContent = 'Loading…';
  let subs;
  try {
    subs = await listSubjects();
  } catch (e) {
    status.className = 'error';
    status.textContent = 'Cannot list people: ' + e.message;
    return;
  }
  const q = $('#search').value.trim().toLowerCase();
  const shown = q ? subs.filter((s) => s.name.toLowerCase().includes(q)) : subs;
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  peoplePage = Math.min(peoplePage, pages - 1);
  const slice = shown.slice(peoplePage * PAGE, peoplePage * PAGE + PAGE);
  status.textContent = subs.length === 0 ? 'Nobody is enrolled yet: recognize a photo and click a face to enroll it.'
    : q ? `${shown.length} of ${subs.length} people match “${q}”.` : `${subs.length} ${subs.length === 1 ? 'person' : 'people'} enrolled.`;
  $('#page-info').textContent = `Page ${peoplePage + 1} of ${pages}`;
  $('#prev-page').disabled = peoplePage === 0;
  $('#next-page').disabled = peoplePage >= pages - 1;
  while (thumbURLs.length) URL.revokeObjectURL(thumbURLs.pop());
  const list = $('#people-list');
  list.replaceChildren(...slice.map(personCard));
}

function personCard(s) {
  const id = 'person-' + encodeURIComponent(s.name).replace(/[^A-Za-z0-9]/g, '_');
  const thumbs = el('ul', { class: 'thumbs', 'aria-label': 'Faces of ' + s.name });
  const li = el('li', { class: 'person', 'data-name': s.name, 'aria-labelledby': id },
    el('div', { class: 'person-head' },
      el('h3', { id, text: s.name }),
      el('span', { class: 'count', text: `${s.faces} face${s.faces === 1 ? '' : 's'}` }),
      el('button', { type: 'button', class: 'danger', 'aria-label': 'Remove ' + s.name + ' and every face', onclick: () => removePerson(s) , text: 'Remove person' })),
    thumbs,
    el('p', { class: 'error', role: 'alert' }));
  loadFaces(s, thumbs, li.querySelector('.error'));
  return li;
}

async function loadFaces(s, ul, errP) {
  let faces;
  try {
    faces = (await apiJSON(subjectPath(s.name) + '/faces')).faces || [];
  } catch (e) {
    errP.textContent = 'Cannot list the faces of ' + s.name + ': ' + e.message;
    return;
  }
  faces.forEach((f, i) => {
    const label = `face ${i + 1} of ${s.name}` + (f.created ? ', enrolled ' + new Date(f.created).toLocaleString() : '');
    const noPic = (why) => el('span', { class: 'nopic', role: 'img', 'aria-label': `${label} (${why})`, text: 'no picture' });
    // thumbnail false: none was kept (enrolled without the API); absent: ask.
    const pic = f.thumbnail === false ? noPic('no picture kept') : el('img', { alt: label, width: 72, height: 72 });
    ul.append(el('li', { 'data-face': f.id }, pic,
      el('button', { type: 'button', 'aria-label': 'Remove ' + label, onclick: () => removeFace(s, f, i), text: 'Remove' })));
    if (f.thumbnail !== false) {
      api(subjectPath(s.name) + '/faces/' + encodeURIComponent(f.id) + '/thumbnail').then((r) => r.blob()).then((b) => {
        const u = URL.createObjectURL(b);
        thumbURLs.push(u);
        pic.src = u;
      }).catch((e) => pic.replaceWith(noPic(e.status === 404 ? 'no picture kept' : 'picture unavailable: ' + e.message)));
    }
  });
}

async function removeFace(s, f, i) {
  const last = s.faces === 1;
  if (!(await confirmAction(`Remove face ${i + 1} of ${s.name}?` + (last ? ` It is the last one: ${s.name} will be removed.` : ''), 'Remove face'))) return;
  try {
    await api(subjectPath(s.name) + '/faces/' + encodeURIComponent(f.id), { method: 'DELETE' });
    announce(`Removed a face of ${s.name}.`);
  } catch (e) {
    $('#people-status').className = 'error';
    $('#people-status').textContent = `Cannot remove the face of ${s.name}: ${e.message}`;
    return;
  }
  loadPeople();
}

async function removePerson(s) {
  if (!(await confirmAction(`Remove ${s.name} and all ${s.faces} face${s.faces === 1 ? '' : 's'}?`, 'Remove person'))) return;
  try {
    await api(subjectPath(s.name), { method: 'DELETE' });
    announce(`Removed ${s.name}.`);
  } catch (e) {
    $('#people-status').className = 'error';
    $('#people-status').textContent = `Cannot remove ${s.name}: ${e.message}`;
    return;
  }
  loadPeople();
}

let searchTimer = 0;
$('#search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { peoplePage = 0; loadPeople(); }, 200); });
$('#refresh-people').addEventListener('click', loadPeople);
$('#prev-page').addEventListener('click', () => { peoplePage = Math.max(0, peoplePage - 1); loadPeople(); });
$('#next-page').addEventListener('click', () => { peoplePage++; loadPeople(); });

// ---------------------------------------------------------------- fleet

const WINDOW_MS = 15 * 60 * 1000;
let samples = [];
let fleetTimer = 0;
let fleetOn = false;

function startFleet() {
  if (fleetOn) return;
  fleetOn = true;
  pollFleet();
}
function stopFleet() { fleetOn = false; clearTimeout(fleetTimer); }

async function pollFleet() {
  if (!fleetOn) return;
  const since = samples.length ? samples[samples.length - 1].t : 0;
  const status = $('#fleet-status');
  try {
    const h = await apiJSON('/v1/status/history?since=' + since);
    samples = samples.concat(h.samples).filter((s) => s.t > Date.now() - WINDOW_MS);
    drawFleet(h);
    status.className = '';
    const errs = samples.length ? samples[samples.length - 1].errors : null;
    status.textContent = errs && errs.length ? 'The service could not read everything: ' + errs.join('; ') : '';
    if (errs && errs.length) status.className = 'error';
  } catch (e) {
    status.className = 'error';
    status.textContent = 'Cannot read the fleet status: ' + e.message;
  }
  clearTimeout(fleetTimer);
  if (fleetOn) fleetTimer = setTimeout(pollFleet, document.hidden ? 5000 : 1000);
}

function drawFleet(h) {
  const last = samples[samples.length - 1];
  if (last) {
    const inst = last.instances || {};
    $('#t-visible').textContent = last.visible;
    $('#t-inflight').textContent = last.in_flight;
    $('#t-waiting').textContent = last.waiting;
    $('#t-running').textContent = inst.running || 0;
    $('#t-pending').textContent = inst.pending || 0;
    $('#t-stopping').textContent = inst.stopping || 0;
    $('#t-stopped').textContent = inst.stopped || 0;
  }
  // The x axis spans the samples held (at least a minute), up to the last 15 minutes.
  const now = Date.now();
  const t0 = Math.min(now - 60000, Math.max(now - WINDOW_MS, samples.length ? samples[0].t : now));
  const inst = (s, k) => (s.instances || {})[k] || 0;
  const reqTop = plot('#chart', 160, t0, now, [['#line-visible', (s) => s.visible], ['#line-inflight', (s) => s.in_flight]]);
  const instTop = plot('#inst-chart', 100, t0, now, [['#line-running', (s) => inst(s, 'running')], ['#line-pending', (s) => inst(s, 'pending')]]);
  $('#chart-max').textContent = reqTop;
  $('#inst-max').textContent = instTop;
  $('#axis-start').textContent = new Date(t0).toLocaleTimeString();
  $('#axis-span').textContent = `${Math.round((now - t0) / 60000)} min`;
  const chart = $('#chart');
  const peak = Math.max(0, ...samples.map((s) => s.visible + s.in_flight));
  const peakInst = Math.max(0, ...samples.map((s) => inst(s, 'running')));
  chart.dataset.samples = samples.length;
  chart.dataset.peak = peak;
  $('#chart-desc').textContent = last
    ? `${samples.length} samples since ${new Date(t0).toLocaleTimeString()}. Now ${last.visible} queued and ${last.in_flight} in flight; ` +
      `the most queued or in flight at once was ${peak}.`
    : 'No samples yet.';
  $('#inst-desc').textContent = last
    ? `Now ${inst(last, 'running')} running and ${inst(last, 'pending')} pending; at most ${peakInst} running.`
    : 'No samples yet.';
  const ol = $('#decisions');
  if (!h.decisions_available) {
    ol.replaceChildren(el('li', { text: 'Not visible from this web tier: it runs no scaler and reads no scaler decision log.' }));
    return;
  }
  const ds = (h.decisions || []).slice().reverse();
  if (!ds.length) {
    ol.replaceChildren(el('li', { text: 'No decisions yet. (On AWS the scaler Lambda records its decisions when each invocation ends, so they show up to a minute late.)' }));
    return;
  }
  ol.replaceChildren(...ds.map((d) => {
    const acts = [];
    if (d.start) acts.push(`start ${d.start}`);
    if (d.stop) acts.push(`stop ${d.stop}`);
    if (d.retire) acts.push(`retire ${d.retire}`);
    const when = new Date(d.observation.now);
    return el('li', {}, el('time', { datetime: when.toISOString(), text: when.toLocaleTimeString() }), ' ',
      el('strong', { text: acts.length ? acts.join(', ') : 'hold' }), ` (want ${d.desired}) — ${d.reason}` + (d.error ? ` — error: ${d.error}` : ''));
  }));
}

// plot draws one line per series on svg (600 wide, h high) from t0 to t1 and
// answers the top of its y scale.
function plot(svgSel, h, t0, t1, series) {
  const W = 600, svg = $(svgSel);
  const top = Math.max(2, ...samples.flatMap((s) => series.map(([, f]) => f(s))));
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0) * W).toFixed(1);
  const y = (v) => (h - 3 - v / top * (h - 10)).toFixed(1);
  const shown = samples.filter((s) => s.t >= t0);
  for (const [sel, f] of series) {
    svg.querySelector(sel).setAttribute('d', shown.map((s, i) => (i ? 'L' : 'M') + x(s.t) + ' ' + y(f(s))).join(' '));
  }
  const grid = svg.querySelector('.grid');
  grid.replaceChildren();
  for (let i = 1; i < 4; i++) grid.append(el('line', { class: 'gridline', x1: W * i / 4, x2: W * i / 4, y1: 0, y2: h }));
  for (const v of [top / 2, top]) grid.append(el('line', { class: 'gridline', x1: 0, x2: W, y1: y(v), y2: y(v) }));
  return Math.round(top);
}

// ---------------------------------------------------------------- start

$('#key-button').hidden = !localStorage.getItem(KEY_STORE);
$('#key-button').addEventListener('click', () => askForKey(''));
$('#key-forget').addEventListener('click', () => {
  localStorage.removeItem(KEY_STORE);
  $('#key-button').hidden = true;
  $('#key-error').textContent = 'The key is forgotten.';
});
const first = location.hash.slice(1);
showTab(tabs.includes(first) ? first : 'recognize');
