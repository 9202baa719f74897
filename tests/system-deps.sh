#!/bin/sh
# Debian packages the tests need, installed only when missing: Chromium (browser test), PortAudio, PulseAudio and
# ALSA's pulse plugin (assistant tests on virtual audio devices).
set -e
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v pulseaudio >/dev/null 2>&1 || missing="$missing pulseaudio"
command -v paplay >/dev/null 2>&1 || missing="$missing pulseaudio-utils"
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing="$missing libportaudio2"
[ -e /usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ] || [ -e /usr/lib/aarch64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ] || missing="$missing libasound2-plugins"
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
