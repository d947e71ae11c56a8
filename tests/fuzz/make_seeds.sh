#!/usr/bin/env bash
# tests/fuzz/make_seeds.sh - (re)writes the seed corpus under tests/fuzz/corpus/:
# job messages, kiln.conf files, S3 answers (written here), audio in every
# format sox writes (and Opus/MP3 through libsndfile), Whisper weight files
# and safetensors (tests/fuzz/make_seeds.c). Seeds are named seed-*; files the fuzzer found
# (run.sh merges them in) and crash reproducers (crash-*) are left alone.
set -euo pipefail
cd "$(dirname "$0")"
C=corpus
mkdir -p $C/job $C/audio $C/conf $C/s3 $C/ggml $C/ct2 $C/hf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- job messages (lib/job.c)
j() { printf '%s' "$2" > "$C/job/seed-$1.json"; }
j uri '{"id":"a1","tenant":"acme","modality":"transcribe","input":{"uri":"s3://b/in/a.flac"},"params":{"language":"en","timestamps":"word","formats":["json","srt","vtt"]},"priority":5,"deadline":"2026-12-01T00:00:00Z","callback_url":null}'
j inline '{"id":"job:2.x-y_z","modality":"transcribe","input":{"inline_b64":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YQAAAAA="}}'
j speak '{"id":"s1","tenant":"t_1","modality":"speak","input":{"text":"hello \u00e9\ud83d\ude00 world"},"params":null,"priority":-1000}'
j image '{"id":"i1","modality":"image","input":{"text":"a cat"},"extra":{"kept":[1,2,{"x":true}]}}'
j bad-json '{"id": "bad-json", "modality": '
j dup-key '{"id":"d","id":"e","modality":"transcribe","input":{"uri":"x"}}'
j deep "{\"id\":\"deep\",\"modality\":\"transcribe\",\"input\":{\"uri\":\"x\"},\"p\":$(printf '[%.0s' $(seq 40))1$(printf ']%.0s' $(seq 40))}"
j strings-with-brackets '{"id":"q","modality":"transcribe","input":{"uri":"[[[{{{\"\\\\"},"params":{"language":"english-too-long"}}'
j two-inputs '{"id":"t","modality":"transcribe","input":{"uri":"a","text":"b"}}'
j wrong-types '{"id":7,"tenant":["a"],"modality":"transcribe","priority":1.5,"input":"x"}'
j empty-values '{"id":"","tenant":"","modality":"","input":{"uri":""}}'
j not-object '["id","modality"]'
j nul-in-string '{"id":"a\u0000b","modality":"transcribe","input":{"uri":"x"}}'

# ---- kiln.conf (lib/conf.c)
cat > $C/conf/seed-readme.conf <<'CONF'
# kiln.conf
broker.bootstrap = kafka-1:9092,kafka-2:9092
kafka.security.protocol = SASL_SSL          # any kafka.* key goes to librdkafka
kafka.sasl.mechanisms = SCRAM-SHA-512
kafka.sasl.username = kiln
kafka.sasl.password = hunter2
pg.host = db.internal
pg.dbname = kiln
pg.user = kiln_worker
pg.password = s3cret
store.url = s3://kiln-artifacts/prod
s3.endpoint = https://s3.eu-west-1.amazonaws.com
s3.region = eu-west-1
s3.access_key = AKIAEXAMPLE
s3.secret_key = wJalrXUtnFEMI/K7MDENG
CONF
cat > $C/conf/seed-types.conf <<'CONF'
worker.max_batch = 8
worker.max_batch = 99999999999999999999
worker.max_queue_delay_us=-1
log.level = debug
log.level = loud
worker.engine = null
  # indented comment
stack.dir = @file:/dev/null
kafka. = x
pg.sslkey.pem = x
no_equals_sign
CONF
printf 'worker.heartbeat_ms = 300\r\nworker.id = w\0x\n=value\nkey=\n' > $C/conf/seed-crlf-nul.conf
printf 'kafka.%0300d = long key\n' 0 > $C/conf/seed-long-key.conf

# ---- S3 answers (lib/store_s3.c): status byte, outcome byte, chunk, repeats, body
s3() { { printf "$2"; printf '%s' "$3"; } > "$C/s3/seed-$1"; }
X='<?xml version="1.0" encoding="UTF-8"?>'
s3 no-such-key '\x07\x00\x00\x00' "$X<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>results/acme/j1/transcript.json</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>"
s3 no-such-bucket '\x07\x00\x10\x00' "$X<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>bucket</BucketName></Error>"
s3 access-denied '\x06\x40\x05\x00' "$X<Error><Code>AccessDenied</Code><Message>Access Denied &amp; &lt;more&gt; &quot;x&quot; &apos;y&apos; &unknown; &amp</Message></Error>"
s3 signature '\x05\x00\x00\x00' "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match
the signature you provided.	Check your key.</Message></Error>"
s3 slow-down '\x0e\x80\x01\x03' "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
s3 html '\x0c\x00\x00\x00' '<html><body><h1>502 Bad Gateway</h1></body></html>'
s3 empty '\x07\xc0\x00\x00' ''
s3 ok '\x00\x00\x00\x00' '{"text":"a transcript"}'
s3 unclosed '\x05\x00\x00\x00' '<Error><Code>Unclosed<Message>no end'
s3 big '\x05\x00\xff\x3f' "<Error><Code>EntityTooLarge</Code><Message>$(printf 'x%.0s' $(seq 2000))</Message></Error>"
s3 curl-error '\x05\x05\x00\x00' '<Error><Code>X</Code></Error>'

# ---- audio (lib/audio.c): 0.1 s of a tone in many containers and codecs
a() { local name=$1; shift; sox -n -r "${RATE:-16000}" -c "${CH:-1}" "$@" "$tmp/$name" synth 0.1 sine 440 vol 0.5 2>/dev/null && cp "$tmp/$name" "$C/audio/seed-$name" || echo "skipped $name"; }
a pcm16.wav -b 16
RATE=44100 CH=2 a stereo-44k.wav -b 16
a float.wav -e floating-point -b 32
RATE=8000 a ulaw.wav -e u-law
RATE=8000 a alaw.wav -e a-law
a ima.wav -e ima-adpcm
RATE=8000 a gsm.wav -e gsm-full-rate
a pcm24.wav -b 24
a u8.wav -b 8 -e unsigned
a flac.flac
RATE=48000 CH=2 a vorbis.ogg
a aiff.aiff -b 16
a au.au -b 16
a caf.caf -b 16
a w64.w64 -b 16
a ircam.sf -b 16
a nist.sph -b 16
a voc.voc -b 16
a avr.avr -b 16
a htk.htk -b 16
a paf.paf -b 16
a xi.xi -b 16
a wve.wve -e a-law
sox -n -r 16000 -c 1 -b 16 "$C/audio/seed-empty.wav" trim 0 0 2>/dev/null
printf 'this is not audio\n' > "$C/audio/seed-text.txt"

# ---- weight files and the libsndfile-only audio formats
cc -std=gnu11 -O1 -Wall -Wextra -Werror -o "$tmp/make_seeds" make_seeds.c -lsndfile -lm
"$tmp/make_seeds" "$C"
for d in $C/*; do echo "$(ls "$d" | wc -l) files in $d"; done
