#!/usr/bin/env bash
# tests/0603-voice_speak.sh - `kiln speak` end to end: every output format
# decodes to the expected length and rate, --rate resamples, timings come
# out as JSON and WebVTT consistent with the audio, bad input fails with
# the documented exit codes, and (when var/models/whisper-tiny.en exists)
# kiln's own Whisper transcribes the speech back. Skips (77) without the
# voice or when this kiln has no `speak` command.
. "$(dirname "$0")/lib.sh"
voice=${KILN_VOICE:-$KILN_SRC/var/models/voices/en_US-joe-medium}
[ -f "$voice/model.safetensors" ] || { echo "skip - voice not fetched (make voices)"; exit 77; }
"$KILN" speak --help 2>/dev/null | grep -q 'Piper' || { echo "skip - kiln has no speak command"; exit 77; }
T=$TMPROOT
text="The quick brown fox jumps over the lazy dog. Hello, world!"

"$KILN" speak --voice "$voice" -o "$T/a.wav" --timings "$T/a.json" --vtt "$T/a.vtt" "$text" 2> "$T/a.log"
check "speak wav" [ $? -eq 0 ]
rate=$(soxi -r "$T/a.wav" 2>/dev/null); secs=$(soxi -D "$T/a.wav" 2>/dev/null)
check "wav is 22050 Hz" eq "$rate" 22050
check "wav lasts 2.5-6 s" awk -v s="$secs" 'BEGIN{exit !(s > 2.5 && s < 6)}'
check "timings: 2 sentences, duration = audio" python3 -c "
import json,sys; d=json.load(open('$T/a.json'))
assert len(d['sentences']) == 2, d
assert abs(d['duration'] - $secs) < 0.01, (d['duration'], $secs)
w = [x for s in d['sentences'] for x in s['words']]
assert len(w) == 11, len(w)
assert all(a['start'] < a['end'] <= b['start'] for a, b in zip(w, w[1:])), 'words overlap'
assert d['sentences'][1]['text'] == 'Hello, world!', d['sentences'][1]['text']"
check "vtt has 2 cues" eq "$(grep -c -- '-->' "$T/a.vtt")" 2
for f in flac ogg opus mp3; do
  "$KILN" speak --voice "$voice" -o "$T/a.$f" "$text" 2>> "$T/a.log"
  check "speak $f" [ $? -eq 0 -a -s "$T/a.$f" ]
done
check "flac decodes to the same length" eq "$(soxi -s "$T/a.flac" 2>/dev/null)" "$(soxi -s "$T/a.wav" 2>/dev/null)"
"$KILN" speak --voice "$voice" --rate 16000 -o "$T/b.wav" "$text" 2>> "$T/a.log"
check "--rate 16000" eq "$(soxi -r "$T/b.wav" 2>/dev/null)" 16000
echo "Text from a file." > "$T/in.txt"
"$KILN" speak --voice "$voice" --text-file "$T/in.txt" -o "$T/c.wav" 2>> "$T/a.log"
check "--text-file" [ $? -eq 0 -a -s "$T/c.wav" ]
"$KILN" speak --voice "$voice" -o "$T/d.wav" "   " 2>/dev/null
check "blank text fails (1)" [ $? -eq 1 ]
"$KILN" speak --voice "$T/nowhere" -o "$T/d.wav" "hi" 2>/dev/null
check "unknown voice fails (1)" [ $? -eq 1 ]
"$KILN" speak --format aiff -o "$T/d.aiff" "hi" 2>/dev/null
check "unknown format is a usage error (2)" [ $? -eq 2 ]
# the device code path (flow + decoder as ragged-batch table ops) on the host
"$KILN" speak --voice "$voice" --backend ref -o "$T/ref.wav" "$text" 2>> "$T/a.log"
check "--backend ref writes the cpu engine's audio (same length, SNR >= 60 dB in 16 bits)" python3 -c "
import wave, array, math
def pcm(f):
    w = wave.open(f); return array.array('h', w.readframes(w.getnframes()))
a, b = pcm('$T/a.wav'), pcm('$T/ref.wav')
assert len(a) == len(b) and len(a) > 10000, (len(a), len(b))
s = sum(x * x for x in a); e = sum((x - y) ** 2 for x, y in zip(a, b))
assert e == 0 or 10 * math.log10(s / e) >= 60, 10 * math.log10(s / e)"
"$KILN" speak --voice "$voice" --backend tpu -o "$T/d.wav" "hi" 2> "$T/tpu.err"
rc=$?
check "--backend tpu fails (1) and says why" bash -c "[ $rc -eq 1 ] && grep -q 'invalid backend \"tpu\"' '$T/tpu.err'"
if ! "$KILN" speak --voice "$voice" --backend cuda -o "$T/d.wav" "hi" 2> "$T/cuda.err"; then
  check "--backend cuda without a GPU says why" grep -q 'could not use backend "cuda"' "$T/cuda.err"
fi
if [ -d "$KILN_SRC/var/models/whisper-tiny.en" ]; then
  got=$("$KILN" transcribe --greedy --model "$KILN_SRC/var/models/whisper-tiny.en" "$T/a.wav" 2>/dev/null | tr 'A-Z' 'a-z' | tr -cd 'a-z ')
  check "whisper hears it back" eq "$got" "the quick brown fox jumps over the lazy dog hello world"
fi
finish
