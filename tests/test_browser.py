"""The bridge's browser page in real headless Chromium (Debian's), driven by Playwright, with a fake microphone."""

from __future__ import annotations

import shutil

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
# Headless, sandbox off (root), no network beyond loopback, a fake microphone fed from a file.
OFFLINE_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip


async def test_page_transcribes_the_microphone_and_plays_the_reply(engines, data_dir, tmp_path):
    from playwright.async_api import async_playwright

    # Chromium loops the capture file: speech, then enough silence for the turn to end and the reply to play.
    samples, rate = read_audio(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    speech = (resample(samples, rate, 48000) * 32767).astype(np.int16)
    mic = tmp_path / "mic.wav"
    write_wav(mic, np.concatenate([np.zeros(24000, np.int16), speech, np.zeros(8 * 48000, np.int16)]), 48000)

    server = BridgeServer(engines, BridgeOptions(port=0))
    await server.start()
    try:
        async with async_playwright() as pw:
            args = [*OFFLINE_FLAGS, f"--use-file-for-fake-audio-capture={mic}"]
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.click("#start")
            await page.wait_for_function("window.voiceloop.transcript.length > 0", timeout=30_000)
            await page.wait_for_function("window.voiceloop.replyBytes > 0", timeout=30_000)
            transcript = await page.evaluate("window.voiceloop.transcript")
            shown = await page.inner_text("#log")
            await page.wait_for_function("document.querySelector('#log .ms').textContent.includes('v2v')", timeout=30_000)
            latency = await page.inner_text("#log .ms")
            await browser.close()
    finally:
        await server.close()
    assert "lamp" in transcript.lower()
    assert "lamp" in shown.lower()  # the page shows the final transcript
    assert "v2v" in latency
