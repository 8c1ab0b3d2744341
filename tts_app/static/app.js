// The page talks to the same public API any client uses: /version, /v1/voices, /v1/audio/speech.
"use strict";

const $ = (id) => document.getElementById(id);
let audioUrl = null;

async function showRelease() {
  try {
    const info = await (await fetch("/version")).json();
    $("version").textContent = `${info.model} ${info.version} · ${info.engine} on ${info.device}`;
    $("color").textContent = info.color;
    $("color").dataset.color = info.color;
    const faults = Object.keys(info.faults || {});
    if (faults.length) $("version").textContent += ` · faults: ${faults.join(", ")}`;
  } catch (err) {
    $("version").textContent = "version unknown";
  }
}

async function loadVoices() {
  const select = $("voice");
  const response = await fetch("/v1/voices");
  if (!response.ok) {
    // The model may still be loading: try again shortly.
    setTimeout(loadVoices, 2000);
    return;
  }
  const catalog = await response.json();
  select.replaceChildren();
  for (const name of catalog.voices) select.append(new Option(name, name));
  const aliases = document.createElement("optgroup");
  aliases.label = "OpenAI names";
  for (const [alias, voice] of Object.entries(catalog.aliases)) {
    aliases.append(new Option(`${alias} (${voice})`, alias));
  }
  select.append(aliases);
  select.value = catalog.default;
}

async function speak(event) {
  event.preventDefault();
  const button = $("speak");
  button.disabled = true;
  $("status").textContent = "Speaking…";
  try {
    const response = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: "tts-1",
        input: $("text").value,
        voice: $("voice").value || undefined,
        speed: Number($("speed").value),
        response_format: "wav",
      }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error?.message || `HTTP ${response.status}`);
    }
    const blob = await response.blob();
    if (audioUrl) URL.revokeObjectURL(audioUrl);
    audioUrl = URL.createObjectURL(blob);
    $("player").src = audioUrl;
    $("download").href = audioUrl;
    $("result").hidden = false;
    $("status").textContent = `${(blob.size / 1024).toFixed(0)} KiB of audio`;
    $("player").play().catch(() => {}); // autoplay may be refused; the controls remain
  } catch (err) {
    $("status").textContent = `Error: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

$("speed").addEventListener("input", () => {
  $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
});
$("speak-form").addEventListener("submit", speak);
showRelease();
loadVoices();
