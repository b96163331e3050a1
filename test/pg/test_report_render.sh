#!/usr/bin/env bash
# test/pg/test_report_render.sh — the model report as a person sees it (run by
# test/run_sql_tests.sh against its cluster): genrec_report() from SQL and `genrec report` from
# the command-line program are rendered by headless Chromium (Debian's chromium, no network);
# the rendered DOM must hold the charts and their lines and bars, and the screenshots must show
# the charts' colours. The screenshots are kept in $GENREC_ARTIFACTS (default build/artifacts):
# report-sql.png and report-cli.png.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
bin=${GENREC_BIN:-build/genrec}
art=${GENREC_ARTIFACTS:-build/artifacts}
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0
db=greport
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
	echo "not ok - chromium is not installed (scripts/deps.sh installs it)"
	exit 1
fi
mkdir -p "$art"

# Render a page: its DOM after layout, and a screenshot.
render() {
	local page=$1 png=$2 dom=$3 flags=(--headless --no-sandbox --disable-gpu --disable-quic
		--no-first-run --disable-background-networking --disable-component-update --disable-sync
		--hide-scrollbars --user-data-dir="$tmp/profile")
	timeout 60 "$chromium" "${flags[@]}" --dump-dom "file://$page" >"$dom" 2>"$tmp/chromium.log" &&
		timeout 60 "$chromium" "${flags[@]}" --window-size=1240,2200 --screenshot="$png" \
			"file://$page" >>"$tmp/chromium.log" 2>&1
}

# What a rendered page shows: charts in the DOM, and the share of pixels in the first
# series' blue (#1f77b4) and the second's red (#d62728) in the screenshot.
inspect() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import re, struct, sys, zlib
dom = open(sys.argv[2], encoding="utf-8").read()
charts = re.findall(r'<svg class="chart" data-chart="([a-z]+)"', dom)
lines = len(re.findall(r'<polyline class="series"', dom))
bars = len(re.findall(r'<rect class="bar"', dom))
raw = open(sys.argv[1], "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(raw):
    n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
    body = raw[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, color = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and color in (2, 6), "unexpected PNG format"
        bpp = 3 if color == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
data, stride = zlib.decompress(idat), w * bpp
prev, rows = bytearray(stride), []
for y in range(h):
    f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line)
    prev = line
def share(rgb):
    hit = sum(1 for line in rows for x in range(0, stride, bpp)
              if all(abs(line[x + k] - rgb[k]) < 12 for k in range(3)))
    return hit / (w * h)
print(",".join(sorted(set(charts))), len(charts), lines, bars,
      "%.4f" % share((0x1f, 0x77, 0xb4)), "%.4f" % share((0xd6, 0x27, 0x28)))
PY
}

PGOPTIONS="-c client_min_messages=warning" psql -d postgres -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
psql -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION genrec" \
	-c "CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(150, 100, 15, 9)" >/dev/null || exit 1
for m in "lac 1" "lac 2" "int 1"; do
	set -- $m
	psql -d "$db" -c "SET client_min_messages = warning" \
		-c "SELECT 1 FROM genrec.genrec_train('r_$1_$2', 'ev', layout => '$1', seed => $2, d_model => 16, n_layer => 1, max_len => 8, epochs => 6)" \
		>/dev/null || exit 1
done
psql -d "$db" -At -c "SELECT genrec.genrec_report(ARRAY['r_lac_1', 'r_lac_2', 'r_int_1'])" >"$tmp/sql.html" || exit 1
psql -d "$db" -At -c "SELECT encode(genrec.genrec_export('r_lac_1'), 'base64')" | base64 -d >"$tmp/a.safetensors"
"$bin" synth --users 150 --items 100 --per-user 15 --seed 9 >"$tmp/ev.tsv" || exit 1
"$bin" train --data "$tmp/ev.tsv" --layout pc --d 16 --layers 1 --epochs 6 --quiet \
	--save "$tmp/pc.safetensors" >/dev/null 2>&1 || exit 1
"$bin" report --model "$tmp/a.safetensors,$tmp/pc.safetensors" --out "$tmp/cli.html" --quiet || exit 1

for src in sql cli; do
	if ! render "$tmp/$src.html" "$art/report-$src.png" "$tmp/$src.dom"; then
		check no "Chromium renders the $src report ($(tail -n 3 "$tmp/chromium.log"))"
		continue
	fi
	read -r kinds n lines bars blue red < <(inspect "$art/report-$src.png" "$tmp/$src.dom")
	check "$([ "$kinds" = comparison,loss,rmse,test,valid ] && echo ok || echo "no ($kinds)")" \
		"the rendered $src report holds the comparison, loss, validation, RMSE and test charts"
	want=$([ $src = sql ] && echo 13 || echo 9)
	check "$([ "$n" = "$want" ] && echo ok || echo "no ($n)")" "$want charts in the $src report"
	check "$([ "$lines" -ge 8 ] && [ "$bars" -ge 8 ] && echo ok || echo "no ($lines lines, $bars bars)")" \
		"with their curves and bars ($lines lines, $bars bars)"
	ok=$(python3 -c "print('ok' if $blue > 0.002 and $red > 0.002 else 'no')")
	check "$ok" "the $src screenshot shows the charts' colours (blue $blue, red $red of the pixels; $art/report-$src.png)"
done
psql -d postgres -c "DROP DATABASE $db" >/dev/null
[ $fail -eq 0 ] && echo "test_report_render: all passed" || echo "test_report_render: FAILED"
exit $fail
