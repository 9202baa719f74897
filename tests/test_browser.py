"""The bridge's playground page in real headless Chromium (Debian's), driven by Playwright, with a fake microphone
playing real speech into it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from voiceloop.audio.files import read_audio, write_wav
from voiceloop.audio.resample import resample
from voiceloop.io.websocket_server import BridgeOptions, BridgeServer

pytestmark = pytest.mark.models

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, sandbox off (root), no network beyond loopback, a fake microphone fed from a file.
OFFLINE_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip
PERSONA = "You are Ada, a cheerful voice assistant. Your words are read aloud, so reply in one short, plain sentence."
SCREENSHOT = os.environ.get("VOICELOOP_SCREENSHOT")
"""Where to save a screenshot of the session (the README's picture is captured by this test)."""


def _mic(engines, data_dir: Path, tmp_path: Path) -> Path:
    """A recorded request, then a question in Piper's voice; Chromium loops the file. After each one enough
    silence for the turn to end and the reply to play."""
    samples, rate = read_audio(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    lamp = (resample(samples, rate, 48000) * 32767).astype(np.int16)
    tts = engines.tts
    ask = np.concatenate(list(tts.synthesize("Set a timer for ten minutes."))).astype(np.float32) / 32767
    ask = (resample(ask, tts.sample_rate, 48000) * 32767).astype(np.int16)
    mic = tmp_path / "mic.wav"
    gap = np.zeros(6 * 48000, np.int16)
    tail = np.zeros(10 * 48000, np.int16)  # room for the answer before the loop's next round
    write_wav(mic, np.concatenate([np.zeros(24000, np.int16), lamp, gap, ask, tail]), 48000)
    return mic


async def test_playground_session(engines, data_dir, tmp_path, ha_server):
    """One browser session on real speech: the waterfall equals the turn messages, the state goes hearing ->
    thinking -> speaking -> listening, the export validates against the profile schema, and a bad setting is
    reported while the session goes on; a second session with other settings reaches the server."""
    import jsonschema
    from playwright.async_api import async_playwright

    from voiceloop.profile import report_schema
    from voiceloop.tools import HomeAssistant, Timers, builtin_tools

    def tools() -> list:  # as `voiceloop serve --tools --home-assistant URL`, with a local stand-in for it
        return [*builtin_tools(), Timers(), HomeAssistant(ha_server.url, token="secret")]

    # Tools are offered but off by default (as `voiceloop serve` without --tools); the page switches them on.
    engines.warm_up(tools=tools())
    server = BridgeServer(engines, BridgeOptions(port=0, tools=tools, tools_on=False))
    await server.start()
    try:
        async with async_playwright() as pw:
            args = [*OFFLINE_FLAGS, f"--use-file-for-fake-audio-capture={_mic(engines, data_dir, tmp_path)}"]
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
            page = await browser.new_page(viewport={"width": 1200, "height": 860})
            page.set_default_timeout(90_000)  # a slow CPU: these bound hangs, not speed
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.wait_for_function("document.querySelectorAll('#strategy option').length == 2")
            # A value the form does not offer (as a hand-written client might send) and a persona.
            await page.evaluate(
                "() => { const o = document.createElement('option'); o.value = o.textContent = 'warp';"
                " document.querySelector('#strategy').append(o); }"
            )
            await page.select_option("#strategy", "warp")
            await page.check("#tools")
            await page.click("#start")
            await page.wait_for_function("window.voiceloop.turnMsgs.some((m) => m.v2v_ms != null)", timeout=120_000)
            await page.wait_for_function("window.voiceloop.stateLog.includes('listening', 2)", timeout=60_000)
            states = await page.evaluate("window.voiceloop.stateLog")
            errors = await page.inner_text("#errors")
            ready = await page.evaluate("window.voiceloop.ready")
            turn = await page.evaluate("window.voiceloop.turnMsgs.find((m) => m.v2v_ms != null)")
            spans = await page.eval_on_selector_all(
                f"#waterfall g.row[data-turn='{turn['turn_id']}'] [data-stage]",
                "els => els.map((e) => [e.dataset.stage, +e.dataset.ms, e.getAttribute('width')])",
            )
            v2v_label = await page.text_content(f"#waterfall g.row[data-turn='{turn['turn_id']}'] text.v2v")
            summary_v2v = await page.inner_text("#summary tr[data-row='v2v'] td")
            # The second request, answered with a tool.
            await page.wait_for_function(
                "window.voiceloop.turnMsgs.filter((m) => m.v2v_ms != null).length >= 2", timeout=120_000
            )
            await page.wait_for_function("document.querySelector('#state').dataset.state == 'listening'")
            conversation = await page.inner_text("#conversation")
            second = await page.evaluate("window.voiceloop.turnMsgs.filter((m) => m.v2v_ms != null)[1]")
            rows = await page.eval_on_selector_all("#waterfall g.row", "els => els.map((e) => +e.dataset.turn)")
            if SCREENSHOT:
                await page.screenshot(path=SCREENSHOT, full_page=True)
            async with page.expect_download() as download:
                await page.click("#export")
            exported = json.loads(Path(await (await download.value).path()).read_text())
            stable_shown = await page.evaluate("window.voiceloop.stableShown")
            # The marks, from protocol messages as the server sends them: a reply that cut in (its turn continued
            # in the next one) and a barge-in that stopped playback.
            await page.evaluate(
                """() => { const h = (m) => window.voiceloop.handle({ data: JSON.stringify(m) });
                  const t = (id, extra) => ({ type: "turn", turn_id: id, transcript: "", reply: "x", v2v_ms: 300,
                    stages: { vad: 30, asr: 60, llm: 90, clause: 40, tts: 40, release: 40 }, marks_ms: {}, extra });
                  h(t(90, { merged_into_next: true })); h(t(91, { continued_after_cut_in: true }));
                  h({ type: "interrupted", turn_id: 91, reason: "barge_in" }); }"""
            )
            marks = await page.inner_text("#conversation")
            row91 = await page.text_content("#waterfall g.row[data-turn='91'] text.v2v")

            # The session is still usable after the bad setting: stop it, change a setting, start again.
            await page.click("#stop")
            await page.wait_for_function("document.querySelector('#state').dataset.state == 'idle'", timeout=30_000)
            # Another strategy, a persona of one's own, no tools.
            await page.select_option("#strategy", "sequential")
            await page.fill("#system", PERSONA)
            await page.uncheck("#tools")
            await page.focus("#start")
            await page.keyboard.press("Enter")  # keyboard-usable: native buttons
            await page.wait_for_function(
                "window.voiceloop.ready && window.voiceloop.ready.settings.strategy == 'sequential'"
            )
            second_ready = await page.evaluate("window.voiceloop.ready")
            await page.wait_for_function(
                "window.voiceloop.turnMsgs.some((m) => m.strategy == 'sequential' && m.v2v_ms != null)", timeout=120_000
            )
            await page.click("#stop")
            # A phone's width: no sideways scrolling. The dark scheme follows the system's.
            await page.set_viewport_size({"width": 390, "height": 844})
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            light_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            await page.emulate_media(color_scheme="dark")
            dark_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            await browser.close()
    finally:
        await server.close()

    # A bad setting: the protocol's error, shown; the default applies; the good setting reached the server.
    assert "bad_setting" in errors and "strategy" in errors
    assert ready["settings"]["strategy"] == "speculative"
    assert ready["settings"]["tools"] is True
    assert second_ready["settings"] == {**ready["settings"], "strategy": "sequential", "system": PERSONA, "tools": False}
    # The waterfall's spans are the turn message's stages, in chain order, with the endpoint tick.
    chain = [s for s in ("vad", "asr", "llm", "clause", "tts", "release") if s in turn["stages"]]
    assert [s for s, _, _ in spans if s != "endpoint"] == chain
    for stage, ms, _ in spans:
        assert ms == pytest.approx(turn["stages"][stage], abs=0.05)
    assert ("endpoint" in [s for s, _, _ in spans]) == ("endpoint" in turn["stages"])
    assert v2v_label.startswith(f"{round(turn['v2v_ms'])} ms")
    assert summary_v2v == str(round(turn["v2v_ms"]))  # one answered turn: p50 is that turn's v2v
    assert rows[:2] == [turn["turn_id"], second["turn_id"]]  # one waterfall row per answered turn
    # State: listening -> hearing -> thinking -> speaking -> listening, in that order.
    i = states.index("hearing")
    assert states[i : i + 4] == ["hearing", "thinking", "speaking", "listening"], states
    assert "lamp" in conversation.lower() and "timer" in second["transcript"].lower() and second["reply"]
    # Every tool call of a turn message is shown; whether the small model calls is its own business (measured in
    # examples/tool_eval.py), but a session of a light and a timer request with no call at all is a regression.
    calls = [t for m in (turn, second) for t in m["tools"] if "name" in t]
    assert calls and all(f"tool {t['name']}" in conversation for t in calls)
    lights = [t for t in calls if t["name"] == "turn_on_light"]
    # A light call is a real HTTP request to the stand-in for Home Assistant.
    assert len(ha_server.requests) == len(lights)
    assert overflow <= 0 and light_bg != dark_bg
    assert stable_shown > 0  # interim transcripts showed their stable prefix apart
    assert "cut in: continued in the next turn" in marks and "recovered after a cut-in" in marks
    assert "barge-in stopped playback" in marks and "\u21ba" in row91 and "\u00d7" in row91
    # The export is a `voiceloop profile` report.
    jsonschema.validate(exported, report_schema())
    answered = [t for t in exported["turns"] if t["v2v_ms"] is not None]
    assert answered[0]["v2v_ms"] == pytest.approx(turn["v2v_ms"]) and "lamp" in answered[0]["transcript"].lower()
    assert exported["summary"]["answered"] == len(answered) and exported["system"]["cpu"]
