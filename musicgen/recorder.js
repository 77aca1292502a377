// The recorder: play a phrase and it becomes the prompt. Runs as the js_on_load of the
// recorder's gr.HTML (see recorder.py): `element` is its root, `trigger(event, data)` sends an
// event to the server, `props` holds the limits. Keys come from three places — the on-screen
// piano, the computer keyboard (A W S E D F T G Y H U J K = C4..C5, Z / X octave down / up) and
// a MIDI keyboard through Web MIDI — and all sound at once in the page (a small Web Audio
// voice, no server round trip). "Stop recording" writes a Standard MIDI File in the page and
// sends its bytes; the server checks them as it checks an upload. Times are the events' own
// time stamps (the moment a key went down, not when this script got to it).

const LOW = 21, HIGH = 108; // A0..C8, the piano the model plays
const DAW_KEYS = ["KeyA", "KeyW", "KeyS", "KeyE", "KeyD", "KeyF", "KeyT", "KeyG", "KeyY",
  "KeyH", "KeyU", "KeyJ", "KeyK", "KeyO", "KeyL", "KeyP", "Semicolon"]; // semitones from C
const BLACK = new Set([1, 3, 6, 8, 10]);
const NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];
const TICKS_PER_BEAT = 480, MICROSECONDS_PER_BEAT = 500000; // 120 qpm, as MAESTRO's files
const TICKS_PER_SECOND = TICKS_PER_BEAT * 1e6 / MICROSECONDS_PER_BEAT;
const SHOWN_OCTAVES = 3; // the on-screen piano: from an octave below the computer keys' C

const maxSeconds = Number(props.max_seconds), maxNotes = Number(props.max_notes);
const $ = (selector) => element.querySelector(selector);
const pianoBox = $(".mg-piano"), recordButton = $(".mg-record"), status = $(".mg-status");
const octaveLabel = $(".mg-octave");
let base = 60; // the pitch of the computer's A key (C4)
const sounding = new Map(); // pitch -> its Web Audio voice
const down = new Set(); // pitches whose key is down (any source)
let pedal = false;
let recording = null; // {events: [{t, kind: "on"|"off"|"pedal", pitch, velocity, down}]}

// ----- sound: a plain piano-like voice (two partials, a struck decay, a soft release)

let audio = null;
function context() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state === "suspended") audio.resume();
  return audio;
}

function startVoice(pitch, velocity) {
  const ctx = context(), now = ctx.currentTime;
  const frequency = 440 * Math.pow(2, (pitch - 69) / 12);
  const level = 0.25 * Math.pow(velocity / 127, 1.6);
  const gain = ctx.createGain();
  gain.gain.setValueAtTime(0, now);
  gain.gain.linearRampToValueAtTime(level, now + 0.005);
  gain.gain.setTargetAtTime(level * 0.25, now + 0.005, 0.6 + (HIGH - pitch) / 90);
  gain.connect(ctx.destination);
  const partials = [[1, "triangle", 1], [2, "sine", 0.3], [3, "sine", 0.08]].map(([n, type, g]) => {
    const osc = ctx.createOscillator(), amp = ctx.createGain();
    osc.type = type;
    osc.frequency.value = frequency * n;
    amp.gain.value = g;
    osc.connect(amp).connect(gain);
    osc.start(now);
    return osc;
  });
  return { gain, partials };
}

function stopVoice(voice) {
  const ctx = context(), now = ctx.currentTime;
  voice.gain.gain.cancelScheduledValues(now);
  voice.gain.gain.setTargetAtTime(0, now, 0.08);
  voice.partials.forEach((osc) => osc.stop(now + 0.6));
}

// ----- notes from any source

function noteOn(pitch, velocity, t) {
  if (pitch < LOW || pitch > HIGH || velocity <= 0) return;
  if (sounding.has(pitch)) stopVoice(sounding.get(pitch)); // a key sounds once at a time
  sounding.set(pitch, startVoice(pitch, velocity));
  down.add(pitch);
  record({ t, kind: "on", pitch, velocity });
  showKeys();
}

function noteOff(pitch, t) {
  if (!down.delete(pitch)) return;
  if (!pedal && sounding.has(pitch)) {
    stopVoice(sounding.get(pitch));
    sounding.delete(pitch);
  }
  record({ t, kind: "off", pitch });
  showKeys();
}

function setPedal(isDown, t) {
  if (isDown === pedal) return;
  pedal = isDown;
  if (!pedal) {
    for (const [pitch, voice] of sounding) {
      if (!down.has(pitch)) {
        stopVoice(voice);
        sounding.delete(pitch);
      }
    }
  }
  record({ t, kind: "pedal", down: isDown });
  showStatus();
}

// ----- recording

function record(event) {
  if (!recording) return;
  recording.events.push(event);
  showStatus();
}

function startRecording() {
  context();
  recording = { events: [], started: performance.now() };
  if (pedal) recording.events.push({ t: recording.started, kind: "pedal", down: true });
  recordButton.textContent = "⏹ Stop recording";
  recordButton.classList.add("mg-on");
  showStatus();
}

function stopRecording() {
  const stoppedAt = performance.now(), events = recording.events;
  recording = null;
  recordButton.textContent = "⏺ Record";
  recordButton.classList.remove("mg-on");
  const { notes, pedals, cut } = phrase(events, stoppedAt);
  if (!notes.length) {
    say("Nothing was recorded: press Record, then play some notes.");
    return;
  }
  const bytes = midiFile(notes, pedals);
  say(`Recorded ${notes.length} notes, ${notes.at(-1).end.toFixed(1)} s` +
      (cut ? ` (${cut})` : "") + ": it becomes the prompt.");
  trigger("submit", { midi: base64(bytes) });
}

// Notes (start, end in seconds from the first note, pitch, velocity) and pedal spans of a
// recording. Leading silence is trimmed; keys and pedal still down at Stop are released there;
// what is past the file limits is cut.
function phrase(events, stoppedAt) {
  const first = events.find((e) => e.kind === "on");
  if (!first) return { notes: [], pedals: [], cut: "" };
  const t0 = first.t, seconds = (t) => Math.max(0, (t - t0) / 1000);
  let end = seconds(stoppedAt), cut = "";
  if (end > maxSeconds) {
    end = maxSeconds;
    cut = `cut at ${Math.round(maxSeconds / 60)} min, the longest prompt`;
  }
  const open = new Map(), notes = [], pedals = [];
  let pedalFrom = null;
  for (const e of events) {
    const t = Math.min(seconds(e.t), end);
    if (e.kind === "on" && seconds(e.t) < end) {
      if (open.has(e.pitch)) notes.push({ ...open.get(e.pitch), end: t });
      open.set(e.pitch, { start: t, pitch: e.pitch, velocity: e.velocity });
    } else if (e.kind === "off" && open.has(e.pitch)) {
      notes.push({ ...open.get(e.pitch), end: t });
      open.delete(e.pitch);
    } else if (e.kind === "pedal") {
      if (e.down && pedalFrom === null) pedalFrom = t;
      if (!e.down && pedalFrom !== null) {
        pedals.push([pedalFrom, t]);
        pedalFrom = null;
      }
    }
  }
  for (const note of open.values()) notes.push({ ...note, end });
  if (pedalFrom !== null) pedals.push([pedalFrom, end]);
  notes.sort((a, b) => a.start - b.start || a.pitch - b.pitch);
  if (notes.length > maxNotes) {
    notes.length = maxNotes;
    cut = `cut at ${maxNotes} notes, the most a prompt may have`;
  }
  return { notes, pedals, cut };
}

// A Standard MIDI File, format 0, one piano track at 120 qpm.
function midiFile(notes, pedals) {
  const events = []; // [tick, order, bytes]: at one tick, releases before new strikes
  const tick = (s) => Math.round(s * TICKS_PER_SECOND);
  for (const n of notes) {
    const endTick = Math.max(tick(n.end), tick(n.start) + 1);
    events.push([tick(n.start), 2, [0x90, n.pitch, Math.max(1, Math.min(127, n.velocity))]]);
    events.push([endTick, 0, [0x80, n.pitch, 64]]);
  }
  for (const [from, to] of pedals) {
    events.push([tick(from), 1, [0xb0, 64, 127]]);
    events.push([tick(to), 1, [0xb0, 64, 0]]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const track = [0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20]; // tempo: 500,000 us a beat
  let now = 0;
  for (const [t, , bytes] of events) {
    track.push(...variableLength(t - now), ...bytes);
    now = t;
  }
  track.push(0x00, 0xff, 0x2f, 0x00); // end of track
  const header = [0x4d, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1, TICKS_PER_BEAT >> 8,
    TICKS_PER_BEAT & 0xff];
  const length = track.length;
  const chunk = [0x4d, 0x54, 0x72, 0x6b, (length >>> 24) & 0xff, (length >>> 16) & 0xff,
    (length >>> 8) & 0xff, length & 0xff];
  return Uint8Array.from([...header, ...chunk, ...track]);
}

function variableLength(value) {
  const bytes = [value & 0x7f];
  while ((value >>= 7) > 0) bytes.unshift((value & 0x7f) | 0x80);
  return bytes;
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

// ----- what the page shows

function say(text) {
  status.textContent = text;
}

function showStatus() {
  if (!recording) return;
  const notes = recording.events.filter((e) => e.kind === "on").length;
  const first = recording.events.find((e) => e.kind === "on");
  const seconds = first ? (performance.now() - first.t) / 1000 : 0;
  say(notes ? `Recording… ${notes} notes, ${seconds.toFixed(1)} s` +
      (pedal ? " · pedal down" : "") : "Recording… play when you are ready.");
}

function drawPiano() {
  const low = base - 12, high = Math.min(base + 12 * SHOWN_OCTAVES - 12, HIGH);
  const whites = [];
  for (let p = low; p <= high; p++) if (!BLACK.has(p % 12)) whites.push(p);
  const width = 100 / whites.length;
  pianoBox.replaceChildren();
  for (let p = low; p <= high; p++) {
    if (p < LOW) continue;
    const key = document.createElement("div");
    const isBlack = BLACK.has(p % 12);
    key.className = "mg-key " + (isBlack ? "mg-black" : "mg-white");
    key.dataset.pitch = p;
    const left = whites.indexOf(isBlack ? p - 1 : p) * width;
    key.style.left = `${isBlack ? left + width * 0.68 : left}%`;
    key.style.width = `${isBlack ? width * 0.64 : width}%`;
    const computerKey = DAW_KEYS[p - base];
    const label = (p % 12 === 0 ? `C${p / 12 - 1}` : "") +
      (computerKey ? `\n${computerKey.replace("Key", "").replace("Semicolon", ";")}` : "");
    key.textContent = label.trim();
    key.title = `${NAMES[p % 12]}${Math.floor(p / 12) - 1}`;
    pianoBox.append(key);
  }
  octaveLabel.textContent = `keys A–K: C${base / 12 - 1}–C${base / 12}`;
  showKeys();
}

function showKeys() {
  for (const key of pianoBox.children) {
    key.classList.toggle("mg-down", down.has(Number(key.dataset.pitch)));
  }
}

function shiftOctave(by) {
  const next = base + 12 * by;
  if (next < 24 || next > 96) return;
  base = next;
  drawPiano();
}

// ----- inputs

recordButton.addEventListener("click", () => (recording ? stopRecording() : startRecording()));
$(".mg-octave-down").addEventListener("click", () => shiftOctave(-1));
$(".mg-octave-up").addEventListener("click", () => shiftOctave(1));

// The on-screen piano: pointer down strikes (louder lower on the key), up or leaving releases.
let pointerPitch = null;
pianoBox.addEventListener("pointerdown", (e) => {
  const key = e.target.closest(".mg-key");
  if (!key) return;
  e.preventDefault();
  const box = key.getBoundingClientRect();
  const velocity = Math.round(40 + 80 * Math.min(1, Math.max(0, (e.clientY - box.top) / box.height)));
  pointerPitch = Number(key.dataset.pitch);
  noteOn(pointerPitch, velocity, e.timeStamp);
});
const release = (e) => {
  if (pointerPitch !== null) noteOff(pointerPitch, e.timeStamp);
  pointerPitch = null;
};
pianoBox.addEventListener("pointerup", release);
pianoBox.addEventListener("pointerleave", release);

// The computer keyboard, anywhere on the page except where text is typed.
const typing = (target) => target && (target.isContentEditable ||
  ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
const heldKeys = new Map(); // key code -> the pitch it struck (the octave may move meanwhile)
document.addEventListener("keydown", (e) => {
  if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  if (e.code === "KeyZ" || e.code === "KeyX") {
    shiftOctave(e.code === "KeyZ" ? -1 : 1);
    return;
  }
  const semitone = DAW_KEYS.indexOf(e.code);
  if (semitone < 0 || heldKeys.has(e.code)) return;
  e.preventDefault();
  heldKeys.set(e.code, base + semitone);
  noteOn(base + semitone, 90, e.timeStamp);
});
document.addEventListener("keyup", (e) => {
  if (!heldKeys.has(e.code)) return;
  noteOff(heldKeys.get(e.code), e.timeStamp);
  heldKeys.delete(e.code);
});

// A MIDI keyboard: note on / off with velocity, the sustain pedal (controller 64).
function onMidiMessage(message) {
  const [statusByte, data1, data2] = message.data;
  const kind = statusByte & 0xf0, t = message.timeStamp || performance.now();
  if (kind === 0x90 && data2 > 0) noteOn(data1, data2, t);
  else if (kind === 0x80 || kind === 0x90) noteOff(data1, t);
  else if (kind === 0xb0 && data1 === 64) setPedal(data2 >= 64, t);
}

function listen(access) {
  const names = [];
  for (const input of access.inputs.values()) {
    input.onmidimessage = onMidiMessage;
    names.push(input.name || "MIDI keyboard");
  }
  midiLine.textContent = names.length
    ? `MIDI: ${names.join(", ")}.`
    : "No MIDI keyboard found: plug one in, it is picked up at once.";
}

// Asking for Web MIDI makes the browser ask the person, so it is asked on a click of
// "Connect", or at once where the page was allowed before.
function connectMidi() {
  navigator.requestMIDIAccess().then((access) => {
    connect.hidden = true;
    listen(access);
    access.onstatechange = () => listen(access);
  }, () => {
    midiLine.textContent = "This browser tab may not use MIDI keyboards.";
  });
}

const midiLine = $(".mg-midi"), connect = $(".mg-connect");
if (navigator.requestMIDIAccess) {
  connect.addEventListener("click", connectMidi);
  navigator.permissions?.query({ name: "midi" }).then(
    (permission) => permission.state === "granted" && connectMidi(), () => {});
} else {
  connect.hidden = true;
  midiLine.textContent = "MIDI keyboards need a browser with Web MIDI (Chrome, Edge, Firefox).";
}

drawPiano();
say("Press Record, play, then Stop recording: your phrase becomes the prompt.");
