// The live player: plays a take while it is written. Runs as the js_on_load of its gr.HTML
// (see player.py): `element` is its root, `props` holds the sample rate. The server streams
// the take as numbered WAV stretches (stream-0001.wav, ...) in the first take slot's audio; a
// change listener on that slot hands each to this script as a "musicgen-stream" event. The
// stretches are played back to back with Web Audio, each scheduled to start on the sample
// where the one before ends, so they sound as the one WAV they add up to. Any other file in
// that slot is the take's final WAV: nothing more will come.

const RATE = Number(props.sample_rate), RESUME = Number(props.resume_seconds);
const STRETCH = /(^|\/)stream-(\d{4})\.wav$/;
const bar = element.querySelector(".mg-player"), status = element.querySelector(".mg-status");
let ctx = null, take = null;

function audioContext() {
  if (!ctx) {
    try {
      ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    } catch (error) { // a browser that will not open the stretches' rate resamples them
      ctx = new AudioContext({ latencyHint: "interactive" });
    }
  }
  if (ctx.state === "suspended") ctx.resume();
  return ctx;
}
// Browsers let audio start only after a gesture: the click on Generate opens the context.
document.addEventListener("pointerdown", audioContext, { capture: true });

function newTake() {
  if (take) silence(take);
  take = {
    urls: [], buffers: new Map(), next: 1, fetching: 0, done: false, // arrived, not scheduled
    sources: [], segments: [], playEnd: 0, written: 0, // scheduled
    state: "waiting", started: false, firstSoundAt: null, doneAt: null, stalls: 0, stoppedAt: null,
  };
  showNativePlayer(false);
  render();
}

function receive(file) {
  if (!file || !file.url) return;
  const match = (file.orig_name || file.path || file.url).match(STRETCH);
  if (!match) { // the final WAV
    if (take && !take.done) { take.done = true; take.doneAt = performance.now(); pump(); }
    showNativePlayer(true);
    return;
  }
  const index = Number(match[2]);
  if (index === 1 || !take) newTake();
  const t = take;
  t.urls.push(file.url);
  t.fetching += 1;
  fetch(file.url)
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.arrayBuffer();
    })
    .then((data) => { if (t === take) t.buffers.set(index, toBuffer(data)); })
    .catch((error) => { if (t === take) status.textContent = `⚠️ A stretch did not arrive (${error.message}).`; })
    .finally(() => { t.fetching -= 1; if (t === take) pump(); });
}
document.addEventListener("musicgen-stream", (event) => receive(event.detail));

function toBuffer(data) {
  // A PCM WAV file (16-bit) as an AudioBuffer, read directly: no decoder, no resampling.
  const view = new DataView(data);
  let channels = 2, rate = RATE;
  for (let at = 12; at + 8 <= view.byteLength;) {
    const id = String.fromCharCode(...new Uint8Array(data, at, 4));
    const size = view.getUint32(at + 4, true);
    if (id === "fmt ") { channels = view.getUint16(at + 10, true); rate = view.getUint32(at + 12, true); }
    if (id === "data") {
      const frames = Math.floor(size / (2 * channels));
      const pcm = new Int16Array(data.slice(at + 8, at + 8 + frames * 2 * channels));
      const buffer = audioContext().createBuffer(channels, Math.max(frames, 1), rate);
      for (let c = 0; c < channels; c++) {
        const out = buffer.getChannelData(c);
        for (let i = 0; i < frames; i++) out[i] = pcm[i * channels + c] / 32768;
      }
      return buffer;
    }
    at += 8 + size + (size & 1);
  }
  throw new Error("not a WAV file");
}

function pump() {
  // Schedule every stretch that has arrived in order; after running dry, wait for RESUME s.
  const t = take;
  if (!t || t.state === "stopped" || t.state === "silenced") return;
  const c = audioContext();
  const ready = [];
  for (let i = t.next; t.buffers.has(i); i++) ready.push(t.buffers.get(i));
  const ahead = Math.max(t.playEnd - c.currentTime, 0);
  const finishing = t.done && t.fetching === 0;
  if (t.state !== "playing") {
    const queued = ready.reduce((sum, b) => sum + b.duration, 0);
    if (!ready.length || (t.started && queued + ahead < RESUME && !finishing)) {
      if (finishing && !ready.length && t.started) setState(t, "finished");
      return;
    }
    if (ahead === 0) t.playEnd = c.currentTime + 0.05;
  }
  for (const buffer of ready) {
    const source = c.createBufferSource();
    source.buffer = buffer;
    source.connect(c.destination);
    source.start(t.playEnd);
    t.sources.push(source);
    t.segments.push({ at: t.playEnd, from: t.written, seconds: buffer.duration });
    if (!t.started) {
      t.started = true;
      t.firstSoundAt = performance.now() + (t.playEnd - c.currentTime) * 1000;
    }
    t.playEnd += buffer.duration;
    t.written += buffer.duration;
    t.buffers.delete(t.next);
    t.next += 1;
  }
  if (ready.length) setState(t, "playing");
}

function heard(t) {
  // Seconds of the take played so far (what the speakers have given out).
  if (!ctx || !t.started) return 0;
  const now = ctx.currentTime - (ctx.outputLatency || 0);
  let seconds = 0;
  for (const s of t.segments) if (now >= s.at) seconds = s.from + Math.min(now - s.at, s.seconds);
  return seconds;
}

function silence(t) {
  for (const source of t.sources) { try { source.stop(); } catch (error) { /* not started */ } }
  t.sources = [];
}

function setState(t, state) {
  if (t.state === state) return;
  if (state === "catching-up") t.stalls += 1;
  t.state = state;
  render();
}

function render() {
  const t = take;
  bar.dataset.state = t ? t.state : "idle";
  if (!t) return;
  const h = heard(t).toFixed(1), w = t.written.toFixed(1);
  status.textContent = {
    waiting: "Starting…",
    playing: `▶ Playing the take as it is written · ${h} s heard · ${w} s ready`,
    "catching-up": `⏳ Catching up: the model is still writing (${h} s heard)…`,
    finished: `Played the whole take (${w} s); the takes below keep it.`,
    stopped: `■ Stopped at ${(t.stoppedAt ?? 0).toFixed(1)} s: the take ends where you stopped.`,
    silenced: `Stopped listening at ${h} s (another player started).`,
  }[t.state];
}

function showNativePlayer(show) {
  // While a take streams, its slot's own player would show each stretch: hide it till the end.
  const native = document.querySelector("#take-1-audio");
  if (native) native.style.display = show ? "" : "none";
}

setInterval(() => {
  const t = take;
  if (!t || !ctx) return;
  if (t.state === "playing" && ctx.currentTime >= t.playEnd - 0.02) {
    setState(t, t.done && t.fetching === 0 && !t.buffers.size ? "finished" : "catching-up");
  }
  if (t.state === "catching-up" || t.state === "waiting") pump();
  if (t.state === "playing" || t.state === "catching-up") render();
}, 100);

// Another player starting (a take's own WAV, the preview) ends the live one.
document.addEventListener("play", (event) => {
  if (take && take.started && (take.state === "playing" || take.state === "catching-up")
      && event.target instanceof HTMLMediaElement) {
    silence(take);
    setState(take, "silenced");
  }
}, true);

window.musicgenLive = {
  // Stop: end the sound now; the seconds heard (the take is cut there), or null when there is
  // nothing to cut (no take playing).
  stop() {
    const t = take;
    if (!t || !t.started || !(t.state === "playing" || t.state === "catching-up")) return null;
    t.stoppedAt = heard(t);
    silence(t);
    setState(t, "stopped");
    return t.stoppedAt;
  },
  stats() {
    const t = take;
    return t && {
      state: t.state, firstSoundAt: t.firstSoundAt, doneAt: t.doneAt, stalls: t.stalls, heard: heard(t),
      written: t.written, stretches: t.next - 1, urls: t.urls, sampleRate: ctx && ctx.sampleRate,
    };
  },
};
