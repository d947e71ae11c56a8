# 0230-interop: jobs produced by a plain librdkafka producer (no kiln code;
# inline audio) and by the libkiln example program are processed.
. "$(dirname "$0")/lib.sh"
RAW=$KILN_BUILD/tools/rawproduce
check "stack up" stack_up --workers 1
tone "$TMPROOT/a.wav" 0.25
b64=$(base64 -w0 "$TMPROOT/a.wav")
printf 'raw-1\t{"id":"raw-1","tenant":"interop","modality":"transcribe","input":{"inline_b64":"%s"},"params":{"language":"en"},"x-future-field":{"kept":true}}\tkiln-tenant=interop\tkiln-work-units=0.25\n' "$b64" \
  | "$RAW" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null
check "plain librdkafka producer delivered" eq $? 0
ex_ids=$("$KILN_BUILD/examples/submit_example" interop "$TMPROOT/a.wav" "$TMPROOT/a.wav")
check "example program submitted 2 jobs" eq "$(echo "$ex_ids" | wc -l)" 2
check "all jobs terminal" wait_until 30 all_terminal
check "raw job done (unknown fields kept, no prior row needed)" eq "$(q "SELECT status FROM jobs WHERE id='raw-1'")" done
check "raw job measured its inline audio" eq "$(q "SELECT round(duration_s::numeric, 2) FROM transcripts WHERE job_id='raw-1'")" 0.25
check "example jobs done" eq "$(q "SELECT count(*) FROM jobs WHERE tenant='interop' AND status='done' AND id <> 'raw-1'")" 2
check "pkg-config file names libkiln" grep -q -- '-lkiln' "$KILN_BUILD/kiln.pc"
check "public headers compile as C11 -pedantic" bash -c "for h in '$KILN_SRC'/include/kiln/*.h; do echo \"#include \\\"\$h\\\"\" | cc -std=c11 -pedantic -Werror -I'$KILN_SRC/include' -I/usr/include/postgresql -fsyntax-only -x c - || exit 1; done"
finish
